"""Fan-out: `map_tasks` runs a task over iterables on a backend; `gather_tasks` on the loop."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Iterable
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any
from typing import TypeVar
from typing import overload

from daglite import drivers
from daglite import pipeline
from daglite.backends.base import MapJob
from daglite.context import Runtime
from daglite.context import current_runtime
from daglite.context import new_id
from daglite.context import outside_runtime
from daglite.context import running_frame
from daglite.datasets import load_dataset
from daglite.datasets import save_dataset
from daglite.lifecycle import MapReport
from daglite.session import active_session
from daglite.session import check_backend
from daglite.session import check_backend_name
from daglite.taskspec import TaskSpec
from daglite.taskspec import unbind

# `load_dataset` / `save_dataset` live in `daglite.datasets`; the API reference documents them
# with the composers, so they can be imported from here too.
__all__ = ["gather_tasks", "load_dataset", "map_tasks", "save_dataset"]

R = TypeVar("R")

#: The stop event of the map `gather_tasks(backend=...)` runs in a helper thread: set when the
#: gather is cancelled, so the map stops too (read by `map_tasks` in that thread).
_gather_stop: ContextVar[threading.Event | None] = ContextVar("daglite_gather_stop", default=None)


def _ensure_task(task: Any, caller: str) -> tuple[TaskSpec, tuple[Any, ...]]:
    """The task to run and what is bound before each item's arguments (`obj` of `obj.m`)."""
    found = unbind(task)
    if found is None:
        raise TypeError(
            f"`{caller}` requires a `@task`-decorated callable, got {task!r}. "
            "Decorate the function with `@task` first."
        )
    return found


def _zip(
    task: TaskSpec,
    bound: tuple[Any, ...],
    iterables: tuple[Iterable[Any], ...],
    caller: str,
) -> Any:
    """The items' argument tuples (`bound` first).

    Raises:
        TypeError: An iterable is not one (the message names its parameter).
    """
    try:
        items = zip(*iterables)
    except TypeError:
        params = list(task.signature.parameters)[len(bound) :]
        for position, value in enumerate(iterables):
            try:
                iter(value)
            except TypeError:
                param = f" (for parameter '{params[position]}')" if position < len(params) else ""
                raise TypeError(
                    f"`{caller}({task.name}, ...)`: argument {position + 1}{param} is "
                    f"{type(value).__name__} {value!r}, which is not iterable; pass one "
                    f"iterable of values per parameter, e.g. a list, or [value] * n to repeat "
                    "a constant"
                ) from None
        raise
    if bound:  # a bound task (`obj.method`): its object travels with every item
        return ((*bound, *args) for args in items)
    return items


def _total(iterables: tuple[Iterable[Any], ...]) -> int | None:
    try:
        return min((len(it) for it in iterables), default=0)  # type: ignore[arg-type]
    except TypeError:
        return None


def _pick_backend(task: TaskSpec, backend: str | None, runtime: Runtime) -> str:
    if runtime.in_worker:
        return "inline"  # inside a worker process: never fan out again
    if backend is not None:
        return backend
    parent = running_frame()
    if parent is not None and parent.is_task:
        return "inline"  # nested maps default to inline to avoid over-saturation
    return task.backend or runtime.backend


@overload
def map_tasks(
    task: Callable[..., AsyncIterator[R]],
    *iterables: Iterable[Any],
    backend: str | None = None,
    return_exceptions: bool = False,
    chunksize: int | None = None,
) -> list[list[R]]: ...
@overload
def map_tasks(
    task: Callable[..., Iterator[R]],
    *iterables: Iterable[Any],
    backend: str | None = None,
    return_exceptions: bool = False,
    chunksize: int | None = None,
) -> list[list[R]]: ...
@overload
def map_tasks(
    task: Callable[..., Coroutine[Any, Any, R]],
    *iterables: Iterable[Any],
    backend: str | None = None,
    return_exceptions: bool = False,
    chunksize: int | None = None,
) -> list[R]: ...
@overload
def map_tasks(
    task: Callable[..., R],
    *iterables: Iterable[Any],
    backend: str | None = None,
    return_exceptions: bool = False,
    chunksize: int | None = None,
) -> list[R]: ...
def map_tasks(
    task: Callable[..., Any],
    *iterables: Iterable[Any],
    backend: str | None = None,
    return_exceptions: bool = False,
    chunksize: int | None = None,
) -> list[Any]:
    """Map a task across iterables using the active backend.

    Each item is executed as a separate task call with full event emission and hook dispatch
    (if a session is active). The iterables are zipped (stopping at the shortest) and consumed
    lazily. Async tasks are run to completion on an event loop of their own where the item
    executes; generator tasks are collected into lists. A map started inside a mapped task
    runs inline unless a backend is given.

    Args:
        task: Task to be mapped. Must be a `@task`-decorated callable, either sync or async.
        *iterables: Iterables whose elements are zipped and unpacked as arguments to `task`.
        backend: Backend override. `None` inherits from the task, the active session or the
            global settings.
        return_exceptions: When true, a failed item gives its `TaskError` in place and the
            other items still run (the `asyncio.gather` convention).
        chunksize: Items sent to a worker at a time (`None`: the backend chooses).

    Returns:
        Ordered list of results, one per zipped item tuple.

    Raises:
        TypeError: If `task` is not a `@task`-decorated callable.
        ValueError: `chunksize` is not a whole number >= 1.
        TaskError: The first failed item (by index), unless `return_exceptions` is true.
        BackendError: The backend is unknown, or lost a worker.

    Examples:
        >>> from daglite import map_tasks, task
        >>> @task
        ... def power(base: int, exponent: int) -> int:
        ...     return base**exponent
        >>> map_tasks(power, [1, 2, 3], [2, 2, 2], backend="thread")
        [1, 4, 9]
    """
    checked, bound = _ensure_task(task, "map_tasks")
    if backend is not None:
        check_backend_name(backend)
    items = _zip(checked, bound, iterables, "map_tasks")
    if chunksize is not None and (
        not isinstance(chunksize, int) or isinstance(chunksize, bool) or chunksize < 1
    ):
        raise ValueError(f"chunksize must be a whole number >= 1 or None, not {chunksize!r}")
    total = _total(iterables)
    if total == 0:
        return []
    runtime = current_runtime.get() or outside_runtime(f"map_tasks of task '{checked.name}'")
    name = _pick_backend(checked, backend, runtime)
    session = active_session()
    owned = None
    if session is not None and not runtime.in_worker:
        instance = session.get_backend(name)
    else:  # outside a session (or inside a worker): a backend for this map only
        instance = owned = check_backend(name)(runtime.settings)
    parent = running_frame()
    stop = _gather_stop.get()
    if stop is not None:
        _gather_stop.set(None)  # for this map only, not for maps nested in its items
    map_id = new_id()
    report = MapReport(
        runtime, map_id, checked.name, name, total, parent.task_id if parent is not None else None
    )
    values = None
    if len(iterables) == 1 and not bound:  # one iterator, taken by the values or the items
        values = report.counted(iter(iterables[0]))
        items = zip(values)
    else:
        items = report.counted(items)
    job = MapJob(
        task=checked,
        items=items,
        values=values,
        total=total,
        map_id=map_id,
        runtime=runtime,
        parent=parent,
        backend=name,
        return_exceptions=return_exceptions,
        chunksize=chunksize,
        stop=stop or threading.Event(),
        report=report,
    )
    report.started()
    try:
        return instance.map(job)
    finally:
        try:
            if owned is not None:
                owned.close()
        finally:
            report.ended(batches=job.batch_sizes)


