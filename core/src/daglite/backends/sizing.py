"""How many items a batch of a process-style backend carries (`BatchSizer`).

A batch should hold enough work that starting it costs little in comparison, little
enough that the workers stay evenly loaded to the end of the map, and be sized before
anything is known of the task: the first batches are sized blind and carry a time budget,
after which their workers stop and the map loop sends the rest again, sized from what the
first ones measured.
"""

from __future__ import annotations

import math

from daglite.backends.base import MapJob

#: Seconds of work a batch should hold once the cost per item is known.
TARGET_BATCH_SECONDS = 0.05
#: Smallest batch once the cost is known, in seconds of work (bounds the round trips).
MIN_BATCH_SECONDS = 0.01
#: Items of a batch sized before the cost per item is known, in a map of unknown length.
PROBE_ITEMS = 16
#: Largest batch, whatever the cost per item (bounds the memory of items in flight).
MAX_BATCH = 10_000
#: Most pickled bytes of a batch sized before the cost per item is known.
BLIND_BYTES = 1024 * 1024


class BatchSizer:
    """Picks batch sizes: fixed when asked, else from the measured cost per item.

    Until the cost per item is known, a batch is sized blind and carries a time budget
    (`budget`): its worker stops after the item that spends `TARGET_BATCH_SECONDS`, and
    the map loop sends the rest again, sized by then. A blind batch holds a worker's share
    of the map (or `PROBE_ITEMS` when the map's length is unknown), so a map of quick items
    goes out at once, in one batch per worker, and a map of slow items costs one budget
    (and a round trip) before it is measured. When somebody shows the items' calls as they
    happen (`shown`: a progress display), blind batches stream their events, so they hold
    at most `PROBE_ITEMS`: the first items show at once, and no more than a few go one
    message per event.
    Later batches hold about `TARGET_BATCH_SECONDS` of work, but no more than a quarter of
    each worker's share of what is left when the total is known (so the load stays
    balanced to the end), and no less than `MIN_BATCH_SECONDS` of work (bounding the round
    trips) or, in a map of less work than that in all, half a worker's share of the map.
    """

    def __init__(self, job: MapJob, workers: int, shown: bool = False) -> None:
        self.fixed = 1 if job.task.timeout is not None else job.chunksize
        self.workers = workers
        self.left = job.total
        self.cost: float | None = None  # seconds per item, moving average
        self._items = 0.0
        self._seconds = 0.0
        # A map of little work in all: the smallest batch is half a worker's share of it,
        # so its last batches are not the largest (MIN_BATCH_SECONDS would be most of it).
        self.floor_cap = math.ceil(job.total / (2 * workers)) if job.total else MAX_BATCH
        share = min(MAX_BATCH, math.ceil(job.total / workers)) if job.total else PROBE_ITEMS
        self.blind = min(share, PROBE_ITEMS) if shown else share

    @property
    def budget(self) -> float | None:
        """Seconds of work the next batch may take before its worker stops it, if any."""
        return TARGET_BATCH_SECONDS if self.cost is None and self.fixed is None else None

    def observe(self, items: int, seconds: float) -> None:
        """Record that a batch of `items` items took `seconds` in a worker.

        The cost per item is a moving average weighted by items (the older batches count
        half at each new one): a batch cut short after one slow item weighs little against
        a batch of a thousand.
        """
        if items:
            self._items = 0.5 * self._items + items
            self._seconds = 0.5 * self._seconds + seconds
            self.cost = max(self._seconds / self._items, 1e-7)

    def give_back(self, items: int) -> None:
        """Count `items` that a batch did not run (its budget ran out) as left to send."""
        if self.left is not None:
            self.left += items

    def next_size(self) -> int:
        """How many items the next batch should carry."""
        if self.fixed is not None:
            size = self.fixed
        elif self.cost is None:
            size = self.blind
        else:
            size = max(1, min(MAX_BATCH, int(TARGET_BATCH_SECONDS / self.cost)))
            if self.left is not None:  # balance the end, but never below a few ms of work
                share = math.ceil(self.left / (self.workers * 4))
                floor = min(int(MIN_BATCH_SECONDS / self.cost), self.floor_cap)
                size = min(size, max(share, floor, 1))
        if self.left is not None:
            self.left = max(0, self.left - size)
        return size
