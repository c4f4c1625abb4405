"""`daglite.tallies`: `Tally`, with parts one thread adds to without a lock."""

from __future__ import annotations

import threading

from daglite.tallies import COUNTS
from daglite.tallies import FAILED
from daglite.tallies import SUCCEEDED
from daglite.tallies import Tally


def test_an_attached_part_is_read_with_the_counts_and_added_for_good_when_detached():
    tally = Tally()
    tally.add(FAILED)
    part = [0] * len(COUNTS)
    tally.attach(part)
    part[SUCCEEDED] += 3
    assert tally.snapshot() == [3, 0, 1, 0, 0, 0]
    assert tally.counts == [0, 0, 1, 0, 0, 0]  # the part is not in the counts yet
    tally.detach(part)
    part[SUCCEEDED] += 5  # no longer read
    assert tally.snapshot() == tally.counts == [3, 0, 1, 0, 0, 0]


def test_equal_parts_are_told_apart():
    tally = Tally()
    first, second = [0] * len(COUNTS), [0] * len(COUNTS)
    tally.attach(first)
    tally.attach(second)
    tally.detach(second)  # equal to `first` (all zeros): the right one must go
    first[SUCCEEDED] += 2
    assert tally.snapshot()[SUCCEEDED] == 2
    tally.detach(first)
    assert tally.snapshot()[SUCCEEDED] == 2


def test_take_leaves_attached_parts_for_later():
    tally = Tally()
    part = [0] * len(COUNTS)
    tally.attach(part)
    part[SUCCEEDED] += 1
    assert tally.take() is None
    tally.detach(part)
    assert tally.take() == [1, 0, 0, 0, 0, 0]
    assert tally.take() is None


def test_parts_counted_by_threads_never_go_back_and_add_up():
    tally = Tally()
    seen: list[int] = []
    started = threading.Barrier(5)

    def count() -> None:
        part = [0] * len(COUNTS)
        tally.attach(part)
        started.wait(timeout=60)
        for _ in range(20_000):
            part[SUCCEEDED] += 1
        tally.detach(part)

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait(timeout=60)
    while any(thread.is_alive() for thread in threads):
        seen.append(tally.snapshot()[SUCCEEDED])
    for thread in threads:
        thread.join()
    assert seen == sorted(seen)
    assert tally.snapshot()[SUCCEEDED] == tally.counts[SUCCEEDED] == 80_000


def test_tick_calls_back_once_due_and_not_before():
    calls: list[int] = []
    tally = Tally()
    tally.tick()  # nobody watches: nothing to call
    assert not tally.watched
    tally.on_progress(lambda: calls.append(1))
    assert tally.watched
    tally.due = float("inf")
    tally.tick()
    assert calls == []
    tally.due = 0.0
    tally.tick()
    assert calls == [1]
    tally.stop_progress()
    tally.due = 0.0
    tally.tick()
    assert calls == [1] and not tally.watched