@overload
async def gather_tasks(
    task: Callable[..., AsyncIterator[R]],
    *iterables: Iterable[Any],
    backend: str | None = None,
    return_exceptions: bool = False,
) -> list[list[R]]: ...
@overload
async def gather_tasks(
    task: Callable[..., Coroutine[Any, Any, R]],
    *iterables: Iterable[Any],
    backend: str | None = None,
    return_exceptions: bool = False,
) -> list[R]: ...
@overload
async def gather_tasks(
    task: Callable[..., R],
    *iterables: Iterable[Any],
    backend: str | None = None,
    return_exceptions: bool = False,
) -> list[R]: ...
async def gather_tasks(
    task: Callable[..., Any],
    *iterables: Iterable[Any],
    backend: str | None = None,
    return_exceptions: bool = False,
) -> list[Any]:
    """Gather async tasks concurrently across iterables using `asyncio.gather`.

    Every item runs as a separate task call on the running event loop. When `backend` is
    given, the items are instead handed to that backend (as `map_tasks` would) from a helper
    thread, so the loop stays free; cancelling the gather stops that map (items already
    running finish). On the first failure (unless `return_exceptions`) the
    other items are cancelled.

    Args:
        task: An async `@task`-decorated callable.
        *iterables: Iterables whose elements are zipped and unpacked as arguments to `task`.
        backend: Backend override. `None` runs the items on the running event loop.
        return_exceptions: When true, a failed item gives its `TaskError` in place.

    Returns:
        Ordered list of results, one per zipped item tuple.

    Raises:
        TypeError: If `task` is not a `@task`-decorated callable or is not async.
        TaskError: The first item to fail, unless `return_exceptions` is true.

    Examples:
        >>> import asyncio
        >>> from daglite import gather_tasks, task
        >>> @task
        ... async def double(x: int) -> int:
        ...     return 2 * x
        >>> asyncio.run(gather_tasks(double, [1, 2, 3]))
        [2, 4, 6]
    """
    import asyncio

    checked, bound = _ensure_task(task, "gather_tasks")
    if not checked.is_async:
        raise TypeError(
            "`gather_tasks` requires an async `@task`. Use `map_tasks` for sync tasks, or make "
            "your task async."
        )
    items = _zip(checked, bound, iterables, "gather_tasks")  # an iterator is not consumed here
    if backend is not None:
        check_backend_name(backend)
        stop = threading.Event()
        token = _gather_stop.set(stop)  # the helper thread runs in a copy of this context
        try:
            return await asyncio.to_thread(
                map_tasks, task, *iterables, backend=backend, return_exceptions=return_exceptions
            )
        except BaseException:  # cancelled: the thread cannot be, but its map can stop
            stop.set()
            raise
        finally:
            _gather_stop.reset(token)
    items = list(items)
    if not items:
        return []
    runtime = current_runtime.get() or outside_runtime(f"gather_tasks of task '{checked.name}'")
    parent = running_frame()
    map_id = new_id()
    report = MapReport(
        runtime,
        map_id,
        checked.name,
        "asyncio",
        len(items),
        parent.task_id if parent is not None else None,
    )
    report.started()
    futures: list[asyncio.Future[Any]] = []
    try:
        for index, args in enumerate(items):  # binding may fail: the map still ends
            meta = pipeline.make_metadata(checked, runtime, args, {}, index, map_id, "asyncio")
            coro = drivers.call_collected(checked, runtime, meta, args)
            futures.append(asyncio.ensure_future(coro))
        return list(await asyncio.gather(*futures, return_exceptions=return_exceptions))
    except BaseException:
        for future in futures:
            future.cancel()
        await asyncio.gather(*futures, return_exceptions=True)
        raise
    finally:
        report.ended()
