"""The coordinator's map loop of process-style backends: batch sizes."""

from __future__ import annotations

import pytest

from daglite import TaskError
from daglite import map_tasks
from daglite import session
from daglite.backends.sizing import PROBE_ITEMS
from daglite.backends.sizing import TARGET_BATCH_SECONDS
from daglite.backends.sizing import BatchSizer
from daglite.settings import DagliteSettings

from ..support.process_tasks import nap_then
from ..support.process_tasks import size_of
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
    assert sizer.next_size() == 10_000  # nothing measured yet: blind, at most MAX_BATCH
    assert sizer.budget == TARGET_BATCH_SECONDS  # ... and its worker stops after 50 ms
    sizer.observe(1, 0.001)  # 1 ms per item: 50 ms batches
    assert sizer.next_size() == 50
    assert sizer.budget is None  # sized from the cost: it runs whole
    sizer.observe(50, 0.050)
    assert sizer.next_size() == 50
    cheap = BatchSizer(_job(total=None), workers=2)
    cheap.observe(100, 0.0001)  # 1 us per item: capped
    assert cheap.next_size() == 10_000


@pytest.mark.timeout(60)
def test_batch_sizes_shrink_towards_the_end_but_not_below_a_floor():
    sizer = BatchSizer(_job(total=1000), workers=2)
    sizer.next_size()  # blind: 500 (one per worker)
    sizer.observe(1, 0.0001)  # its budget stopped it after 1 item of 100 us
    sizer.give_back(499)
    sizes = []
    while sizer.left:
        sizes.append(sizer.next_size())
    assert sizes[0] == 125  # a quarter of each worker's share of the 999 left
    assert min(sizes) >= min(100, sizes[-1])  # never below 10 ms of work, except the rest
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.timeout(60)
def test_blind_batches_share_the_map_among_the_workers():
    def first(total, workers=2):
        return BatchSizer(_job(total=total), workers=workers).next_size()

    assert first(None) == PROBE_ITEMS  # unknown length: the input is taken lazily
    assert first(100) == 50  # one per worker: the map goes at once
    assert first(10_000, workers=3) == 3334
    assert first(10_000_000) == 10_000  # at most MAX_BATCH
    shown = BatchSizer(_job(total=10_000), workers=2, shown=True)  # a progress display
    assert shown.next_size() == PROBE_ITEMS and shown.budget is not None
    fixed = BatchSizer(_job(chunksize=3, total=100), workers=2)
    assert fixed.next_size() == 3 and fixed.budget is None  # asked for: no budget


@pytest.mark.timeout(60)
def test_the_cost_per_item_is_weighted_by_items():
    sizer = BatchSizer(_job(total=None), workers=2)
    sizer.observe(1, 0.001)  # a lone first item, paying for its batch's start
    sizer.observe(1000, 0.001)  # 1 us per item
    assert sizer.cost == pytest.approx((0.0005 + 0.001) / (0.5 + 1000))  # not ~500 us


@pytest.mark.timeout(60)
def test_a_map_of_little_work_ends_with_batches_no_larger_than_its_first():
    sizer = BatchSizer(_job(total=10_000), workers=2)
    sizer.observe(1000, 0.001)  # 1 us per item: 10 ms of work in all
    sizes = []
    while sizer.left:
        sizes.append(sizer.next_size())
    # a 10 ms floor would send most of it in one batch; half a worker's share instead
    assert sizes == [2500, 2500, 2500, 2500]


def _recorded(monkeypatch):
    """Every batch the map loop packs (its size) and sends, and the answers, in order."""
    from daglite.backends.base import MapJob

    calls: list[str] = []
    note_batch = MapJob.note_batch

    def counted_note_batch(self, size):  # called as each batch is packed
        calls.append(f"pack {size}")
        note_batch(self, size)

    monkeypatch.setattr(MapJob, "note_batch", counted_note_batch)
    return calls


def _watch(ctx, calls):
    transport = ctx.get_backend("process").transport
    submit, wait = transport.submit, transport.wait

    def counted_submit(request):  # the real pool's, in the order the map loop calls
        calls.append("submit")
        return submit(request)

    def counted_wait(timeout):
        answers = wait(timeout)
        if answers:
            calls.append(f"answers {len(answers)}")
        return answers

    transport.submit, transport.wait = counted_submit, counted_wait


@pytest.mark.timeout(60)
def test_a_map_of_quick_items_goes_out_at_once(monkeypatch):
    calls = _recorded(monkeypatch)
    with session(backend="process", settings=DagliteSettings(max_workers=2)) as ctx:
        _watch(ctx, calls)
        assert map_tasks(square, range(3000)) == [x * x for x in range(3000)]
    # two workers: two blind batches, the whole map, sent before any answer (no measuring
    # round trip; a batch sent later would be a rest, left by a machine stalled for 50 ms)
    assert calls[:4] == ["pack 1500", "submit"] * 2


