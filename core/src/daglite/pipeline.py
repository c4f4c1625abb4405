"""The run pipeline, written once for every kind of task and every place a task runs.

`steps()` is a generator holding the whole policy of a call: cache lookup, the
`before_task` hook and event, attempts with retries and backoff, cache write, dataset
auto-save, then `after_task` (or `on_task_error`). It yields the delay to wait before
each attempt and receives the attempt's value (or has its exception thrown in).

Four tiny drivers run that generator: `run_sync` and `run_async` for plain and async
functions, `run_stream` and `run_async_stream` for generator functions. They differ only
in how an attempt is invoked, waited for and bounded by the timeout.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import AsyncIterator
from collections.abc import Generator
from collections.abc import Iterator
from time import perf_counter
from typing import TYPE_CHECKING
from typing import Any
from typing import NoReturn

from daglite.context import Runtime
from daglite.context import TaskMetadata
from daglite.context import current_attempt
from daglite.context import current_frame
from daglite.context import new_id
from daglite.errors import TaskError
from daglite.errors import TaskTimeoutError

if TYPE_CHECKING:
    from daglite.tasks import BaseTask


class AttemptTimedOut(Exception):
    """Thrown into `steps()` by a driver when an attempt overran the task's timeout."""


class AttemptAbandoned(BaseException):
    """Raised asynchronously inside the thread of a timed-out attempt to stop its work."""


_new_tuple = tuple.__new__


def make_metadata(
    task: BaseTask[Any, Any],
    runtime: Runtime,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    map_index: int | None,
    map_id: str | None,
    backend: str | None = None,
) -> TaskMetadata:
    """The metadata (and so the frame) of one call of `task`."""
    parent = current_frame.get()
    # Binding checks the arguments before anything runs or is reported; only the fast path
    # of a plain task (nobody listening) skips it and checks them if the call fails.
    fast = task.plain and runtime.hook is None and runtime.emit is None
    inputs = {} if fast else task.bind(args, kwargs)
    name = task.resolve_name(inputs, map_index) if task.name_fields else task.name
    # tuple.__new__ skips the named tuple's Python-level __new__ (half the cost); every
    # field is given, in order.
    return _new_tuple(
        TaskMetadata,
        (
            new_id(),
            name,
            task.qualname,
            task.description,
            parent.task_id if parent is not None else None,
            runtime.session_id,
            map_index,
            map_id,
            backend or runtime.backend,
            inputs,
            task.dataset_store,
        ),
    )


_events_module: Any = None


def _events() -> Any:
    """`daglite.events`, imported the first time someone listens (then kept: no import cost)."""
    global _events_module
    if _events_module is None:
        from daglite import events

        _events_module = events
    return _events_module


def _describe(meta: TaskMetadata) -> str:
    where = f" (map index {meta.map_index})" if meta.map_index is not None else ""
    return f"task '{meta.name}'{where}"


def steps(
    task: BaseTask[Any, Any], runtime: Runtime, meta: TaskMetadata
) -> Generator[float, Any, Any]:
    """The policy of one call; see the module docstring. Returns the call's value."""
    emit = runtime.emit
    hook = runtime.hook
    inputs = meta.inputs
    ev: Any = None  # the `daglite.events` module, imported only when someone listens
    ids: dict[str, Any] = {}
    if emit is not None:
        ev = _events()
        ids = {
            "session_id": meta.session_id,
            "task_id": meta.task_id,
            "name": meta.name,
            "parent_id": meta.parent_id,
            "map_index": meta.map_index,
            "map_id": meta.map_id,
        }
    start = perf_counter()

    cache = None
    if task.cache is not False:
        # deferred: stores are only needed by cached tasks
        from daglite.caching import CachePlan

        cache = CachePlan.for_call(task, runtime, meta)
        found, value = cache.lookup()
        if found:
            if emit is not None:
                emit(ev.CacheHit(**ids, key=cache.key))
            if task.dataset is not None:  # the dataset is an output of the call: save it too
                from daglite.datasets import autosave

                autosave(task, runtime, meta, value)
            if emit is not None:
                emit(ev.TaskSucceeded(**ids, duration=perf_counter() - start, cached=True))
            if hook is not None:
                hook.on_cache_hit(metadata=meta, inputs=inputs, key=cache.key, value=value)
            return value
        if emit is not None:
            emit(ev.CacheMissed(**ids, key=cache.key, reason=cache.miss_reason))

    if emit is not None:
        emit(ev.TaskStarted(**ids, backend=meta.backend))
    if hook is not None:
        try:
            hook.before_task(metadata=meta, inputs=inputs)
        except BaseException as exc:  # a broken plugin: the call it started still ends
            _final_error(runtime, meta, exc, False, 0, start, ids)
            raise

    attempt = 0
    delay = 0.0
    while True:
        attempt += 1
        try:
            value = yield delay
            break
        except Exception as exc:
            timed_out = isinstance(exc, AttemptTimedOut)
            if timed_out:  # hooks, events and the caller see a public error, not our signal
                exc = TaskTimeoutError(
                    f"{_describe(meta)} timed out after {task.timeout:g} s "
                    f"(attempt {attempt} of {task.retries + 1})",
                    task_name=meta.name,
                    map_index=meta.map_index,
                    attempts=attempt,
                )
                if emit is not None:
                    emit(ev.TaskTimedOut(**ids, attempt=attempt, timeout=task.timeout))
            if attempt > task.retries:
                error = _final_error(runtime, meta, exc, timed_out, attempt, start, ids)
                raise error from (None if timed_out else exc)
            delay = task.retry_delay * task.retry_backoff ** (attempt - 1)
            if emit is not None:
                emit(ev.TaskRetried(**ids, attempt=attempt, delay=delay, **_error_fields(exc)))
            if hook is not None:
                hook.on_task_retry(
                    metadata=meta, inputs=inputs, error=exc, attempt=attempt, delay=delay
                )
        except BaseException as exc:  # Ctrl-C, cancellation: the call ends, no retry
            if not isinstance(exc, GeneratorExit):
                _final_error(runtime, meta, exc, False, attempt, start, ids)
            raise

    try:
        if cache is not None:
            cache.store(value)
        if task.dataset is not None:
            # deferred: only tasks with `dataset=` need it
            from daglite.datasets import autosave

            autosave(task, runtime, meta, value)
    except BaseException as exc:  # a failed save fails the call (raised as it is)
        _final_error(runtime, meta, exc, False, attempt, start, ids)
        raise

    duration = perf_counter() - start
    if emit is not None:
        emit(ev.TaskSucceeded(**ids, duration=duration, attempts=attempt))
    if hook is not None:
        hook.after_task(metadata=meta, inputs=inputs, result=value, duration=duration)
    return value


