"""The worker side of process-style backends: what cannot travel back, and stand-ins for it."""

from __future__ import annotations

import pytest

from daglite import StoreError
from daglite import TaskError
from daglite import map_tasks
from daglite import session
from daglite.errors import RemoteError

from ..support.isolation_tasks import TwoArgError
from ..support.isolation_tasks import over_quota
from ..support.isolation_tasks import over_quota_deep
from ..support.plugin_api_tasks import fail_at
from ..support.process_tasks import unpicklable_result


@pytest.mark.timeout(60)
def test_unpicklable_result_is_reported_per_item():
    with session(backend="process"):
        out = map_tasks(unpicklable_result, range(2), return_exceptions=True)
    assert [type(e) for e in out] == [TaskError, TaskError]
    assert str(out[1]) == (
        "the result of task 'unpicklable_result' (map index 1) cannot be sent back from the "
        "worker process: cannot pickle '_thread.lock' object"
    )


BACKENDS = ["inline", "thread", "process"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_exception_that_cannot_be_unpickled_is_its_items_error(backend):
    with session(backend=backend):
        out = map_tasks(over_quota, [0, 1, 2], return_exceptions=True)
    assert out[0] == 0 and out[2] == 2
    error = out[1]
    assert isinstance(error, TaskError) and error.map_index == 1
    cause = error.__cause__
    if backend == "process":  # crossed a process boundary: a stand-in that keeps it all
        assert isinstance(cause, RemoteError)
        assert cause.type_name == "core.support.isolation_tasks.TwoArgError"
        assert cause.message == "quota disk exceeded: 42 used"
        assert (
            str(cause) == "core.support.isolation_tasks.TwoArgError: quota disk exceeded: 42 used"
        )
        assert 'raise TwoArgError("disk", 42)' in cause.worker_traceback
        assert 'raise TwoArgError("disk", 42)' in error.worker_traceback
    else:
        assert isinstance(cause, TwoArgError)
    assert "quota disk exceeded: 42 used" in str(error)


@pytest.mark.timeout(120)
def test_the_stand_in_travels_and_raises_like_the_original():
    with (
        session(backend="process"),
        pytest.raises(TaskError, match="quota disk exceeded") as caught,
    ):
        map_tasks(over_quota, [0, 1, 2])
    assert isinstance(caught.value.__cause__, RemoteError)


@pytest.mark.timeout(120)
def test_a_daglite_error_keeps_its_type_when_only_its_own_cause_cannot_travel():
    with session(backend="process"):
        out = map_tasks(over_quota_deep, [0, 1, 2], return_exceptions=True)
    assert out[0] == 0 and out[2] == 2
    cause = out[1].__cause__
    assert type(cause) is StoreError and str(cause) == "cannot write the entry"
    deepest = cause.__cause__
    assert isinstance(deepest, RemoteError)
    assert deepest.type_name == "core.support.isolation_tasks.TwoArgError"
    assert 'raise TwoArgError("disk", 42)' in deepest.worker_traceback


def _run_batch(indexes, bad: int, return_exceptions: bool, items: bytes | None = None):
    """Run `fail_at` over `indexes` in a batch, here, as a worker would; the BatchResult."""
    if items is None:
        from daglite.backends.packing import pack_batch

        items = pack_batch(fail_at, indexes, [(x, bad) for x in indexes])
    return _worker_batch(fail_at, items, return_exceptions)


def _worker_batch(the_task, items: bytes, return_exceptions=False, settings=None):
    """Run the packed `items` of `the_task` here, as a worker would; the BatchResult."""
    import pickle

    from daglite.backends.base import MapJob
    from daglite.backends.packing import pack_job
    from daglite.backends.packing import worker_spec
    from daglite.backends.transport import BatchRequest
    from daglite.backends.worker import run_batch
    from daglite.context import current_runtime
    from daglite.context import new_id

    with session(backend="process", settings=settings) as ctx:
        job = MapJob(
            task=the_task,
            items=iter(()),
            total=None,
            map_id=new_id(),  # workers keep a map's task by its id
            runtime=ctx.runtime,
            parent=None,
            backend="process",
            return_exceptions=return_exceptions,
        )
        spec = worker_spec(ctx.runtime, "process")
        request = BatchRequest(spec.key, spec, job.map_id, pack_job(job), items)
        token = current_runtime.set(None)
        try:
            return pickle.loads(run_batch(request))
        finally:
            current_runtime.reset(token)


@pytest.mark.parametrize(
    ("indexes", "bad", "return_exceptions", "ran", "compact"),
    [
        (range(4, 10), -1, False, [4, 5, 6, 7, 8, 9], True),
        ([0, 2, 3, 7], -1, False, [0, 2, 3, 7], True),  # re-run after a lost worker
        (range(4, 10), 6, False, [4, 5, 6], False),  # the failure ends the batch
        (range(4, 10), 6, True, [4, 5, 6, 7, 8, 9], False),
        ([0, 2, 3, 7], 2, True, [0, 2, 3, 7], False),
    ],
    ids=["consecutive", "rerun", "failure", "returned", "rerun-returned"],
)
def test_a_batch_comes_back_compact_only_when_every_item_succeeded(
    indexes, bad, return_exceptions, ran, compact
):
    result = _run_batch(indexes, bad, return_exceptions)
    assert (result.values is not None) is compact
    if compact:
        assert type(result.indexes) is type(indexes) and list(result.indexes) == ran
        assert result.values == ran  # fail_at returns its item
    assert [(index, ok) for index, ok, _ in result.outcomes] == [(i, i != bad) for i in ran]
    assert [value for _, ok, value in result.outcomes if ok] == [i for i in ran if i != bad]
    errors = [value for _, ok, value in result.outcomes if not ok]
    assert [str(error) for error in errors] == (
        [f"task 'fail_at' (map index {bad}) failed: ValueError: item {bad} is bad"]
        if bad in ran
        else []
    )


def test_a_batch_packed_as_a_list_of_pairs_runs_too():
    import cloudpickle

    pairs = [(0, (0, 2)), (1, (1, 2)), (3, (3, 2))]  # as batches were packed before
    result = _run_batch([0, 1, 3], 2, False, items=cloudpickle.dumps(pairs))
    assert result.error is None
    assert result.outcomes == [(0, True, 0), (1, True, 1), (3, True, 3)]


@pytest.mark.parametrize("processors", ["default", "none"], ids=["timed", "untimed"])
def test_a_batch_with_a_budget_stops_after_the_item_that_spends_it(processors):
    from daglite.backends.packing import pack_batch
    from daglite.settings import DagliteSettings
    from daglite.tallies import SUCCEEDED

    from ..support.process_tasks import nap

    settings = DagliteSettings(plugins=("logging",) if processors == "default" else ())
    naps = [0.02] * 10  # 50 ms are spent by the third item (sooner, on a loaded machine)
    items = pack_batch(nap, range(10), naps, budget=0.05, single=True)
    result = _worker_batch(nap, items, settings=settings)
    assert 1 <= len(result.values) <= 3
    assert list(result.indexes) == list(range(len(result.values)))
    assert result.values == naps[: len(result.values)]
    if processors == "default":  # counted in the worker, for the coordinator
        assert result.map_counts[SUCCEEDED] == len(result.values)


def test_a_worker_batch_reports_how_long_a_failed_item_ran():
    from daglite.backends.packing import pack_batch
    from daglite.settings import DagliteSettings

    from ..support.process_tasks import nap_then

    items = pack_batch(nap_then, range(3), [(0.0, False), (0.03, True), (0.0, False)])
    settings = DagliteSettings(plugins=("logging",))  # it logs failures, with their duration
    result = _worker_batch(nap_then, items, return_exceptions=True, settings=settings)
    assert [ok for _, ok, _ in result.outcomes] == [True, False, True]
    (failed,) = [event for event in result.events if event.kind == "TaskFailed"]
    assert failed.map_index == 1 and failed.duration >= 0.03


@pytest.mark.parametrize("return_exceptions", [False, True])
def test_a_batch_of_values_reports_each_failure_at_its_own_index(return_exceptions):
    from daglite.backends.packing import pack_batch

    from ..support.process_tasks import fail_at_three

    items = pack_batch(fail_at_three, range(10, 16), [1, 2, 3, 4, 3, 5], single=True)
    result = _worker_batch(fail_at_three, items, return_exceptions=return_exceptions)
    ran = [10, 11, 12, 13, 14, 15] if return_exceptions else [10, 11, 12]
    assert [(index, ok) for index, ok, _ in result.outcomes] == [
        (index, index not in (12, 14)) for index in ran
    ]
    errors = [str(value) for _, ok, value in result.outcomes if not ok]
    assert errors[0] == "task 'fail_at_three' (map index 12) failed: ValueError: three"


@pytest.mark.parametrize("budget", [None, 10.0], ids=["whole", "stretches"])
@pytest.mark.parametrize("single", [True, False], ids=["values", "tuples"])
def test_items_of_an_untimed_batch_each_see_their_own_map_index(single, budget):
    from daglite.backends.packing import pack_batch
    from daglite.settings import DagliteSettings

    from ..support.process_tasks import own_index

    xs = list(range(8))  # item 3 fails; the others return the index they see
    args = xs if single else [(x,) for x in xs]
    items = pack_batch(own_index, range(10, 18), args, budget=budget, single=single)
    settings = DagliteSettings(plugins=())  # nothing wants a failure's duration: no clock
    result = _worker_batch(own_index, items, return_exceptions=True, settings=settings)
    assert [(index, ok) for index, ok, _ in result.outcomes] == [
        (index, index != 13) for index in range(10, 18)
    ]
    values = [value for _, ok, value in result.outcomes]
    assert values[:3] + values[4:] == [10, 11, 12, 14, 15, 16, 17]
    assert isinstance(values[3], TaskError) and values[3].map_index == 13
    assert str(values[3]) == "task 'own_index' (map index 13) failed: ValueError: I am item 13"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["process", "thread"])
