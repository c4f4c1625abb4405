"""The backend contract and the map job every backend runs."""

from __future__ import annotations

import abc
import math
import operator
import threading
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from time import perf_counter
from typing import Any
from typing import TypeAlias

import attrs

from daglite import drivers
from daglite import pipeline
from daglite.context import Frame
from daglite.context import ItemFrames
from daglite.context import Runtime
from daglite.context import current_frame
from daglite.context import running_frame
from daglite.interest import wants_of
from daglite.settings import DagliteSettings
from daglite.tallies import COUNTS
from daglite.tallies import SUCCEEDED
from daglite.tallies import current_map
from daglite.tallies import tally_of
from daglite.taskspec import TaskSpec

#: The result of one map item: `(index, ok, value)`, where `value` is the item's value, or
#: the `TaskError` it failed with when `ok` is false. The one outcome type of every backend,
#: also in the results workers send back: a plain tuple, the cheapest thing to build and
#: to pickle (a named tuple costs several times more of both, per item).
Outcome: TypeAlias = tuple[int, bool, Any]


@attrs.define(eq=False)
class MapJob:
    """One `map_tasks`/`gather_tasks` call, as handed to a backend.

    Attributes:
        task: The task to run for each item.
        items: The argument tuples, consumed lazily (an iterator).
        values: When the map has one iterable (and no bound object), its values, over the
            same iterator as `items` (which are 1-tuples of them): take from either one. A
            map loop that takes the values spares a tuple per item. `None` otherwise.
        total: The number of items when known up front, else `None`.
        map_id: Id of this map (in every item's events).
        runtime: The session runtime the map was started in.
        parent: The frame (task or workflow call) that started the map, if any.
        backend: The backend's name.
        return_exceptions: Failed items give their exception in place instead of raising.
        chunksize: Items per batch requested by the caller (`None`: the backend decides).
        stop: Set when the map should stop at once (Ctrl-C, a lost backend): workers check
            it between items.
        first_failure: Index of the lowest failed item so far (unless exceptions are
            returned): items after it are skipped, items before it still run, so the error
            raised is the first failing item by index on every backend.
        finished: How many items ran (set by `collect`).
        failures: How many of them failed (set by `collect`).
        batch_sizes: How many batches of each size the backend sent (`note_batch`).
        report: The map's `daglite.lifecycle.MapReport` (counts per item and per worker
            batch), or `None` when nobody listens.
    """

    task: TaskSpec
    items: Iterator[tuple[Any, ...]]
    total: int | None
    map_id: str
    runtime: Runtime
    parent: Frame | None
    backend: str
    values: Iterator[Any] | None = attrs.field(default=None, kw_only=True)
    return_exceptions: bool = False
    chunksize: int | None = None
    stop: threading.Event = attrs.field(factory=threading.Event)
    first_failure: int | None = None
    finished: int = 0
    failures: int = 0
    batch_sizes: dict[int, int] = attrs.field(factory=dict)
    report: Any = None
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)

    def note_batch(self, size: int) -> None:
        """Count a batch of `size` items sent to a worker (reported in `MapEnded`)."""
        self.batch_sizes[size] = self.batch_sizes.get(size, 0) + 1

    @property
    def failed(self) -> bool:
        """True once the map cannot succeed: stop submitting new items."""
        return self.first_failure is not None or self.stop.is_set()

    def note_failure(self, index: int) -> None:
        """Record that item `index` failed (a map that returns exceptions never fails)."""
        if self.return_exceptions:
            return
        with self._lock:
            if self.first_failure is None or index < self.first_failure:
                self.first_failure = index

    def skips(self, index: int) -> bool:
        """Whether item `index` need not run: the map stopped, or an earlier item failed."""
        first = self.first_failure
        return self.stop.is_set() or (first is not None and index > first)

    def run_item(self, index: int, args: tuple[Any, ...]) -> Any:
        """Run one item through the run pipeline in the current thread; returns its value.

        Async tasks get an event loop of their own; generator tasks are collected into lists.

        Raises:
            TaskError: The item failed.
        """
        task = self.task
        runtime = self.runtime
        drive = drivers.driver(task, runtime, item=True)
        meta = pipeline.make_metadata(
            task, runtime, args, {}, index, self.map_id, self.backend, drive is drivers.run_plain
        )
        result = drivers.call_collected(task, runtime, meta, args, drive)
        return run_coroutine(result) if task.is_async else result

    def run_chunk(
        self,
        chunk: Iterable[tuple[int, tuple[Any, ...]]],
        progress: Callable[[int], None] | None = None,
        budget: float | None = None,
    ) -> list[Outcome]:
        """Run items in order until done, or until one fails and exceptions are not returned.

        A chunk holds consecutive indexes, so it ends at the first item that `skips`: the
        outcomes are those of the chunk's first items, in its order (a worker's result
        relies on it to travel compact, `BatchResult.compact`). `progress`, if given, is
        called with each item's map index before it runs (a worker pool that watches it
        learns which item a dying worker was running). `budget`, if given, is seconds of
        work: the chunk also ends after the item that spends it, and whoever sent the
        chunk runs the rest later (a batch sized before the cost per item was known).
        """
        if drivers.driver(self.task, self.runtime, item=True) is drivers.run_plain:
            return self._run_plain_chunk(chunk, progress, budget)
        outcomes: list[Outcome] = []
        append = outcomes.append
        run_item = self.run_item
        deadline = perf_counter() + budget if budget is not None else math.inf
        for index, args in chunk:
            if self.skips(index):
                break
            if progress is not None:
                progress(index)
            try:
                append((index, True, run_item(index, args)))
            except Exception as exc:  # the item's error (a failed save or cache write too)
                append((index, False, exc))
                self.note_failure(index)
                if not self.return_exceptions:
                    break
            if budget is not None and perf_counter() >= deadline:
                break
        return outcomes

    def item_frames(self) -> ItemFrames:
        """The frame that a run of this map's plain items shares (see `ItemFrames`)."""
        task = self.task
        runtime = self.runtime
        parent = running_frame()
        return ItemFrames(
            task.name,
            task.qualname,
            task.description,
            parent.task_id if parent is not None else None,
            runtime.session_id,
            self.map_id,
            self.backend or runtime.backend,
            task.dataset_store,
        )

    def _run_plain_chunk(
        self,
        chunk: Iterable[tuple[int, tuple[Any, ...]]],
        progress: Callable[[int], None] | None,
        budget: float | None = None,
    ) -> list[Outcome]:
        """`run_chunk` for a plain call nobody watches (`pipeline.is_plain_call` of an item).

        Each item is what `drivers.run_plain` makes of it (a frame of its own while it
        runs, a counted success, a reported `TaskError`), without the per-item work that
        does not change within a chunk: choosing the driver, the metadata's fixed fields,
        finding the tallies. The items share one `ItemFrames` as their frame, which makes an
        item's metadata (and its id) only if something asks for it. Successes are counted
        into a part of the session's and the map's tallies that this thread alone adds to
        (`Tally.attach`): no lock per item, and the counts are still current whenever they
        are read. When the map's progress is watched, each item's end looks at the clock,
        so a long chunk of slow items still sends `MapProgress` on time, and so does a chunk
        with a `budget`, which ends once the clock passes it.
        """
        task = self.task
        runtime = self.runtime
        func = task.func
        frames = self.item_frames()
        sink = runtime.emit
        calls = tally_of(sink)
        items = current_map.get() if calls is not None else None
        if items is not None and items.map_id != self.map_id:
            items = None
        tallies = [tally for tally in (calls, items) if tally is not None]
        counting = bool(tallies)
        part = [0] * len(COUNTS)  # successes, counted by this thread alone
        watched = items is not None and items.watched
        due = items.due if items is not None else 0.0  # the map's next progress
        tick = items.tick if items is not None else None
        # The clock is read once per item, when the item ends (it is when the next one
        # starts), if a failure's duration is wanted or the map's progress is watched.
        clocked = (
            watched or budget is not None or (sink is not None and wants_of(sink).items.task_failed)
        )
        now = perf_counter() if clocked else 0.0
        deadline = now + budget if budget is not None else math.inf
        stopped = self.stop.is_set
        outcomes: list[Outcome] = []
        append = outcomes.append
        for tally in tallies:
            tally.attach(part)
        token = current_frame.set(frames)
        try:
            for index, args in chunk:
                first = self.first_failure
                if stopped() or (first is not None and index > first):
                    break
                if progress is not None:
                    progress(index)
                frames.index = index
                start = now
                try:
                    value = func(*args)
                except BaseException as exc:  # Ctrl-C is reported and raised on
                    try:
                        drivers.plain_failed(task, runtime, frames.meta(), args, {}, exc, start)
                    except Exception as error:  # the item's TaskError (or bad arguments)
                        append((index, False, error))
                        self.note_failure(index)
                        if not self.return_exceptions:
                            break
                        continue
                finally:
                    if clocked:
                        now = perf_counter()
                append((index, True, value))
                if counting:
                    part[SUCCEEDED] += 1
                if watched and now >= due:
                    tick()  # type: ignore[misc]
                    due = items.due  # type: ignore[union-attr]
                if now >= deadline:
                    break
        finally:
            current_frame.reset(token)
            for tally in tallies:
                tally.detach(part)
        return outcomes