def _error_fields(exc: BaseException) -> dict[str, Any]:
    return {"error_type": type(exc).__name__, "error_message": str(exc)}


def _final_error(
    runtime: Runtime,
    meta: TaskMetadata,
    exc: BaseException,
    timed_out: bool,
    attempts: int,
    start: float,
    ids: dict[str, Any],
) -> TaskError:
    duration = perf_counter() - start
    if timed_out and isinstance(exc, TaskError):
        error = exc
    else:
        error = task_error(meta.name, meta.map_index, exc, attempts)
    if runtime.emit is not None:
        import traceback

        ev = _events()
        runtime.emit(
            ev.TaskFailed(
                **ids,
                duration=duration,
                attempts=attempts,
                traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
                arguments=ev.summarize_arguments(meta.inputs),
                **_error_fields(exc),
            )
        )
    if runtime.hook is not None:
        runtime.hook.on_task_error(
            metadata=meta, inputs=meta.inputs, error=exc, duration=duration, attempts=attempts
        )
    return error


def task_error(name: str, map_index: int | None, exc: BaseException, attempts: int) -> TaskError:
    """The `TaskError` reporting that task `name` failed with `exc` (set `__cause__` yourself)."""
    where = f" (map index {map_index})" if map_index is not None else ""
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return TaskError(
        f"task '{name}'{where} failed{tries}: {type(exc).__name__}: {exc}",
        task_name=name,
        map_index=map_index,
        attempts=attempts,
    )


# -- drivers ------------------------------------------------------------------------------


def run_sync(task: BaseTask[Any, Any], runtime: Runtime, meta: TaskMetadata, args, kwargs) -> Any:
    """Drive `steps()` for a plain function."""
    func = task.func
    timeout = task.timeout
    token = current_frame.set(meta)
    if task.plain and runtime.emit is None and runtime.hook is None:
        try:  # nothing to manage: the pipeline would only wrap errors
            return func(*args, **kwargs)
        except Exception as exc:
            raise task.failed_call(exc, args, kwargs, meta.map_index) from exc
        finally:
            current_frame.reset(token)
    retry_token = None
    try:
        gen = steps(task, runtime, meta)
        delay = next(gen)
        attempt = 1
        while True:
            try:
                if delay:
                    time.sleep(delay)
                if timeout is None:
                    value = func(*args, **kwargs)
                else:
                    value = _call_with_timeout(func, args, kwargs, timeout, meta.name)
            except BaseException as exc:
                delay = gen.throw(exc)  # raises when no retry is left (or on Ctrl-C)
                attempt += 1
                token_now = current_attempt.set((meta.task_id, attempt))
                retry_token = retry_token or token_now
            else:
                delay = gen.send(value)
    except StopIteration as stop:
        return stop.value
    finally:
        if retry_token is not None:
            current_attempt.reset(retry_token)
        current_frame.reset(token)


