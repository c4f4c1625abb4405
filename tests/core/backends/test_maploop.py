"""The coordinator's map loop of process-style backends: batch sizes."""

from __future__ import annotations

import pytest

from daglite import map_tasks
from daglite import session
from daglite.backends.maploop import BatchSizer
from daglite.settings import DagliteSettings

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
    assert sizer.next_size() == 16  # nothing measured yet: a measuring batch
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
def test_the_measuring_batch_is_one_item_unless_the_map_is_long():
    def first(total, workers=2):
        return BatchSizer(_job(total=total), workers=workers).next_size()

    assert first(None) == 1  # unknown length: the first item may take hours
    assert first(100) == 1  # few items: each worker's share is small
    assert first(640) == 5  # 1/64 of a worker's share of the map
    assert first(640, workers=5) == 2
    assert first(10_000_000) == 16  # at most PROBE_ITEMS


@pytest.mark.timeout(60)
def test_the_cost_per_item_is_weighted_by_items():
    sizer = BatchSizer(_job(total=None), workers=2)
    sizer.observe(1, 0.001)  # a lone first item, paying for its batch's start
    sizer.observe(1000, 0.001)  # 1 us per item
    assert sizer.cost == pytest.approx((0.0005 + 0.001) / (0.5 + 1000))  # not ~500 us


@pytest.mark.timeout(60)
def test_a_map_of_little_work_ends_with_batches_no_larger_than_its_first():
    sizer = BatchSizer(_job(total=10_000), workers=2)
    assert sizer.next_size() == 16
    sizer.observe(1000, 0.001)  # 1 us per item: 10 ms of work in all
    sizes = []
    while sizer.left:
        sizes.append(sizer.next_size())
    # a 10 ms floor would send most of it in one batch; half a worker's share instead
    assert sizes == [2500, 2500, 2500, 2500]  # the last one takes the 2,499 left


@pytest.mark.timeout(60)
def test_only_one_measuring_batch_per_worker_before_the_cost_is_known(monkeypatch):
    from daglite.backends.base import MapJob

    calls = []
    note_batch = MapJob.note_batch

    def counted_note_batch(self, size):  # called as each batch is packed
        calls.append("pack")
        note_batch(self, size)

    monkeypatch.setattr(MapJob, "note_batch", counted_note_batch)
    with session(backend="process", settings=DagliteSettings(max_workers=2)) as ctx:
        transport = ctx.get_backend("process").transport
        submit, wait = transport.submit, transport.wait

        def counted_submit(request):  # the real pool's, in the order the map loop calls
            calls.append("submit")
            return submit(request)

        def counted_wait(timeout):
            answers = wait(timeout)
            calls.append(f"answers {len(answers)}")
            return answers

        transport.submit, transport.wait = counted_submit, counted_wait
        assert map_tasks(square, range(3000)) == [x * x for x in range(3000)]
    first = next(n for n, c in enumerate(calls) if c.startswith("answers") and c != "answers 0")
    # one batch per worker, packed and sent; the next is packed once one of them answered
    assert [c for c in calls[:first] if c != "answers 0"] == ["pack", "submit"] * 2
    assert calls.count("submit") > 2


@pytest.mark.timeout(60)
def test_explicit_chunksize_and_timed_tasks_fix_the_batch_size():
    fixed = BatchSizer(_job(chunksize=7, total=100), workers=2)
    fixed.observe(1, 1.0)
    assert fixed.next_size() == 7
    timed = BatchSizer(_job(chunksize=7, the_task=sleepy), workers=2)
    assert timed.next_size() == 1


def test_compact_batches_collect_to_the_values_outcomes_would_give():
    from daglite import TaskError
    from daglite.backends.base import collect
    from daglite.backends.maploop import _collect

    job = _job()
    batches = [(4, ["e", "f"]), (0, ["a", "b"]), (2, ["c", "d"])]  # in the order they ended
    assert _collect(job, [], list(batches)) == list("abcdef")
    assert (job.finished, job.failures) == (6, 0)

    error = TaskError("item 2 failed", task_name="square", map_index=2)
    kept = _job()
    kept.return_exceptions = True
    assert _collect(kept, [(2, False, error)], [(3, ["d"]), (0, ["a", "b"])]) == [
        "a",
        "b",
        error,
        "d",
    ]
    assert (kept.finished, kept.failures) == (4, 1)
    with pytest.raises(TaskError) as raised:
        _collect(_job(), [(2, False, error)], [(3, ["d"]), (0, ["a", "b"])])
    assert raised.value is error

    overlapping = [(0, ["a", "b"]), (1, ["B"])]  # never sent so; still what collect says
    as_outcomes = [(0, True, "a"), (1, True, "b"), (1, True, "B")]
    assert _collect(_job(), [], overlapping) == collect(_job(), as_outcomes) == ["a", "b", "B"]


@pytest.mark.timeout(120)
def test_batches_with_failures_and_re_runs_give_the_values_in_input_order():
    from daglite import BackendError
    from daglite import DagliteSettings
    from daglite import TaskError
    from daglite import map_tasks
    from daglite import session

    from ..support.plugin_api_tasks import exit_at
    from ..support.plugin_api_tasks import fail_at

    with session(backend="process", settings=DagliteSettings(max_workers=2)):
        # compact batches, and one that carries the failure of item 9
        out = map_tasks(fail_at, range(30), [9] * 30, return_exceptions=True, chunksize=4)
        # the batch of items 4-7 loses its worker at item 5: 4, 6 and 7 run again together
        lost = map_tasks(exit_at, range(12), [5] * 12, return_exceptions=True, chunksize=4)
    assert isinstance(out[9], TaskError) and out[9].map_index == 9
    assert out[:9] + out[10:] == [x for x in range(30) if x != 9]
    assert isinstance(lost[5], BackendError) and "(map index 5)" in str(lost[5])
    assert lost[:5] + lost[6:] == [10 * x for x in range(12) if x != 5]
