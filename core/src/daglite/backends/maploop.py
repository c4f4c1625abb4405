"""The coordinator's map loop of process-style backends: batches out, outcomes back.

`run_map(job, transport, spec)` is the whole map of a backend whose workers live in
other processes. It packs the task once, large arguments repeated across items once
(`SharedArgs`) and the items in batches (`daglite.backends.packing`), sizes batches
from the measured cost per item (`BatchSizer`), keeps a bounded number in flight while
consuming the input lazily, relays what comes back (`relay`: dataset writes, then log
records and events, in order) and returns the values in input order. Batches expected to
run for a while (and, when somebody shows the items' calls, those sized before the cost
is known) ask their worker to stream events as they happen (`EarlyEvents`), where the
transport can.

A backend only provides a `Transport` (`daglite.backends.transport`): how to hand a
`BatchRequest` to a worker (which calls `daglite.backends.worker.run_batch`) and get the
bytes back, and how it learns that a worker died. The core's `process` backend and the
`loky`, `dask` and `ray` plugins are transports over this one loop.

Failures:

- a worker that dies fails the item it was running with a `BackendError` naming the
  task, the map index and the exit code or signal. When the transport cannot tell which
  item of a batch was running, the batch runs again in halves, each alone, until the
  culprit is found; items whose results died with the worker run again.
- an item of a task with a `timeout` is sent alone; if its worker does not answer in
  time (an attempt stuck in C code), the transport kills that worker and the item fails
  with `TaskTimeoutError`. A worker still running an abandoned timed-out attempt after
  its batch is replaced as well.
- Ctrl-C (or any error of the loop itself) stops every worker at once (`abort`).
"""

from __future__ import annotations

import itertools
import operator
import time
from collections import deque
from collections.abc import Hashable
from collections.abc import Iterator
from typing import Any

from daglite.backends.base import MapJob
from daglite.backends.base import Outcome
from daglite.backends.base import collect
from daglite.backends.packing import SharedArgs
from daglite.backends.packing import pack_batch
from daglite.backends.packing import pack_job
from daglite.backends.packing import relay
from daglite.backends.packing import relay_events
from daglite.backends.rerun import Batch
from daglite.backends.rerun import handle_lost
from daglite.backends.rerun import keep_below
from daglite.backends.rerun import timeout_error
from daglite.backends.sizing import BLIND_BYTES
from daglite.backends.sizing import BatchSizer
from daglite.backends.transport import BatchRequest
from daglite.backends.transport import EarlyEvents
from daglite.backends.transport import Transport
from daglite.backends.transport import WorkerLost
from daglite.backends.transport import WorkerSpec
from daglite.errors import BackendError
from daglite.errors import TaskTimeoutError

#: A batch expected to run at least this long streams its events as they happen.
STREAM_SECONDS = 0.2
#: Extra seconds granted to a timed item before its worker is killed by the coordinator.
TIMEOUT_GRACE = 1.0

_ok = operator.itemgetter(1)  # of an outcome (a C-level getter: no Python call per item)


# -- the map loop -------------------------------------------------------------------------