async def run_async(
    task: BaseTask[Any, Any], runtime: Runtime, meta: TaskMetadata, args, kwargs
) -> Any:
    """Drive `steps()` for an async function; a timeout cancels the attempt."""
    import asyncio

    func = task.func
    timeout = task.timeout
    token = current_frame.set(meta)
    retry_token = None
    try:
        gen = steps(task, runtime, meta)
        delay = next(gen)
        attempt = 1
        while True:
            try:
                if delay:
                    await asyncio.sleep(delay)
                if timeout is None:
                    value = await func(*args, **kwargs)
                else:
                    value = await _await_with_timeout(func(*args, **kwargs), timeout)
            except BaseException as exc:
                delay = gen.throw(exc)  # raises when no retry is left (or on cancellation)
                attempt += 1
                token_now = current_attempt.set((meta.task_id, attempt))
                retry_token = retry_token or token_now
            else:
                delay = gen.send(value)
    except StopIteration as stop:
        return stop.value
    finally:
        if retry_token is not None:
            current_attempt.reset(retry_token)
        current_frame.reset(token)


def run_stream(
    task: BaseTask[Any, Any], runtime: Runtime, meta: TaskMetadata, args, kwargs
) -> Iterator[Any]:
    """Drive `steps()` around a generator function: the attempt is the whole iteration.

    The task's frame is current only while the generator's own code runs, not while the
    consumer handles an item.
    """
    gen = steps(task, runtime, meta)
    token = current_frame.set(meta)
    try:
        next(gen)
        user = task.func(*args, **kwargs)
    finally:
        current_frame.reset(token)
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
    task: BaseTask[Any, Any], runtime: Runtime, meta: TaskMetadata, args, kwargs
) -> AsyncIterator[Any]:
    """`run_stream` for async generator functions."""
    gen = steps(task, runtime, meta)
    token = current_frame.set(meta)
    try:
        next(gen)
        user = task.func(*args, **kwargs)
    finally:
        current_frame.reset(token)
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


# -- timeouts -----------------------------------------------------------------------------


def _call_with_timeout(func, args, kwargs, timeout: float, name: str) -> Any:
    """Run one attempt in a daemon thread and stop waiting for it after `timeout` seconds.

    The abandoned attempt cannot be killed from outside (only a process can be), so it is
    asked to stop: `AttemptAbandoned` is raised inside its thread at the next Python
    instruction. Pure-Python work stops at once; a blocking C call (a `sleep`, a socket
    read) finishes that call first. Its result, if any, is discarded.
    """
    return _Attempt(func, args, kwargs, name).wait(timeout)


class _Attempt:
    """One attempt of a task running in a daemon thread, which the caller may abandon.

    A lock makes "the attempt finished" and "the caller gave up" exclusive, so the stop
    request can only land while the attempt is still inside `_run`, where it is caught.
    """

    def __init__(self, func, args, kwargs, name: str) -> None:
        context = contextvars.copy_context()
        self._call = lambda: context.run(func, *args, **kwargs)
        self._guard = threading.Lock()
        self._done = threading.Event()
        self._abandoned = False
        self._outcome: tuple[bool, Any] = (False, None)
        self._thread = threading.Thread(
            target=self._run, name=f"daglite-timeout-{name}", daemon=True
        )

    def _run(self) -> None:
        try:
            try:
                outcome = (True, self._call())
            except BaseException as exc:
                outcome = (False, exc)
            with self._guard:
                if not self._abandoned:
                    self._outcome = outcome
                    self._done.set()
        except AttemptAbandoned:
            pass  # the caller stopped waiting: nothing is left to report

    def wait(self, timeout: float) -> Any:
        """Start the attempt; its value, its exception, or `AttemptTimedOut`."""
        self._thread.start()
        try:
            finished = self._done.wait(timeout)
        except BaseException:  # Ctrl-C while waiting: stop the attempt too
            self._abandon()
            raise
        if not finished and self._abandon():
            raise AttemptTimedOut(timeout)
        ok, value = self._outcome
        if ok:
            return value
        raise value

    def _abandon(self) -> bool:
        """Ask the attempt to stop unless it has just finished; True if it was abandoned."""
        import ctypes

        with self._guard:
            if self._done.is_set():
                return False
            self._abandoned = True
            if self._thread.ident is not None:  # always: the thread was started
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread.ident), ctypes.py_object(AttemptAbandoned)
                )
            return True


async def _await_with_timeout(coro, timeout: float) -> Any:
    """Await `coro` as a task of its own; cancel it after `timeout` seconds.

    Waiting with `asyncio.wait` (not `wait_for`) tells our timeout apart from a
    `TimeoutError` the task raises itself, without comparing clocks.
    """
    import asyncio

    attempt = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait({attempt}, timeout=timeout)
    except BaseException:  # we were cancelled ourselves: take the attempt with us
        attempt.cancel()
        raise
    if done:
        return attempt.result()
    attempt.cancel()
    await asyncio.wait({attempt})  # let it run its cleanup (finally blocks, except clauses)
    if not attempt.cancelled():
        attempt.exception()  # retrieved: it ends with the timeout, whatever it did last
    raise AttemptTimedOut(timeout)
