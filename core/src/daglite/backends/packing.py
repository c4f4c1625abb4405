"""Packing and relaying for process-style backends: what a map sends and what comes back.

On the coordinator, `worker_spec` describes the session to workers (once per session and
backend), `pack_job` the map's task and ids (once per map) and `pack_batch` each batch's
items (their indexes and arguments side by side), all with cloudpickle (an argument
repeated across the items and large, found by `SharedArgs`, is pickled once per map and
stands in the items as a `SharedArg`): a value that cannot be pickled fails here, before
any worker starts, naming the task and argument. `relay` unpacks a worker's `BatchResult`
and replays its side effects on the coordinator (dataset writes, then log records and
events, in the order the worker made them); `relay_events` does the same for what a
worker streamed before its batch ended.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from daglite.backends.base import MapJob
from daglite.backends.environ import session_environ
from daglite.backends.transport import BatchResult
from daglite.backends.transport import JobInfo
from daglite.backends.transport import SharedArg
from daglite.backends.transport import WorkerSpec
from daglite.context import Runtime
from daglite.context import new_id
from daglite.errors import BackendError
from daglite.tallies import tally_of
from daglite.taskspec import TaskSpec

#: The worker spec of maps run outside any session (the bare runtime's), by backend.
_bare_spec: tuple[Runtime, WorkerSpec] | None = None


def worker_spec(
    runtime: Runtime, backend: str, worker_store: Callable[[Any], Any] | None = None
) -> WorkerSpec:
    """The `WorkerSpec` of `runtime`'s session for `backend` (built once, kept on the session).

    Args:
        runtime: The runtime of the map's session.
        backend: The backend's name.
        worker_store: How the session's stores are described to workers (the backend's
            `TransportBackend.worker_store`); as they are when `None`.

    Raises:
        BackendError: A hook plugin or a store object cannot be pickled.
    """
    global _bare_spec
    import cloudpickle

    session = runtime.session
    if session is not None:
        cached = session.worker_spec
    else:
        cached = _bare_spec[1] if _bare_spec is not None and _bare_spec[0] is runtime else None
    if cached is not None and cached.backend == backend:
        return cached
    plugins = list(session.hook_plugins) if session is not None else []
    for plugin in plugins:
        _check(plugin, f"hook plugin {plugin!r}")
    stores = (runtime.cache_store, runtime.dataset_store)
    if worker_store is not None:
        stores = (worker_store(stores[0]), worker_store(stores[1]))
    for what, store in zip(("cache", "dataset"), stores):
        _check(store, f"the {what} store {store!r}")
    spec = WorkerSpec(
        key=new_id(),
        session_id=runtime.session_id,
        settings=runtime.settings,
        backend=backend,
        emit=runtime.emit is not None,
        wants=getattr(runtime.emit, "wants", None),
        sys_path=tuple(p for p in sys.path if isinstance(p, str)),
        payload=cloudpickle.dumps((plugins, *stores)),
        environ=session_environ(os.environ, runtime.settings.worker_env),
    )
    if session is not None:
        session.worker_spec = spec
    else:
        _bare_spec = (runtime, spec)
    return spec


def _check(obj: Any, what: str) -> None:
    import cloudpickle

    try:
        cloudpickle.dumps(obj)
    except Exception as exc:
        raise BackendError(f"{what} cannot be sent to a worker process: {exc}") from exc


def pack_job(job: MapJob) -> bytes:
    """The cloudpickled `JobInfo` of `job` (its task and ids).

    Raises:
        BackendError: The task cannot be pickled.
    """
    import cloudpickle

    parent = job.parent
    info = JobInfo(
        task=job.task,
        map_id=job.map_id,
        parent_id=parent.task_id if parent is not None else None,
        return_exceptions=job.return_exceptions,
    )
    try:
        return cloudpickle.dumps(info)
    except Exception as exc:
        raise BackendError(
            f"task '{job.task.name}' cannot be sent to a worker process: {exc}"
        ) from exc


#: An argument repeated across a map's batches is shared from this size on (pickled, bytes).
SHARED_BYTES = 64 * 1024


class SharedArgs:
    """The large arguments a map repeats across its items, each pickled once per map.

    An argument is shared when the first items of two batches in a row hold the very same
    object at the same position and it pickles to `SHARED_BYTES` or more (`[frame] * n`,
    `itertools.repeat(model)`). Looking at one item per batch keeps the cost off the items.
    """

    def __init__(self) -> None:
        self.last: tuple[Any, ...] = ()
        self.by_id: dict[int, SharedArg] = {}
        self.kept: list[Any] = []  # the objects looked at: alive, so their ids stay theirs
        self.entries: tuple[tuple[str, bytes | None], ...] = ()  # for `BatchRequest.shared`

    def scan(self, args: Sequence[tuple[Any, ...]]) -> None:
        """Look at the first item's arguments of a new batch (before `pack_batch`)."""
        import cloudpickle

        first = args[0] if args else ()
        for position, value in enumerate(first):
            if position >= len(self.last) or self.last[position] is not value:
                continue
            if id(value) in self.by_id or any(value is kept for kept in self.kept):
                continue
            self.kept.append(value)
            try:
                data = cloudpickle.dumps(value)
            except Exception:  # `pack_batch` names it
                continue
            if len(data) >= SHARED_BYTES:
                self.by_id[id(value)] = arg = SharedArg(new_id())
                self.entries += ((arg.key, data),)
        self.last = first

    def swap(self, args: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The items' `args` with their shared arguments replaced by their `SharedArg`."""
        by_id = self.by_id
        return [tuple(by_id.get(id(value), value) for value in one) for one in args]


def pack_batch(
    task: TaskSpec,
    indexes: Sequence[int],
    args: Sequence[tuple[Any, ...]],
    shared: SharedArgs | None = None,
    budget: float | None = None,
    single: bool = False,
) -> bytes:
    """The cloudpickled items of a batch: `(indexes, args)`, or `(..., budget, single)`.

    `indexes` are the items' map indexes (a `range` when they are consecutive: it pickles
    to a few bytes, and the worker then sends its values back compact, see
    `BatchResult.compact`); `args` their argument tuples, with shared arguments by
    reference when `shared` is given, or their values when `single` (a map of one
    iterable: no tuple each). A `budget` (seconds) lets the worker stop after the item
    that spends it (`MapJob.run_chunk`): the map loop sends the rest again.

    Raises:
        BackendError: An argument cannot be pickled (the message names it and the task).
    """
    import cloudpickle

    try:
        if shared is not None and shared.by_id:
            args = shared.swap(args)
        if budget is None and not single:
            return cloudpickle.dumps((indexes, args))
        return cloudpickle.dumps((indexes, args, budget, single))
    except Exception as exc:
        error = exc
    names = list(task.signature.parameters)
    for index, one in zip(indexes, zip(args) if single else args):
        for position, value in enumerate(one):
            try:
                cloudpickle.dumps(value)
            except Exception as exc:
                name = names[position] if position < len(names) else f"#{position}"
                raise BackendError(
                    f"argument '{name}' of task '{task.name}' (map index {index}) cannot be "
                    f"sent to a worker process: {exc}"
                ) from exc
    raise BackendError(
        f"the arguments of task '{task.name}' cannot be sent to a worker process: {error}"
    ) from error


def pack_items(
    task: TaskSpec,
    chunk: list[tuple[int, tuple[Any, ...]]],
    shared: SharedArgs | None = None,
) -> bytes:
    """`pack_batch` of a chunk of `(map_index, args)` pairs.

    Raises:
        BackendError: An argument cannot be pickled (the message names it and the task).
    """
    indexes: Sequence[int] = [index for index, _ in chunk]
    if indexes:
        run = range(indexes[0], indexes[0] + len(indexes))
        if indexes == list(run):
            indexes = run
    return pack_batch(task, indexes, [args for _, args in chunk], shared)


def relay(data: bytes, job: MapJob, failed: dict[int, Exception] | None = None) -> BatchResult:
    """Unpack a worker's `run_batch` bytes and replay its side effects on the coordinator.

    Dataset writes are applied first (`write.apply(runtime)`), then log records go to
    their loggers and events to the session's processors, in the order the worker made
    them. Returns the unpacked result (its `outcomes` are the items' values or errors).
    A write that fails here fails its item (`failed`: map index -> error, see `apply`), and
    the worker's `TaskSucceeded` and `DatasetSaved` of that item are left out.

    Raises:
        BackendError: The batch could not run in the worker, or its result cannot be read.
    """
    try:
        result: BatchResult = pickle.loads(data)
    except Exception as exc:
        raise BackendError(
            f"the results of task '{job.task.name}' cannot be read back from a worker "
            f"process: {type(exc).__name__}: {exc}"
        ) from exc
    if result.error is not None:
        hint = " (is the task's module importable there?)"
        raise BackendError(
            f"task '{job.task.name}' could not be loaded in worker process {result.pid}: "
            f"{result.error}{hint if result.error.startswith('ModuleNotFoundError') else ''}"
        )
    runtime = job.runtime
    for write in result.writes:
        apply(write, runtime, failed)
    if result.counts is not None:  # counts of calls that sent no event
        tally = tally_of(runtime.emit)
        if tally is not None:
            tally.merge(result.counts)
    if job.report is not None:
        job.report.merge(result.map_counts)
    for record in result.logs:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
    emit = runtime.emit
    if emit is not None:
        for event in result.events:
            if not (failed and _overturned(event, job, failed)):
                emit(event)
    return result


def relay_events(data: bytes, job: MapJob, failed: dict[int, Exception] | None = None) -> None:
    """Replay what a worker streamed during a batch: `(is_write, obj)` pairs, in order."""
    runtime = job.runtime
    emit = runtime.emit
    for is_write, obj in pickle.loads(data):
        if is_write:
            apply(obj, runtime, failed)
        elif emit is not None and not (failed and _overturned(obj, job, failed)):
            emit(obj)


def _overturned(event: Any, job: MapJob, failed: dict[int, Exception]) -> bool:
    """Whether `event` is a worker's success or save of an item whose write failed here.

    Such an item failed (the map loop reports it, `MapReport.write_failed`), so its
    `TaskSucceeded` and `DatasetSaved` are not relayed.
    """
    return (
        getattr(event, "map_index", None) in failed
        and event.kind in ("TaskSucceeded", "DatasetSaved")
        and getattr(event, "map_id", job.map_id) == job.map_id
    )


def apply(write: Any, runtime: Runtime, failed: dict[int, Exception] | None) -> None:
    """Apply a relayed `daglite.datasets.RelayedWrite`; if it fails, record the error as its item's.

    The write's `map_index` names its item; the error then becomes that item's outcome
    (`failed`), so one failed write never fails the whole map. A write that names no item,
    or with nowhere to record it, raises.
    """
    try:
        write.apply(runtime)
    except Exception as exc:
        index = write.map_index
        if failed is None or index is None:
            raise
        failed.setdefault(index, exc)