@pytest.mark.timeout(60)
def test_a_blind_batch_stops_at_its_budget_and_its_rest_runs_later(monkeypatch):
    from daglite.events import MapEnded
    from daglite.testing import EventCapture

    calls = _recorded(monkeypatch)
    capture = EventCapture(kinds={"MapEnded"})  # counts, not each item: blind as by default
    naps = [0.03] * 20  # 2 items spend the 50 ms budget
    settings = DagliteSettings(max_workers=1)
    with session(backend="process", settings=settings, plugins=[capture]) as ctx:
        _watch(ctx, calls)
        assert map_tasks(nap_then, naps, [False] * 20) == naps
    assert calls[:2] == ["pack 20", "submit"]  # one worker: the whole map, blind
    sizes = [int(c.split()[1]) for c in calls if c.startswith("pack")]
    assert sum(sizes) > 20  # the rest of the blind batch was sent again...
    (ended,) = capture.of_type(MapEnded)
    assert (ended.done, ended.failures) == (20, 0)  # ... and every item ran once
    assert max(sizes[1:]) < 10  # sized from the cost: 50 ms of work or less


@pytest.mark.timeout(60)
def test_the_rest_of_a_blind_batch_below_a_later_failure_still_runs(monkeypatch):
    # Two workers: [0, 10) is cut after items 0 and 1 (60 ms); [10, 20) fails at 15 long
    # before. Items 2-9 still run, and item 5 is the first failure by index.
    naps = [0.03] * 10 + [0.0] * 10
    fails = [x in (5, 15) for x in range(20)]
    settings = DagliteSettings(max_workers=2)
    with session(backend="process", settings=settings):
        with pytest.raises(TaskError) as caught:
            map_tasks(nap_then, naps, fails)
        assert caught.value.map_index == 5
        assert "failed after 0.03" in str(caught.value)
        results = map_tasks(nap_then, naps, fails, return_exceptions=True)
    assert [isinstance(r, TaskError) for r in results] == fails
    assert [r for r in results if not isinstance(r, TaskError)] == [
        n for n, f in zip(naps, fails) if not f
    ]


@pytest.mark.timeout(60)
def test_a_blind_batch_of_heavy_items_carries_only_what_fits(monkeypatch):
    from daglite.backends import maploop

    monkeypatch.setattr(maploop, "BLIND_BYTES", 10_000)
    calls = _recorded(monkeypatch)
    blobs = [bytes([x]) * 3000 for x in range(20)]  # 3 kB each: 3 fit in 10 kB
    with session(backend="process", settings=DagliteSettings(max_workers=1)) as ctx:
        _watch(ctx, calls)
        assert map_tasks(size_of, blobs) == [3000] * 20
    assert calls[0] == "pack 3"


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


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("plugins", "streamed"),
    [(("logging",), False), ((), False), ("every event", True)],
    ids=["default-logging", "no-processor", "item-events"],
)
def test_blind_batches_stream_their_events_only_if_somebody_shows_the_items(plugins, streamed):
    seen = []
    with session(
        backend="process",
        settings=DagliteSettings(
            max_workers=2, plugins=plugins if plugins != "every event" else ()
        ),
        plugins=[seen.append] if plugins == "every event" else None,
    ) as ctx:
        transport = ctx.get_backend("process").transport
        submit = transport.submit
        flags = []

        def watched(request):
            flags.append(request.stream)
            return submit(request)

        transport.submit = watched
        assert map_tasks(square, range(100)) == [x * x for x in range(100)]
    assert flags[:2] == [streamed] * 2  # 100 quick items: two blind batches first
    if streamed:  # of a few items each, for a display that shows each one
        assert flags[2:] and not any(flags[4:])  # the next are sized, and quick: not streamed
    if streamed:  # a plain callable takes every event, the items' own too
        assert sum(event.kind == "TaskSucceeded" for event in seen) == 100


@pytest.mark.parametrize("kind", ["list", "tuple", "range", "stepped range", "generator"])
def test_the_next_values_of_a_sequence_are_taken_as_a_slice(kind):
    from daglite.backends.maploop import _next_values

    numbers = range(3, 33, 3) if kind == "stepped range" else range(10)
    values = {
        "list": iter(list(numbers)),
        "tuple": iter(tuple(numbers)),
        "range": iter(numbers),
        "stepped range": iter(numbers),
        "generator": (x for x in numbers),
    }[kind]
    expected = list(numbers)
    assert next(values) == expected[0]
    assert _next_values(values, 4) == expected[1:5]
    assert next(values) == expected[5]  # the iterator moved past the values taken
    taken = _next_values(values, 9)
    assert taken == expected[6:] and type(taken) is list
    assert _next_values(values, 4) == []
    assert list(values) == []
