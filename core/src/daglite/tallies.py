"""Counts of task call outcomes (`Tally`), which the end and progress events carry.

`SessionEnded`, `WorkflowEnded`, `MapProgress` and `MapEnded` carry these counts.

There is one tally per session (on its event sink), one per map (current in the map's
context, so the items find it on every thread), and in a worker one per batch, sent back
with the batch's result instead of one event per item. `daglite.lifecycle` counts each
moment of a call here; the map loop counts plain items into a part of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from daglite.context import TaskMetadata

SUCCEEDED, CACHED, FAILED, RETRIED, TIMED_OUT, SAVED = range(6)
#: The field names of the counts, in `Tally.counts` order.
COUNTS = ("succeeded", "cached", "failed", "retried", "timed_out", "saved")

#: Seconds between two `MapProgress` events of one map.
PROGRESS_EVERY = 0.25


class Tally:
    """Counts of task call outcomes, safe to add to from many threads.

    Besides `add` and `merge`, which take a lock, a thread running many calls in a row
    (`MapJob` running a chunk of plain items) counts into a `part` of its own with no lock
    at all: the tally reads its attached parts whenever it is read, so its counts are
    always up to date, and `detach` adds a part to the counts for good.

    Args:
        map_id: The map whose items this tally counts (`None`: every call of a session).
    """

    __slots__ = ("_lock", "_on_progress", "_parts", "counts", "due", "map_id")

    def __init__(self, map_id: str | None = None) -> None:
        self.counts = [0] * len(COUNTS)
        self.map_id = map_id
        self._lock = threading.Lock()
        self._on_progress: Callable[[], None] | None = None
        self.due = 0.0  # when the next progress callback is due (`time.perf_counter()`)
        self._parts: dict[int, list[int]] = {}

    def add(self, which: int, n: int = 1) -> None:
        """Add `n` to count number `which` (`SUCCEEDED`, `CACHED`, ...)."""
        with self._lock:
            self.counts[which] += n
        if self._on_progress is not None:
            self._tick()

    def merge(self, counts: list[int] | None) -> None:
        """Add the counts of another tally (a worker batch's)."""
        if not counts:
            return
        with self._lock:
            mine = self.counts
            for which, n in enumerate(counts):
                mine[which] += n
        if self._on_progress is not None:
            self._tick()

    def attach(self, part: list[int]) -> None:
        """Count `part` too: counts (in `COUNTS` order) that one thread adds to unlocked.

        Only the thread that attached `part` changes it, and only by adding, until it
        calls `detach`; others read it as it is (an int is read whole).
        """
        with self._lock:
            self._parts[id(part)] = part

    def detach(self, part: list[int]) -> None:
        """Add `part` to the counts for good and stop reading it (the counts read the same)."""
        with self._lock:
            del self._parts[id(part)]
            mine = self.counts
            for which, n in enumerate(part):
                mine[which] += n

    def take(self) -> list[int] | None:
        """The counts so far, and start again from zero (`None` if nothing was counted).

        Parts still attached are left out (a worker takes its tallies after its batch).
        """
        with self._lock:
            counts = self.counts
            if not any(counts):
                return None
            self.counts = [0] * len(COUNTS)
        return counts

    def snapshot(self) -> list[int]:
        """A copy of the counts, with those of the attached parts."""
        with self._lock:
            counts = list(self.counts)
            for part in self._parts.values():
                for which, n in enumerate(part):
                    counts[which] += n
        return counts

    @property
    def watched(self) -> bool:
        """Whether progress callbacks are wanted (see `on_progress`, `due` and `tick`)."""
        return self._on_progress is not None

    def on_progress(self, callback: Callable[[], None]) -> None:
        """Call `callback` after a count changes, at most every `PROGRESS_EVERY` seconds.

        Counts added to a part change nothing by themselves: the thread adding to it calls
        `tick` once `due` has passed (a long run of calls into a part still shows progress).
        """
        self.due = perf_counter() + PROGRESS_EVERY
        self._on_progress = callback

    def stop_progress(self) -> None:
        """No more progress callbacks (the map ended; late counts still add up)."""
        self._on_progress = None

    def tick(self) -> None:
        """Call the progress callback if one is due (cheap when it is not)."""
        if self._on_progress is not None:
            self._tick()

    def _tick(self) -> None:
        now = perf_counter()
        if now < self.due:  # the common case, decided without the lock
            return
        with self._lock:
            if now < self.due:
                return
            self.due = now + PROGRESS_EVERY
        callback = self._on_progress
        if callback is not None:
            callback()


#: The tally of the map whose items run in this context.
current_map: ContextVar[Tally | None] = ContextVar("daglite_map_tally", default=None)


def tally_of(sink: Any) -> Tally | None:
    """The session tally kept by the event sink `sink`, if any."""
    return getattr(sink, "tally", None) if sink is not None else None


def count_item(meta: TaskMetadata, which: int) -> None:
    """Count a map item's outcome on its map's tally, if that map is current here."""
    tally = current_map.get()
    if tally is not None and tally.map_id == meta.map_id:
        tally.add(which)


def count_call(sink: Any, meta: TaskMetadata, which: int) -> None:
    """Count a call's outcome on the session's tally and, for a map item, on its map's."""
    tally = tally_of(sink)
    if tally is not None:
        tally.add(which)
        if meta.map_id is not None:
            count_item(meta, which)