def run_coroutine(coro: Any) -> Any:
    """Run `coro` to completion from sync code, also when this thread already runs a loop."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # A loop is running here (map_tasks called from async code): use a helper thread.
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    context = contextvars.copy_context()
    with ThreadPoolExecutor(1, thread_name_prefix="daglite-async") as pool:
        return pool.submit(context.run, asyncio.run, coro).result()


def collect(job: MapJob, outcomes: Iterable[Outcome]) -> list[Any]:
    """Order outcomes by index and apply `return_exceptions`.

    Raises:
        TaskError: The first failed item (by index) when `job.return_exceptions` is false.
    """
    ordered = sorted(outcomes, key=_index)  # C-level getters: no Python call per item
    job.finished = len(ordered)
    job.failures = len(ordered) - sum(map(_ok, ordered))
    if job.failures and not job.return_exceptions:
        raise next(value for _, ok, value in ordered if not ok)
    return list(map(_value, ordered))


_index = operator.itemgetter(0)
_ok = operator.itemgetter(1)
_value = operator.itemgetter(2)


class Backend(abc.ABC):
    """Base class of backends. Subclasses implement `map`; `close` releases resources.

    Args:
        settings: The settings of the session that created the backend.
    """

    def __init__(self, settings: DagliteSettings) -> None:
        self.settings = settings

    @classmethod  # noqa: B027 - optional for backends with nothing to check
    def check(cls, settings: DagliteSettings) -> None:
        """Fail early when the backend cannot work with `settings` (called at session open).

        Backends are started lazily, on the first map; a backend whose resources live
        elsewhere (a cluster scheduler) overrides this with a quick reachability check so a
        wrong address fails when the session opens. The default does nothing.

        Raises:
            BackendError: The backend cannot run with these settings (the message says why).
        """

    @abc.abstractmethod
    def map(self, job: MapJob) -> list[Any]:
        """Run every item of `job`; return the values in input order (see `collect`)."""

    def close(self) -> None:  # noqa: B027 - optional for backends that hold nothing
        """Release what the backend holds (pools, processes, connections)."""
