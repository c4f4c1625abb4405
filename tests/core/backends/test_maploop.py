"""The coordinator's map loop of process-style backends: batch sizes."""

from __future__ import annotations

import pytest

from daglite import map_tasks
from daglite import session
from daglite.backends.maploop import BatchSizer
from daglite.events import MapEnded
from daglite.settings import DagliteSettings
from daglite.testing import capture_events

from ..support.process_tasks import sleepy
from ..support.process_tasks import square


def _job(chunksize=None, total=None, the_task=square):
    from daglite.backends.base import MapJob
    from daglite.context import bare_runtime

    return MapJob(
        task=the_task,
        items=iter(()),
        total=total,
        map_id="m",
        runtime=bare_runtime(),
        parent=None,
        backend="process",
        chunksize=chunksize,
    )


@pytest.mark.timeout(60)
def test_batch_sizes_follow_the_measured_cost_per_item():
    sizer = BatchSizer(_job(total=100_000), workers=2)
    assert sizer.next_size() == 1  # nothing measured yet
    sizer.observe(1, 0.001)  # 1 ms per item: 50 ms batches
    assert sizer.next_size() == 50
    sizer.observe(50, 0.050)
    assert sizer.next_size() == 50
    cheap = BatchSizer(_job(total=None), workers=2)
    cheap.observe(100, 0.0001)  # 1 us per item: capped
    assert cheap.next_size() == 10_000


@pytest.mark.timeout(60)
def test_batch_sizes_shrink_towards_the_end_but_not_below_a_floor():
    sizer = BatchSizer(_job(total=1000), workers=2)
    sizer.next_size()
    sizer.observe(1, 0.0001)  # 100 us per item: 500 items would be 50 ms
    sizes = []
    while sizer.left:
        sizes.append(sizer.next_size())
    assert sizes[0] == 125  # a quarter of each worker's share of the 999 left
    assert min(sizes) >= min(100, sizes[-1])  # never below 10 ms of work, except the rest
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.timeout(60)
def test_the_cost_per_item_is_weighted_by_items():
    sizer = BatchSizer(_job(total=None), workers=2)
    sizer.observe(1, 0.001)  # a lone first item, paying for its batch's start
    sizer.observe(1000, 0.001)  # 1 us per item
    assert sizer.cost == pytest.approx((0.0005 + 0.001) / (0.5 + 1000))  # not ~500 us


@pytest.mark.timeout(60)
def test_a_map_of_little_work_ends_with_batches_no_larger_than_its_first():
    sizer = BatchSizer(_job(total=10_000), workers=2)
    assert sizer.next_size() == 1
    sizer.observe(1000, 0.001)  # 1 us per item: 10 ms of work in all
    sizes = []
    while sizer.left:
        sizes.append(sizer.next_size())
    # a 10 ms floor would send most of it in one batch; half a worker's share instead
    assert sizes == [2500, 2500, 2500, 2500]  # the last one takes the 2,499 left


@pytest.mark.timeout(60)
def test_only_one_measuring_batch_per_worker_before_the_cost_is_known():
    with capture_events() as capture:
        settings = DagliteSettings(max_workers=2)
        with session(backend="process", settings=settings, plugins=[capture]):
            assert map_tasks(square, range(3000)) == [x * x for x in range(3000)]
    (ended,) = [event for event in capture.events if isinstance(event, MapEnded)]
    assert ended.batches[1] == 2
    assert sum(size * count for size, count in ended.batches.items()) == 3000


@pytest.mark.timeout(60)
def test_explicit_chunksize_and_timed_tasks_fix_the_batch_size():
    fixed = BatchSizer(_job(chunksize=7, total=100), workers=2)
    fixed.observe(1, 1.0)
    assert fixed.next_size() == 7
    timed = BatchSizer(_job(chunksize=7, the_task=sleepy), workers=2)
    assert timed.next_size() == 1
