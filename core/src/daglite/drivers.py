"""The drivers: how each kind of task is run through the pipeline's policy.

`daglite.pipeline.steps()` holds the whole policy of a call; four tiny drivers run that
generator: `run_sync` and `run_async` for plain and async functions, `run_stream` and
`run_async_stream` for generator functions. They differ only in how an attempt is
invoked, waited for and bounded by the timeout (`daglite.timeouts`, imported only by
tasks that have one). A fifth, `run_plain`, calls a plain task's function directly when
there is nothing to manage (`daglite.pipeline.is_plain_call`). `driver()` is the one
place that chooses among them; `call` and `call_collected` run a call with its driver.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from collections.abc import Generator
from collections.abc import Iterator
from time import perf_counter
from typing import Any
from typing import NoReturn

from daglite.context import Runtime
from daglite.context import TaskMetadata
from daglite.context import current_frame
from daglite.errors import TaskError
from daglite.errors import task_error
from daglite.lifecycle import CallReport
from daglite.pipeline import is_plain_call
from daglite.pipeline import steps
from daglite.tallies import SUCCEEDED
from daglite.tallies import count_item
from daglite.taskspec import TaskSpec


def driver(task: TaskSpec, runtime: Runtime, item: bool = False) -> Any:
    """The driver that runs a call of `task` (a map item's, if `item`) in `runtime`.

    The one place that chooses it: `run_plain` when the pipeline has nothing to manage
    (`is_plain_call`), else the driver of the task's kind: `run_sync`, `run_async`,
    `run_stream` or `run_async_stream`.
    """
    if task.is_async:
        return run_async_stream if task.is_stream else run_async
    if task.is_stream:
        return run_stream
    return run_plain if is_plain_call(task, runtime, item) else run_sync


def call(
    task: TaskSpec,
    runtime: Runtime,
    meta: TaskMetadata,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Run one call with its driver: a value, a coroutine, an iterator or an async iterator."""
    return driver(task, runtime)(task, runtime, meta, args, kwargs)


def call_collected(
    task: TaskSpec,
    runtime: Runtime,
    meta: TaskMetadata,
    args: tuple[Any, ...],
    drive: Any = None,
) -> Any:
    """One map item: its value, or a stream's items collected into a list.

    For async tasks, a coroutine giving either. `drive` is `driver(task, runtime)` when the
    caller has it already (a map chooses once for all its items).
    """
    result = (drive or driver(task, runtime))(task, runtime, meta, args, {})
    if task.is_stream:
        return collect_async(result) if task.is_async else list(result)
    return result


async def collect_async(stream: Any) -> list[Any]:
    """Collect an async iterator into a list."""
    return [item async for item in stream]


def run_plain(
    task: TaskSpec, runtime: Runtime | None, meta: TaskMetadata | None, args, kwargs
) -> Any:
    """Call a plain task's function directly: the pipeline would only count and wrap errors.

    With no runtime (a bare call outside any session) nothing is counted and no frame is
    set; in a session the call is counted, and reported through the pipeline's
    `CallReport` if it fails.
    """
    func = task.func
    if runtime is None or meta is None:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            raise _plain_error(task, exc, args, kwargs, None) from exc
    sink = runtime.emit
    tally = getattr(sink, "tally", None)
    start = perf_counter() if sink is not None else 0.0
    token = current_frame.set(meta)
    try:
        value = func(*args, **kwargs)
    except BaseException as exc:
        plain_failed(task, runtime, meta, args, kwargs, exc, start)
    finally:
        current_frame.reset(token)
    if tally is not None:  # counted, not reported: nobody wants an event of it
        tally.add(SUCCEEDED)
        if meta.map_id is not None:
            count_item(meta, SUCCEEDED)
    return value


def plain_failed(
    task: TaskSpec,
    runtime: Runtime,
    meta: TaskMetadata,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    exc: BaseException,
    start: float,
) -> NoReturn:
    """A plain call raised `exc` (started at `start`): report it and raise its `TaskError`.

    Called while `exc` is being handled, with the call's frame still current. Ctrl-C is
    reported and raised as it is; a `TypeError` from arguments that do not fit the
    signature is raised as every other kind of call raises it (see `_plain_error`).
    """
    sink = runtime.emit
    if not isinstance(exc, Exception):  # Ctrl-C: the call ends, reported as failed
        if sink is not None:
            CallReport(runtime, _bound(task, meta, args, kwargs), start).failed(exc, 1)
        raise exc
    error = _plain_error(task, exc, args, kwargs, meta.map_index)  # bad arguments: raises
    if sink is not None:
        CallReport(runtime, _bound(task, meta, args, kwargs), start).failed(exc, 1)
    raise error from exc


def _plain_error(
    task: TaskSpec,
    exc: Exception,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    map_index: int | None,
) -> TaskError:
    """The `TaskError` for a plain call that raised `exc` (set `__cause__` yourself).

    Raises:
        TypeError: The arguments do not fit the signature: the caller's mistake, reported
            as every other kind of call reports it (see `TaskSpec.bind`).
    """
    if isinstance(exc, TypeError):
        task.bind(args, kwargs)
    return task_error(task.name, map_index, exc, 1)


def _bound(task: TaskSpec, meta: TaskMetadata, args, kwargs) -> TaskMetadata:
    """`meta` with the call's inputs, which a plain call skipped binding (for its failure)."""
    try:
        return meta._replace(inputs=task.bind(args, kwargs))
    except TypeError:
        return meta


def run_sync(task: TaskSpec, runtime: Runtime, meta: TaskMetadata, args, kwargs) -> Any:
    """Drive `steps()` for a plain function."""
    func = task.func
    timeout = task.timeout
    token = current_frame.set(meta)
    try:
        gen = steps(task, runtime, meta)
        delay = next(gen)
        while True:
            try:
                if delay:
                    time.sleep(delay)
                if timeout is None:
                    value = func(*args, **kwargs)
                else:
                    from daglite.timeouts import call_with_timeout  # only tasks with a timeout

                    value = call_with_timeout(func, args, kwargs, timeout, meta.name)
            except BaseException as exc:
                delay = gen.throw(exc)  # raises when no retry is left (or on Ctrl-C)
            else:
                delay = gen.send(value)
    except StopIteration as stop:
        return stop.value
    finally:
        current_frame.reset(token)


async def run_async(task: TaskSpec, runtime: Runtime, meta: TaskMetadata, args, kwargs) -> Any:
    """Drive `steps()` for an async function; a timeout cancels the attempt."""
    import asyncio

    func = task.func
    timeout = task.timeout
    token = current_frame.set(meta)
    try:
        gen = steps(task, runtime, meta)
        delay = next(gen)
        while True:
            try:
                if delay:
                    await asyncio.sleep(delay)
                if timeout is None:
                    value = await func(*args, **kwargs)
                else:
                    from daglite.timeouts import await_with_timeout

                    value = await await_with_timeout(func(*args, **kwargs), timeout)
            except BaseException as exc:
                delay = gen.throw(exc)  # raises when no retry is left (or on cancellation)
            else:
                delay = gen.send(value)
    except StopIteration as stop:
        return stop.value
    finally:
        current_frame.reset(token)


def run_stream(task: TaskSpec, runtime: Runtime, meta: TaskMetadata, args, kwargs) -> Iterator[Any]:
    """Drive `steps()` around a generator function: the attempt is the whole iteration.

    The task's frame is current only while the generator's own code runs, not while the
    consumer handles an item.
    """
    gen, user = _start_stream(task, runtime, meta, args, kwargs)
    while True:
        token = current_frame.set(meta)
        try:
            item = next(user)
        except StopIteration:
            break
        except BaseException as exc:
            _fail(gen, meta, exc)
        finally:
            current_frame.reset(token)
        try:
            yield item
        except GeneratorExit:  # the consumer stopped early: that is a normal end
            user.close()
            break
    _finish(gen, meta, None)


async def run_async_stream(
    task: TaskSpec, runtime: Runtime, meta: TaskMetadata, args, kwargs
) -> AsyncIterator[Any]:
    """`run_stream` for async generator functions."""
    gen, user = _start_stream(task, runtime, meta, args, kwargs)
    while True:
        token = current_frame.set(meta)
        try:
            item = await user.__anext__()
        except StopAsyncIteration:
            break
        except BaseException as exc:
            _fail(gen, meta, exc)
        finally:
            current_frame.reset(token)
        try:
            yield item
        except GeneratorExit:
            await user.aclose()
            break
    _finish(gen, meta, None)


def _start_stream(task: TaskSpec, runtime: Runtime, meta: TaskMetadata, args, kwargs) -> Any:
    """`(policy, user's generator)` of a stream task, started with the task's frame current."""
    gen = steps(task, runtime, meta)
    token = current_frame.set(meta)
    try:
        next(gen)
        return gen, task.func(*args, **kwargs)
    finally:
        current_frame.reset(token)


def _fail(gen: Generator[float, Any, Any], meta: TaskMetadata, exc: BaseException) -> NoReturn:
    _finish(gen, meta, exc)  # the pipeline re-raises the failure as a TaskError
    raise exc  # pragma: no cover - never reached


def _finish(gen: Generator[float, Any, Any], meta: TaskMetadata, exc: BaseException | None) -> None:
    token = current_frame.set(meta)
    try:
        if exc is None:
            gen.send(None)
        else:
            gen.throw(exc)
    except StopIteration:
        return
    finally:
        current_frame.reset(token)
    raise AssertionError("a stream task's pipeline asked for a retry")  # pragma: no cover
