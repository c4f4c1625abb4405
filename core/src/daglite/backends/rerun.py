"""The map loop's batches, and which of their items run again and how they fail.

A `Batch` is what the map loop (`daglite.backends.maploop`) has in flight or queued: the
items' map indexes and arguments, and their packed bytes. When its worker dies,
`handle_lost` decides what runs again (the whole batch if it never started; else the
items but the culprit, or, if the culprit is unknown, the batch in halves that each run
alone until it is found); when a failure stops the map, `keep_below` keeps only the
items below it, which still run. `lost_error` and `timeout_error` are the errors of an
item whose worker died or had to be killed.
"""

from __future__ import annotations

import bisect
import signal
from collections import deque
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import attrs

from daglite.backends.base import MapJob
from daglite.backends.packing import pack_items
from daglite.backends.transport import WorkerLost
from daglite.errors import BackendError
from daglite.errors import TaskTimeoutError
from daglite.taskspec import TaskSpec


def describe_exit(exitcode: int | None) -> str:
    """`exitcode` in words: "exit code 3", "signal SIGKILL (9)", ..."""
    if exitcode is None:
        return "an unknown exit status"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "signal"
        text = f"signal {name} ({-exitcode})"
        if -exitcode == getattr(signal, "SIGKILL", 9):
            text += "; killed from outside, e.g. by the out-of-memory killer"
        return text
    return f"exit code {exitcode}"


def lost_error(job: MapJob, index: int, lost: WorkerLost) -> BackendError:
    """The `BackendError` of map item `index`, whose worker died."""
    pid = f" {lost.pid}" if lost.pid is not None else ""
    return BackendError(
        f"worker process{pid} died running task '{job.task.name}' (map index {index}): "
        f"{describe_exit(lost.exitcode)}" + (f"; {lost.detail}" if lost.detail else "")
    )


def timeout_error(job: MapJob, index: int) -> TaskTimeoutError:
    """The error of a timed item whose worker the coordinator had to kill."""
    task = job.task
    return TaskTimeoutError(
        f"task '{task.name}' (map index {index}) timed out after {task.timeout:g} s; its "
        "worker process did not stop the attempt and was killed",
        task_name=task.name,
        map_index=index,
        attempts=task.retries + 1,
    )


@attrs.define(eq=False)
class Batch:
    """A batch of the map loop: in flight, queued to send again, or a rest not packed yet."""

    indexes: Sequence[int]  # the items' map indexes: a `range` unless re-run after a loss
    args: list[Any]  # their argument tuples (or values, if `single`), in the same order
    blob: bytes
    alone: bool = False  # re-run alone to find which item kills its worker
    suspect: bool = False  # runs with no other batch in flight, so a loss is its own
    single: bool = False  # `args` are the values of a map of one iterable (`MapJob.values`)
    sent: float = 0.0

    @classmethod
    def of(
        cls,
        task: TaskSpec,
        items: list[tuple[int, tuple[Any, ...]]],
        pack: bool = True,
        **flags: bool,
    ) -> Batch:
        """A batch re-running `items` (`(map_index, args)` pairs) after a lost worker.

        It is packed unless `pack` is false (a rest, packed when it is sent).
        """
        return cls(
            [index for index, _ in items],
            [args for _, args in items],
            pack_items(task, items) if pack else b"",
            **flags,
        )

    @property
    def items(self) -> list[tuple[int, tuple[Any, ...]]]:
        """The `(map_index, args)` pairs of the batch."""
        return list(zip(self.indexes, zip(self.args) if self.single else self.args))

    def part(self, start: int, stop: int | None = None) -> Batch:
        """Items `[start:stop]` of the batch, not packed (a rest to send again)."""
        return Batch(self.indexes[start:stop], self.args[start:stop], b"", single=self.single)


def handle_lost(
    job: MapJob,
    batch: Batch,
    lost: WorkerLost,
    retry: deque[Batch],
    rest: deque[Batch],
    finish: Callable[[int, BaseException], None],
) -> None:
    """Handle the death of the worker that held `batch`.

    When which item killed it is not known, the batch runs again in halves, each alone
    (`suspect`: nothing else in flight, so a loss is its own), and a half that dies again
    is halved in turn: the culprit is found in a few round trips, not one per item.
    """
    if not lost.started:
        retry.append(batch)
        return
    task = job.task
    if not lost.certain and not batch.suspect:  # maybe a bystander: isolate and re-run
        retry.extend(halves(task, batch.items))
        return
    indices = list(batch.indexes)
    culprit = lost.index if lost.index in indices else None
    if culprit is None and len(indices) == 1:
        culprit = indices[0]
    if culprit is None:  # which item killed it is unknown: halve the batch to find out
        retry.extend(halves(task, batch.items))
        return
    finish(culprit, lost_error(job, culprit, lost))
    others = [item for item in batch.items if item[0] != culprit]
    if not others:
        return
    # The items before it finished, but their results died with the worker.
    if batch.alone:  # still looking for a culprit elsewhere: as it is
        retry.append(Batch.of(task, others, alone=True, suspect=batch.suspect))
    else:  # sent again in batches sized like the others
        rest.appendleft(Batch.of(task, others, pack=False))


def halves(task: TaskSpec, items: list[tuple[int, tuple[Any, ...]]]) -> list[Batch]:
    """`items` (`(map_index, args)` pairs) in two batches that each run alone."""
    middle = (len(items) + 1) // 2
    parts = [items[:middle], items[middle:]] if len(items) > 1 else [items]
    return [Batch.of(task, part, alone=True, suspect=True) for part in parts]


def keep_below(
    task: TaskSpec,
    batch: Batch | None,
    retry: deque[Batch],
    rest: deque[Batch],
    lowest: int | None,
) -> Batch | None:
    """Keep only what a stopped map still runs; returns what is left of the packed `batch`.

    That is the items below its first failure (`lowest`), which run whatever fails after
    them, or nothing if it stopped for another reason (Ctrl-C, a cancelled gather).
    """
    if lowest is None:
        retry.clear()
        rest.clear()
        return None
    kept: list[Batch] = []
    for one in ([batch] if batch is not None else []) + list(retry):
        below = bisect.bisect_left(one.indexes, lowest)  # indexes ascend in a batch
        if below == len(one.indexes):
            kept.append(one)
        elif below:
            kept.append(Batch.of(task, one.items[:below], alone=one.alone, suspect=one.suspect))
    retry.clear()
    retry.extend(kept)
    for _ in range(len(rest)):
        one = rest.popleft()
        below = bisect.bisect_left(one.indexes, lowest)
        if below:
            rest.append(one.part(0, below))
    return retry.popleft() if retry else None
