"""The lifecycle reporter: each moment of a run paired with its event, its hook and its counts.

A task call has six moments (cache hit, started, retried, timed out, succeeded, failed);
workflows, maps and sessions have a start and an end (maps also progress). Each moment
is reported here, once: the event is built only when a processor wants it (see
`daglite.interest`), the hook fires when a hook plugin is registered, and the counts that
`SessionEnded`, `WorkflowEnded`, `MapProgress` and `MapEnded` carry are kept whenever
somebody listens.

The counts are kept in `daglite.tallies`.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from daglite.context import TaskMetadata
from daglite.context import new_id
from daglite.context import running_frame
from daglite.errors import TaskError
from daglite.errors import task_error
from daglite.interest import NOTHING
from daglite.interest import wants_of
from daglite.tallies import CACHED
from daglite.tallies import COUNTS
from daglite.tallies import FAILED
from daglite.tallies import RETRIED
from daglite.tallies import SAVED
from daglite.tallies import SUCCEEDED
from daglite.tallies import TIMED_OUT
from daglite.tallies import Tally
from daglite.tallies import count_call
from daglite.tallies import current_map
from daglite.tallies import tally_of

_events_module: Any = None


def events() -> Any:
    """`daglite.events`, imported the first time an event is built (then kept)."""
    global _events_module
    if _events_module is None:
        from daglite import events as module

        _events_module = module
    return _events_module


# -- task calls ---------------------------------------------------------------------------


class CallReport:
    """The moments of one task call: events, hooks and counts.

    Args:
        runtime: The runtime the call runs in.
        meta: The call's metadata.
        start: When the call started (`time.perf_counter()`; now by default).
    """

    __slots__ = ("hook", "meta", "sink", "start", "wants")

    def __init__(self, runtime: Any, meta: TaskMetadata, start: float | None = None) -> None:
        sink = runtime.emit
        self.sink = sink
        wants = wants_of(sink) if sink is not None else NOTHING
        self.wants = wants if meta.map_index is None else wants.items
        self.hook = runtime.hook
        self.meta = meta
        self.start = perf_counter() if start is None else start

    def _event(self, kind: str, **fields: Any) -> None:
        meta = self.meta
        self.sink(
            getattr(events(), kind)(
                session_id=meta.session_id,
                task_id=meta.task_id,
                name=meta.name,
                parent_id=meta.parent_id,
                map_index=meta.map_index,
                map_id=meta.map_id,
                **fields,
            )
        )

    def cache_missed(self, key: str, reason: str) -> None:
        """No usable cache entry: `CacheMissed`."""
        if self.wants.cache_missed:
            self._event("CacheMissed", key=key, reason=reason)

    def cache_hit(self, key: str) -> None:
        """A usable cache entry was found: `CacheHit` (the call ends with `cached`)."""
        if self.wants.cache_hit:
            self._event("CacheHit", key=key)

    def cached(self, key: str, value: Any) -> None:
        """The cached value is the call's result: `TaskSucceeded(cached=True)`, `on_cache_hit`.

        Called after the call's dataset, if any, was saved.
        """
        if self.wants.task_succeeded:
            self._event("TaskSucceeded", duration=perf_counter() - self.start, cached=True)
        count_call(self.sink, self.meta, CACHED)
        if self.hook is not None:
            meta = self.meta
            self.hook.on_cache_hit(metadata=meta, inputs=meta.inputs, key=key, value=value)

    def started(self) -> None:
        """The first attempt is about to run: `TaskStarted`, the `before_task` hook."""
        meta = self.meta
        if self.wants.task_started:
            self._event("TaskStarted", backend=meta.backend)
        if self.hook is not None:
            try:
                self.hook.before_task(metadata=meta, inputs=meta.inputs)
            except BaseException as exc:  # a broken plugin: the call it started still ends
                self.failed(exc, 0)
                raise

    def timed_out(self, attempt: int, timeout: float) -> None:
        """An attempt overran the timeout: `TaskTimedOut`."""
        count_call(self.sink, self.meta, TIMED_OUT)
        if self.wants.task_timed_out:
            self._event("TaskTimedOut", attempt=attempt, timeout=timeout)

    def retried(self, exc: BaseException, attempt: int, delay: float) -> None:
        """An attempt failed and another follows: `TaskRetried`, the `on_task_retry` hook."""
        count_call(self.sink, self.meta, RETRIED)
        if self.wants.task_retried:
            self._event("TaskRetried", attempt=attempt, delay=delay, **_error_fields(exc))
        if self.hook is not None:
            meta = self.meta
            self.hook.on_task_retry(
                metadata=meta, inputs=meta.inputs, error=exc, attempt=attempt, delay=delay
            )

    def succeeded(self, value: Any, attempts: int) -> None:
        """The call returned `value`: `TaskSucceeded`, the `after_task` hook."""
        duration = perf_counter() - self.start
        if self.wants.task_succeeded:
            self._event("TaskSucceeded", duration=duration, attempts=attempts)
        count_call(self.sink, self.meta, SUCCEEDED)
        if self.hook is not None:
            meta = self.meta
            self.hook.after_task(metadata=meta, inputs=meta.inputs, result=value, duration=duration)

    def failed(self, exc: BaseException, attempts: int, timed_out: bool = False) -> TaskError:
        """The call failed for good: `TaskFailed`, the `on_task_error` hook.

        Returns:
            The `TaskError` to raise (a timeout's own `TaskTimeoutError`).
        """
        meta = self.meta
        duration = perf_counter() - self.start
        if timed_out and isinstance(exc, TaskError):
            error = exc
        else:
            error = task_error(meta.name, meta.map_index, exc, attempts)
        count_call(self.sink, meta, FAILED)
        if self.wants.task_failed:
            import traceback

            self._event(
                "TaskFailed",
                duration=duration,
                attempts=attempts,
                traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
                arguments=events().summarize_arguments(meta.inputs),
                **_error_fields(exc),
            )
        if self.hook is not None:
            self.hook.on_task_error(
                metadata=meta, inputs=meta.inputs, error=exc, duration=duration, attempts=attempts
            )
        return error


def _error_fields(exc: BaseException) -> dict[str, Any]:
    return {"error_type": type(exc).__name__, "error_message": str(exc)}


# -- datasets, workflows, maps, sessions ----------------------------------------------------


def dataset_saved(runtime: Any, meta: TaskMetadata | None, **fields: Any) -> None:
    """A dataset was written: count it, and `DatasetSaved` if wanted."""
    sink = runtime.emit
    if sink is None:
        return
    tally = tally_of(sink)
    if tally is not None:
        tally.add(SAVED)
    if "DatasetSaved" in wants_of(sink):
        sink(events().DatasetSaved(session_id=runtime.session_id, **_owner(meta), **fields))


def dataset_loaded(runtime: Any, meta: TaskMetadata | None, **fields: Any) -> None:
    """A dataset was read: `DatasetLoaded` if wanted."""
    sink = runtime.emit
    if sink is not None and "DatasetLoaded" in wants_of(sink):
        sink(events().DatasetLoaded(session_id=runtime.session_id, **_owner(meta), **fields))


def _owner(meta: Any) -> dict[str, Any]:
    if meta is None:
        return {"task_id": None, "map_index": None}
    return {"task_id": meta.task_id, "map_index": meta.map_index}


class SpanReport:
    """The start and end of a workflow or a session: events with the counts in between.

    Args:
        runtime: The runtime (its sink receives the events and keeps the session tally).
        kind: `"Workflow"` or `"Session"`: the events are `<kind>Started` / `<kind>Ended`.
        ids: The fields both events carry (`session_id`, and a workflow's ids).
    """

    __slots__ = ("_before", "ids", "kind", "sink", "start")

    def __init__(self, runtime: Any, kind: str, **ids: Any) -> None:
        self.sink = runtime.emit
        self.kind = kind
        self.ids = ids
        self.start = perf_counter()
        tally = tally_of(self.sink)
        self._before = tally.snapshot() if tally is not None else None

    def started(self, **fields: Any) -> None:
        """`<kind>Started`, if wanted."""
        kind = self.kind + "Started"
        if kind in wants_of(self.sink):
            self.sink(getattr(events(), kind)(**self.ids, **fields))

    def ended(self, error: BaseException | None = None) -> None:
        """`<kind>Ended` with the counts since the start, if wanted."""
        kind = self.kind + "Ended"
        sink = self.sink
        if kind not in wants_of(sink):
            return
        fields: dict[str, Any] = {"duration": perf_counter() - self.start}
        if error is None:
            fields["status"] = "success"
        else:
            fields.update(
                status="failure", error_type=type(error).__name__, error_message=str(error)
            )
        tally = tally_of(sink)
        if tally is not None and self._before is not None:
            now = tally.snapshot()
            fields.update(zip(COUNTS, (a - b for a, b in zip(now, self._before))))
        sink(getattr(events(), kind)(**self.ids, **fields))


class MapReport:
    """The start, progress and end of one `map_tasks` or `gather_tasks` call.

    While it is open (between `started` and `ended`, in the same context) its tally is the
    current map tally, so the items count themselves wherever they run on this process;
    items from worker processes arrive as counts per batch (`merge`).
    """

    def __init__(
        self,
        runtime: Any,
        map_id: str,
        name: str,
        backend: str,
        total: int | None,
        parent_id: str | None,
    ) -> None:
        self.sink = runtime.emit
        self.wants = wants_of(self.sink)
        self.ids = {
            "session_id": runtime.session_id,
            "map_id": map_id,
            "name": name,
            "parent_id": parent_id,
        }
        self.backend = backend
        self.total = total
        self.taken = 0  # items taken from an input of unknown length
        self.tally = Tally(map_id) if self.sink is not None else None
        self.start = perf_counter()
        self._token: Any = None

    def started(self) -> None:
        """`MapStarted`; the map's tally becomes current in this context."""
        if "MapStarted" in self.wants:
            frame = running_frame()  # the call the map runs in: a map item, maybe
            self.sink(
                events().MapStarted(
                    **self.ids,
                    backend=self.backend,
                    total=self.total,
                    parent_map_id=getattr(frame, "map_id", None),
                )
            )
        if self.tally is not None:
            if self.wants.progress:
                self.tally.on_progress(self._progress)
            self._token = current_map.set(self.tally)

    def counted(self, items: Any) -> Any:
        """`items`, counted as they are taken when the map's length is unknown."""
        if self.total is not None or self.tally is None:
            return items
        return self._count(items)

    def _count(self, items: Any) -> Any:
        for item in items:
            self.taken += 1
            yield item

    def merge(self, counts: list[int] | None) -> None:
        """Add the counts a worker batch sent back."""
        if self.tally is not None:
            self.tally.merge(counts)

    def lost(self, index: int, error: BaseException, timed_out: bool = False) -> None:
        """Item `index` failed without reaching the pipeline (its worker died or was killed).

        It is counted, and reported as `TaskFailed` (built here: the item never ran to
        its end anywhere else).
        """
        if self.tally is None:
            return
        for tally in (self.tally, tally_of(self.sink)):
            if tally is not None:
                if timed_out:
                    tally.add(TIMED_OUT)
                tally.add(FAILED)
        self._item_failed(index, error)

    def write_failed(self, index: int, error: BaseException) -> None:
        """Item `index` succeeded in a worker, but its dataset write failed here.

        Its counts move from succeeded (and saved) to failed, and it is reported as
        `TaskFailed` (the worker's `TaskSucceeded` and `DatasetSaved` of it are not relayed:
        `daglite.backends.packing.relay`).
        """
        if self.tally is None:
            return
        for tally in (self.tally, tally_of(self.sink)):
            if tally is not None:
                tally.merge([-1, 0, 1, 0, 0, -1])
        self._item_failed(index, error)

    def _item_failed(self, index: int, error: BaseException) -> None:
        if not self.wants.task_failed:
            return
        import traceback

        cause = error.__cause__ if isinstance(error, TaskError) else None
        shown = cause if cause is not None else error
        text = getattr(error, "worker_traceback", None) or "".join(
            traceback.format_exception(type(error), error, error.__traceback__)
        )
        ids = self.ids
        self.sink(
            events().TaskFailed(
                session_id=ids["session_id"],
                task_id=new_id(),
                name=ids["name"],
                parent_id=ids["parent_id"],
                map_index=index,
                map_id=ids["map_id"],
                duration=0.0,
                attempts=getattr(error, "attempts", 1),
                traceback=text,
                **_error_fields(shown),
            )
        )

    def _counts(self) -> dict[str, Any]:
        counts = self.tally.snapshot() if self.tally is not None else [0] * len(COUNTS)
        return {
            "done": counts[SUCCEEDED],
            "cached": counts[CACHED],
            "failures": counts[FAILED],
            "retried": counts[RETRIED],
            "timed_out": counts[TIMED_OUT],
        }

    def _progress(self) -> None:
        counts = self._counts()
        del counts["timed_out"]  # in `MapEnded` only
        self.sink(
            events().MapProgress(
                **self.ids,
                total=self.total if self.total is not None else self.taken,
                elapsed=perf_counter() - self.start,
                **counts,
            )
        )

    def ended(self, **extra: Any) -> None:
        """`MapEnded` with the final counts and `extra` fields.

        The outer map's tally is current again afterwards.
        """
        if self._token is not None:
            current_map.reset(self._token)
            self._token = None
        if self.tally is None:
            return
        self.tally.stop_progress()
        if "MapEnded" not in self.wants:
            return
        counts = self._counts()
        timed_out = counts.pop("timed_out")
        total = self.total if self.total is not None else self.taken
        finished = counts["done"] + counts["cached"] + counts["failures"]
        self.sink(
            events().MapEnded(
                **self.ids,
                total=total,
                duration=perf_counter() - self.start,
                timed_out=timed_out,
                skipped=max(0, total - finished),
                **counts,
                **extra,
            )
        )
