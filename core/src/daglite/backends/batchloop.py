"""The loop of a worker's batch: its items run with as little as possible around each call.

A batch in a worker is run by nobody else: nothing but its own items stops it, nobody
reads its counts before it ends, and its results go back as one message. So its plain
items (`pipeline.is_plain_call`, see `MapJob.run_chunk`) run here without what a chunk on
the coordinator needs per item (a stop check, a count, an outcome tuple): the values of
the items that ran are kept in a list, and a failed item's error beside it. Unless
somebody watches each item (`progress`), they run in stretches of bare calls, and the
clock is read between stretches: of about a millisecond of items for a time budget, of
about 0.1 ms when a failure's duration is wanted (it is measured from the start of its
stretch). With `progress`, the progress callback and the clock run after each item.
Items of other kinds of call go through `MapJob.run_chunk`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Sequence
from itertools import starmap
from time import perf_counter
from typing import Any

from daglite import drivers
from daglite.backends.base import MapJob
from daglite.backends.base import Outcome
from daglite.context import ItemFrames
from daglite.context import current_frame
from daglite.interest import wants_of
from daglite.tallies import COUNTS
from daglite.tallies import SUCCEEDED
from daglite.tallies import current_map
from daglite.tallies import tally_of

#: Seconds of items between two readings of the clock, when only a budget needs it.
CLOCK_EVERY = 0.001
#: The same, when a failure's duration is wanted: a failed item's duration is measured
#: from the start of its stretch, so it may include up to this much of the items before it.
CLOCK_EVERY_TIMED = 0.0001


def run_items(
    job: MapJob,
    indexes: Sequence[int],
    args: Sequence[Any],
    single: bool = False,
    progress: Callable[[int], None] | None = None,
    budget: float | None = None,
) -> tuple[list[Any] | None, list[Outcome] | None]:
    """Run a worker's batch of `job`'s items, as `MapJob.run_chunk` would.

    The items are `indexes` with their argument tuples `args` (their values, if `single`);
    they run in order until done, or until one fails and exceptions are not returned, or
    once `budget` seconds are spent.

    Returns:
        `(values, None)` when every item that ran succeeded: the values of the first
        `len(values)` items; else `(None, outcomes)`.
    """
    if drivers.driver(job.task, job.runtime, item=True) is not drivers.run_plain:
        chunk = zip(indexes, zip(args) if single else args)
        return None, job.run_chunk(chunk, progress, budget)
    func = job.task.func
    frames = job.item_frames()
    sink = job.runtime.emit
    calls = tally_of(sink)  # the worker's tallies of the session's calls and the map's
    items = current_map.get() if calls is not None else None
    part = [0] * len(COUNTS)
    timed = sink is not None and wants_of(sink).items.task_failed  # failures' durations
    values: list[Any] = []
    append = values.append
    failures: dict[int, Exception] = {}  # position in `values` -> the item's TaskError
    begun = now = perf_counter()
    deadline = now + budget if budget is not None else math.inf
    left = 1 if budget is not None and not timed else -1  # items until the clock
    token = current_frame.set(frames)
    try:
        if progress is None:  # nothing to do between items: in stretches
            _stretches(job, frames, indexes, args, single, values, failures, deadline, timed)
            return _result(indexes, values, failures)
        for index, arg in zip(indexes, args):  # somebody watches each item: one by one
            progress(index)
            frames.index = index
            try:
                append(func(arg) if single else func(*arg))
            except BaseException as exc:  # Ctrl-C is reported and raised on
                if _failed(job, frames, arg, single, exc, now, values, failures):
                    break
            if timed:
                now = perf_counter()
                if now >= deadline:
                    break
            else:
                left -= 1
                if not left:
                    now = perf_counter()
                    if now >= deadline:
                        break
                    left = _per_clock(len(values), now - begun)
    finally:
        current_frame.reset(token)
        part[SUCCEEDED] = len(values) - len(failures)  # counted once, when they are read
        if calls is not None:
            calls.merge(part)
        if items is not None and items.map_id == job.map_id:
            items.merge(part)
    return _result(indexes, values, failures)


def _result(
    indexes: Sequence[int], values: list[Any], failures: dict[int, Exception]
) -> tuple[list[Any] | None, list[Outcome] | None]:
    if not failures:
        return values, None
    return None, [
        (index, False, failures[n]) if n in failures else (index, True, value)
        for n, index, value in zip(range(len(values)), indexes, values)
    ]


def _stretches(
    job: MapJob,
    frames: ItemFrames,
    indexes: Sequence[int],
    args: Sequence[Any],
    single: bool,
    values: list[Any],
    failures: dict[int, Exception],
    deadline: float,
    timed: bool,
) -> None:
    """`run_items` when nothing is wanted between items: they run in stretches.

    A stretch is a C-level loop of plain calls (`values.extend(map(func, args))`): the
    whole batch if it has no budget and no failure's duration is wanted, else about
    `CLOCK_EVERY` (`CLOCK_EVERY_TIMED` when `timed`) seconds of items, with the clock read
    between stretches. Nothing is stored per item: the item running is the one after the
    last value (`ItemFrames.follow`). A failed item ends its stretch; when `timed`, its
    duration is counted from the stretch's start.
    """
    func = job.task.func
    extend = values.extend
    begun = start = perf_counter()
    count = len(indexes)
    clocked = timed or deadline != math.inf
    every = CLOCK_EVERY_TIMED if timed else CLOCK_EVERY
    step = 1 if clocked else count
    done = 0
    frames.follow(indexes, values)  # the item running is the next one without a value
    while done < count:
        end = min(count, done + step)
        try:  # C-level loops: `values` grows by one as each item ends
            extend(map(func, args[done:end]) if single else starmap(func, args[done:end]))
        except BaseException as exc:  # Ctrl-C is reported and raised on
            arg = args[len(values)]
            if _failed(job, frames, arg, single, exc, start if timed else 0.0, values, failures):
                return
        done = len(values)
        if clocked:
            start = perf_counter()
            if start >= deadline:
                return
            step = _per_clock(done, start - begun, every)


def _failed(
    job: MapJob,
    frames: ItemFrames,
    arg: Any,
    single: bool,
    exc: BaseException,
    start: float,
    values: list[Any],
    failures: dict[int, Exception],
) -> bool:
    """Report the running item's failure; returns whether the batch stops there.

    `exc` was raised in the call started at `start`; the item's error is kept beside the
    values, at its place.

    Raises:
        BaseException: `exc` itself when it is not an `Exception` (Ctrl-C).
    """
    index = frames.running()
    try:
        drivers.plain_failed(
            job.task, job.runtime, frames.meta(), (arg,) if single else arg, {}, exc, start
        )
    except Exception as error:  # the item's TaskError (or bad arguments)
        failures[len(values)] = error
        values.append(None)
        job.note_failure(index)
    return not job.return_exceptions


def _per_clock(done: int, elapsed: float, every: float = CLOCK_EVERY) -> int:
    """How many items to run before the clock is read again (`every` seconds' worth).

    The pace is that of the `done` items so far, which took `elapsed` seconds.
    """
    return max(1, int(every * done / max(elapsed, 1e-9)))