def test_values_of_a_class_the_worker_got_by_value_come_back_as_that_class(backend):
    from daglite import DagliteSettings
    from daglite import task

    class Point:  # local: it travels by value, as a class of a script or notebook does
        def __init__(self, x: int) -> None:
            self.x = x

    @task
    def point(x: int) -> Point:
        return Point(x)

    settings = DagliteSettings(max_workers=2, plugins=())
    with session(backend=backend, settings=settings):
        points = map_tasks(point, range(6))
    assert [(type(p).__qualname__, p.x) for p in points] == [
        (Point.__qualname__, x) for x in range(6)
    ]


def test_a_result_that_the_c_pickler_refuses_is_cloudpickled():
    import pickle

    from daglite.backends.sendback import dump_result
    from daglite.backends.transport import BatchResult

    def local(x: int) -> int:  # not importable by name: plain pickle refuses it
        return x + 1

    result = BatchResult()
    result.succeeded(range(2), [local, 3])
    back = pickle.loads(dump_result(result, "t", range(2)))
    assert back.values[0](1) == 2 and back.values[1] == 3
    result = BatchResult()
    result.succeeded(range(2), [1, "two"])
    assert pickle.loads(dump_result(result, "t", range(2))).values == [1, "two"]


@pytest.mark.parametrize("processors", ["default", "none"], ids=["timed", "untimed"])
def test_a_worker_batch_of_quick_items_reads_the_clock_between_stretches(processors, monkeypatch):
    from daglite.backends import batchloop
    from daglite.backends.packing import pack_batch
    from daglite.settings import DagliteSettings

    from ..support.process_tasks import fail_at_three

    reads = []
    real = batchloop.perf_counter

    def counted() -> float:
        reads.append(1)
        return real()

    monkeypatch.setattr(batchloop, "perf_counter", counted)
    settings = DagliteSettings(plugins=("logging",) if processors == "default" else ())
    xs = [x % 3 + 4 for x in range(20_000)]  # never 3: all succeed
    items = pack_batch(fail_at_three, range(20_000), xs, budget=60.0, single=True)
    result = _worker_batch(fail_at_three, items, settings=settings)
    assert result.values == xs
    assert len(reads) < 20_000 // 20  # a reading per stretch of many items, not per item