def run_map(job: MapJob, transport: Transport, spec: WorkerSpec) -> list[Any]:
    """Run every item of `job` on `transport`'s workers; values in input order.

    Raises:
        TaskError: The first failed item (by index), unless exceptions are returned.
        BackendError: Something cannot be sent to a worker, or a worker died.
    """
    task = job.task
    job_blob = pack_job(job)
    job_key = job.map_id
    limit = task.timeout * (task.retries + 1) if task.timeout is not None else None
    if limit is not None:
        limit += sum(task.retry_delay * task.retry_backoff**n for n in range(task.retries))
        limit += TIMEOUT_GRACE
    # Items of a timed task go one per batch and one per worker, so each is timed alone.
    slots = transport.workers * (1 if limit is not None else getattr(transport, "depth", 1))
    shared = SharedArgs()
    taken = 0  # items taken from the input so far
    retry: deque[Batch] = deque()  # batches to send again as they are (a worker died)
    rest: deque[Batch] = deque()  # items a batch's budget left unrun (not packed)
    inflight: dict[Hashable, Batch] = {}
    outcomes: list[Outcome] = []
    done: list[tuple[int, list[Any]]] = []  # compact batches: (first index, values)
    failed: dict[int, Exception] = {}  # items whose relayed dataset write failed here
    lowest: int | None = None  # the lowest failed index, once a failure stops the map
    started = getattr(transport, "started", None)
    # A batch whose run time is unknown (it may hold a slow item) streams its events if
    # somebody shows the items' calls as they happen (a progress display).
    shown = spec.emit and (spec.wants is None or spec.wants.items.calls)
    sizer = BatchSizer(job, transport.workers, shown)

    def next_batch() -> Batch | None:
        nonlocal taken
        if retry:
            return retry.popleft()
        size = sizer.next_size()
        budget = sizer.budget
        if rest:
            batch = rest[0]
            if len(batch.args) > size:
                rest[0] = batch.part(size)
                batch = batch.part(0, size)
            else:
                rest.popleft()
        elif job.stop.is_set():  # a stopped map takes no new items
            return None
        else:
            batch = _take(job, taken, size, shared)
            if batch is None:
                return None
            taken += len(batch.args)
        blob = pack_batch(task, batch.indexes, batch.args, shared, budget, batch.single)
        if budget is not None and len(blob) > BLIND_BYTES and len(batch.args) > 1:
            # Sized blind and heavy: send what fits, the rest once the cost is known.
            keep = max(1, len(batch.args) * BLIND_BYTES // len(blob))
            rest.appendleft(batch.part(keep))
            sizer.give_back(len(batch.args) - keep)
            batch = batch.part(0, keep)
            blob = pack_batch(task, batch.indexes, batch.args, shared, budget, batch.single)
        batch.blob = blob
        job.note_batch(len(batch.args))
        return batch

    def sizable() -> bool:
        """Whether to pack a next batch now (a stopped map: its items below the failure)."""
        return not job.stop.is_set() or bool(retry or rest)

    def fail(index: int) -> None:
        nonlocal lowest
        if not job.return_exceptions:
            lowest = index if lowest is None else min(lowest, index)
            job.stop.set()

    def finish(index: int, error: BaseException) -> None:
        outcomes.append((index, False, error))
        if job.report is not None:  # it never reached the pipeline: count it here
            job.report.lost(index, error, timed_out=isinstance(error, TaskTimeoutError))
        fail(index)

    try:
        batch = next_batch()  # packed before any worker starts: pickling errors come first
        while True:
            while batch is not None and len(inflight) < slots:
                if inflight and (batch.suspect or any(b.suspect for b in inflight.values())):
                    break
                batch.sent = time.monotonic()
                cost = sizer.cost
                stream = spec.emit and (
                    shown if cost is None else cost * len(batch.indexes) >= STREAM_SECONDS
                )
                request = BatchRequest(
                    spec.key, spec, job_key, job_blob, batch.blob, stream, shared.entries
                )
                inflight[transport.submit(request)] = batch
                batch = next_batch() if sizable() else None
            if not inflight:
                break
            for ticket, answer in transport.wait(_next_check(limit, inflight, started)):
                if isinstance(answer, EarlyEvents):
                    relay_events(answer.data, job, failed)
                    continue
                ended = inflight.pop(ticket)
                if isinstance(answer, WorkerLost):
                    handle_lost(job, ended, answer, retry, rest, finish)
                    continue
                result = relay(answer, job, failed)
                if result.tainted:
                    transport.kill(ticket)
                if not ended.alone:
                    sizer.observe(result.size, result.duration)
                ran, ok = result.size, True
                if not ran and len(ended.indexes):  # it would be sent again forever
                    raise BackendError(
                        f"a worker of backend '{job.backend}' sent back none of the "
                        f"{len(ended.indexes)} items of a batch of task '{task.name}' (map "
                        f"index {ended.indexes[0]} on): does its transport hand `run_batch` "
                        "the request as it was submitted?"
                    )
                if result.values is not None and isinstance(result.indexes, range) and not failed:
                    done.append((result.indexes.start, result.values))  # all ok: values only
                else:
                    news = result.outcomes
                    if failed:  # a write failed on this side: its item failed
                        news = [_write_failed(job, i, failed.pop(i)) if i in failed and ok
                                else (i, ok, value) for i, ok, value in news]  # fmt: skip
                    outcomes.extend(news)
                    ok = all(map(_ok, news))
                    if not ok:
                        fail(next(index for index, good, _ in news if not good))
                if ran < len(ended.indexes) and (ok or job.return_exceptions):
                    # Its budget ran out (or the worker left items unrun): send them again.
                    rest.append(ended.part(ran))
                    sizer.give_back(len(ended.indexes) - ran)
            if limit is not None:
                for ticket in _overdue(limit, inflight, started):
                    late = inflight.pop(ticket)
                    transport.kill(ticket)
                    finish(late.indexes[0], timeout_error(job, late.indexes[0]))
            if job.stop.is_set():
                batch = keep_below(task, batch, retry, rest, lowest)
            if batch is None and sizable():
                batch = next_batch()
    except BaseException:
        job.stop.set()
        transport.abort()
        raise
    return _collect(job, outcomes, done)


def _take(job: MapJob, first: int, size: int, shared: SharedArgs) -> Batch | None:
    """The next `size` items of the input (map indexes from `first`), not packed.

    A map of one iterable gives its values, without a tuple each, unless a value is
    shared (large, and repeated across batches).
    """
    values = job.values
    single = False
    if values is not None and not shared.by_id:
        args: list[Any] = _next_values(values, size)
        if args:
            shared.scan([(args[0],)])
            single = not shared.by_id
            if not single:
                args = [(value,) for value in args]
    else:
        args = list(itertools.islice(job.items, size))
        if args:
            shared.scan(args)
    if not args:
        return None
    return Batch(range(first, first + len(args)), args, b"", single=single)


#: Iterators over a list, tuple or range: their next values are taken as one slice.
_SLICEABLE = frozenset(type(iter(empty)) for empty in ([], (), range(0)))


def _next_values(values: Iterator[Any], size: int) -> list[Any]:
    """The next `size` values of `values` (fewer at its end).

    An iterator over a list, tuple or range gives them as a slice of what it iterates
    and moves past them: several times faster than taking them one by one. Its pickle
    state (`__reduce__`) holds what it iterates and its position: the whole sequence and
    an index, or, for a range on Python 3.12 and later, the range left and no index (its
    `__setstate__` then moves on from where it is).
    """
    if type(values) in _SLICEABLE:
        state: Any = values.__reduce__()
        if len(state) == 3:  # not exhausted
            sequence, position = state[1][0], state[2]
            if position is None:
                taken = sequence[:size]
                values.__setstate__(len(taken))  # type: ignore[attr-defined]
            else:
                taken = sequence[position : position + size]
                values.__setstate__(position + len(taken))  # type: ignore[attr-defined]
            return taken if type(taken) is list else list(taken)
    return list(itertools.islice(values, size))


def _collect(job: MapJob, outcomes: list[Outcome], done: list[tuple[int, list[Any]]]) -> list[Any]:
    """`collect` of the outcomes and the compact batches `(first index, values)`.

    When every item came in compact batches that do not overlap, their values in the order
    of their first index are the results: no outcome per item is made.
    """
    done.sort(key=_first)
    if not outcomes and all(a + len(va) <= b for (a, va), (b, _) in itertools.pairwise(done)):
        values: list[Any] = []
        for _, some in done:
            values += some
        job.finished, job.failures = len(values), 0
        return values
    for first, some in done:
        outcomes.extend(zip(range(first, first + len(some)), itertools.repeat(True), some))
    return collect(job, outcomes)


_first = operator.itemgetter(0)


def _start(batch: Batch, ticket: Hashable, started: Any) -> float | None:
    return batch.sent if started is None else started(ticket)


def _next_check(limit: float | None, inflight: dict[Hashable, Batch], started: Any) -> float | None:
    """How long to wait before checking the deadlines of timed items again."""
    if limit is None:
        return None
    waits = [0.1]  # an item that has not started yet is looked at again soon
    now = time.monotonic()
    for ticket, batch in inflight.items():
        start = _start(batch, ticket, started)
        if start is not None:
            waits.append(max(0.0, start + limit - now))
    return min(waits)


def _overdue(limit: float, inflight: dict[Hashable, Batch], started: Any) -> list[Hashable]:
    now = time.monotonic()
    late = []
    for ticket, batch in inflight.items():
        start = _start(batch, ticket, started)
        if start is not None and start + limit <= now:
            late.append(ticket)
    return late


def _write_failed(job: MapJob, index: int, error: Exception) -> Outcome:
    """The outcome of an item that succeeded in its worker but whose write failed here."""
    if job.report is not None:  # counted as done in the worker
        job.report.write_failed(index, error)
    return (index, False, error)
