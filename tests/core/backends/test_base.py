"""The backend contract and the map job every backend runs (`daglite.backends.base`).

Map items of a plain task nobody watches per call run in a tight loop (`run_chunk`).

What a user sees of them must not change: the same `TaskError` (message, map index,
attempts, cause), the same counts in `MapEnded`, the same frame while an item runs.
Each case runs once quiet (the tight loop) and once watched by a processor that wants
every event (the full pipeline), and the two must agree.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from daglite import BackendError
from daglite import DagliteSettings
from daglite import TaskError
from daglite import current_task
from daglite import get_logger
from daglite import map_tasks
from daglite import registry
from daglite import session
from daglite import tallies
from daglite import task
from daglite import workflow
from daglite.backends import Backend
from daglite.backends import MapJob
from daglite.backends import Outcome
from daglite.backends.base import collect
from daglite.backends.base import run_coroutine
from daglite.backends.inline import InlineBackend
from daglite.events import LogRecorded
from daglite.events import MapEnded
from daglite.events import MapProgress
from daglite.events import MapStarted
from daglite.events import SessionEnded
from daglite.events import TaskFailed
from daglite.events import WorkflowEnded
from daglite.interest import Interest
from daglite.pipeline import is_plain_call
from daglite.session import active_session
from daglite.testing import EventCapture
from daglite.testing import override_plugin

BACKENDS = ["thread", "process"]


@task
def fails_at_5(x: int) -> int:
    if x == 5:
        raise ValueError(f"bad item {x}")
    return x * 10


@task
def whoami(x: int) -> tuple[int | None, str]:
    meta = current_task()
    assert meta is not None
    return meta.map_index, meta.task_id


def _run(backend: str, watched: bool, return_exceptions: bool):
    """Map `fails_at_5` over 10 items: (raised or returned error, MapEnded, TaskFailed)."""
    quiet = EventCapture(kinds={"MapEnded", "TaskFailed"})
    plugins = [quiet, EventCapture()] if watched else [quiet]
    with session(backend=backend, plugins=plugins) as ctx:
        assert (
            is_plain_call(fails_at_5, ctx.runtime, item=True) is not watched
        )  # the path under test
        if return_exceptions:
            out = map_tasks(fails_at_5, range(10), return_exceptions=True, chunksize=4)
            error = out[5]
            assert out[:5] + out[6:] == [x * 10 for x in range(10) if x != 5]
        else:
            with pytest.raises(TaskError) as raised:
                map_tasks(fails_at_5, range(10), chunksize=4)
            error = raised.value
    (ended,) = quiet.of_type(MapEnded)
    (failed,) = quiet.of_type(TaskFailed)
    return error, ended, failed


def _error_facts(error: TaskError) -> tuple:
    cause = error.__cause__
    return (
        type(error),
        str(error),
        error.task_name,
        error.map_index,
        error.attempts,
        type(cause),
        str(cause).splitlines()[0],  # a worker's error has its traceback noted after it
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failing_plain_item_is_reported_as_by_the_full_pipeline(backend):
    error, ended, failed = _run(backend, watched=False, return_exceptions=False)
    assert isinstance(error.__cause__, ValueError)
    assert str(error) == "task 'fails_at_5' (map index 5) failed: ValueError: bad item 5"
    assert (error.map_index, error.attempts) == (5, 1)
    assert (failed.map_index, failed.error_type, failed.error_message) == (
        5,
        "ValueError",
        "bad item 5",
    )
    assert ended.failures == 1
    assert ended.done >= 5  # the items before the first failure all ran
    assert ended.done + ended.failures + ended.skipped == ended.total == 10

    w_error, w_ended, w_failed = _run(backend, watched=True, return_exceptions=False)
    assert _error_facts(error) == _error_facts(w_error)
    assert (failed.map_index, failed.error_type, failed.error_message) == (
        w_failed.map_index,
        w_failed.error_type,
        w_failed.error_message,
    )
    assert w_ended.failures == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_plain_items_with_returned_exceptions_count_as_the_full_pipeline(backend):
    error, ended, _ = _run(backend, watched=False, return_exceptions=True)
    w_error, w_ended, _ = _run(backend, watched=True, return_exceptions=True)
    assert isinstance(error, TaskError)
    assert _error_facts(error) == _error_facts(w_error)
    assert (ended.done, ended.failures, ended.skipped, ended.total) == (9, 1, 0, 10)
    assert (w_ended.done, w_ended.failures, w_ended.skipped) == (9, 1, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_plain_item_runs_in_a_frame_of_its_own(backend):
    with session(backend=backend) as ctx:
        assert is_plain_call(whoami, ctx.runtime, item=True)
        out = map_tasks(whoami, range(6), chunksize=3)
    assert [index for index, _ in out] == list(range(6))
    assert len({task_id for _, task_id in out}) == 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_processor_without_map_items_keeps_the_tight_loop_and_gets_the_failure(backend):
    capture = EventCapture()
    capture.interest = Interest(map_items=False)  # every event but the items' call events
    with session(backend=backend, plugins=[capture]) as ctx:
        assert is_plain_call(fails_at_5, ctx.runtime, item=True)
        out = map_tasks(fails_at_5, range(10), return_exceptions=True, chunksize=4)
    assert str(out[5]) == "task 'fails_at_5' (map index 5) failed: ValueError: bad item 5"
    (failed,) = capture.of_type(TaskFailed)
    assert (failed.map_index, failed.error_message) == (5, "bad item 5")
    assert "ValueError: bad item 5" in failed.traceback
    (ended,) = capture.of_type(MapEnded)
    assert (ended.done, ended.failures, ended.skipped) == (9, 1, 0)
    assert "TaskStarted" not in capture.kinds()


class PickyBackend(InlineBackend):
    """Refuses settings without `options["picky"]["ok"]`."""

    checked: list[DagliteSettings] = []

    @classmethod
    def check(cls, settings):
        cls.checked.append(settings)
        if not settings.options.get("picky", {}).get("ok"):
            raise BackendError("picky backend: set options.picky.ok")


def test_a_failing_check_stops_the_session_at_open():
    with (
        registry.override("backend", "picky", PickyBackend),
        pytest.raises(BackendError) as info,
        session(backend="picky"),
    ):
        pytest.fail("the session opened")  # pragma: no cover
    assert str(info.value) == "picky backend: set options.picky.ok"


def test_check_gets_the_session_settings_and_the_backend_stays_lazy():
    settings = DagliteSettings(options={"picky": {"ok": True}})
    PickyBackend.checked.clear()
    with (
        registry.override("backend", "picky", PickyBackend),
        session(backend="picky", settings=settings) as ctx,
    ):
        assert ctx._backends == {}  # checked, not started
    assert PickyBackend.checked == [settings]


def test_the_default_check_accepts_anything():
    assert Backend.check(DagliteSettings()) is None


@task
def where(x: int) -> str:
    return threading.current_thread().name


def test_run_coroutine_from_inside_a_running_loop():
    async def value():
        return 7

    async def main():
        return run_coroutine(value())

    assert run_coroutine(value()) == 7
    assert asyncio.run(main()) == 7


def test_collect_orders_by_index_and_applies_return_exceptions():
    error = TaskError("task 't' (map index 1) failed: X", task_name="t", map_index=1)
    outcomes: list[Outcome] = [(2, True, "c"), (0, True, "a"), (1, False, error)]

    def job(return_exceptions):
        from daglite.context import bare_runtime

        return MapJob(
            task=where,
            items=iter(()),
            total=3,
            map_id="m",
            runtime=bare_runtime(),
            parent=None,
            backend="x",
            return_exceptions=return_exceptions,
        )

    kept = job(True)
    assert collect(kept, outcomes) == ["a", error, "c"]
    assert (kept.finished, kept.failures) == (3, 1)
    with pytest.raises(TaskError) as info:
        collect(job(False), outcomes)
    assert info.value is error


def test_backend_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        Backend(DagliteSettings())  # type: ignore[abstract]


def test_a_plugin_backend_implements_map_with_the_job_helpers():
    log = []

    class ReversedBackend(Backend):
        """Runs items last-to-first, in batches of two, through the job's helpers."""

        def __init__(self, settings):
            super().__init__(settings)
            log.append(("init", settings.max_workers))

        def map(self, job: MapJob) -> list:
            items = list(enumerate(job.items))[::-1]
            outcomes = []
            for start in range(0, len(items), 2):
                outcomes += job.run_chunk(items[start : start + 2])
            return collect(job, outcomes)

        def close(self):
            log.append(("close", None))

    order = []

    @task
    def record(x: int) -> int:
        order.append(x)
        return x * x

    settings = DagliteSettings(max_workers=3)
    with (
        override_plugin("backend", "reversed", ReversedBackend),
        session(backend="reversed", settings=settings),
    ):
        assert map_tasks(record, range(5)) == [0, 1, 4, 9, 16]
        assert map_tasks(record, range(2)) == [0, 1]
    assert order == [4, 3, 2, 1, 0, 1, 0]
    assert log == [("init", 3), ("close", None)]  # one instance per session, closed at the end


def test_map_outside_a_session_closes_its_own_backend():
    closed = []

    class Tracked(InlineBackend):
        def close(self):
            closed.append(True)

    with override_plugin("backend", "tracked", Tracked):
        assert map_tasks(where, [1], backend="tracked") == [threading.current_thread().name]
    assert closed == [True]


_progress_seen: list[EventCapture] = []


@task
def done_so_far(x: int) -> int:
    """The items finished before this one, as the latest `MapProgress` says (-1: none yet)."""
    updates = _progress_seen[0].of_type(MapProgress)
    return updates[-1].done if updates else -1


@pytest.mark.parametrize("backend", ["inline", "thread"])
def test_progress_of_plain_items_is_current_during_one_long_chunk(backend, monkeypatch):
    # One chunk runs all items in one thread, counting them without a lock; with a
    # progress event due at every item, each item sees the ones before it counted.
    monkeypatch.setattr(tallies, "PROGRESS_EVERY", 0.0)
    progress = EventCapture(kinds={"MapProgress", "MapEnded", "SessionEnded"})
    _progress_seen[:] = [progress]
    with session(backend=backend, plugins=[progress]) as ctx:
        assert is_plain_call(done_so_far, ctx.runtime, item=True)
        seen = map_tasks(done_so_far, range(30), chunksize=30)
    assert seen == [-1, *range(1, 30)]
    (ended,) = progress.of_type(MapEnded)
    assert (ended.done, ended.failures, ended.skipped, ended.total) == (30, 0, 0, 30)
    (session_end,) = progress.of_type(SessionEnded)
    assert session_end.succeeded == 30


@pytest.mark.parametrize("backend", ["inline", "thread"])
def test_counts_of_plain_items_add_up_in_the_map_the_workflow_and_the_session(backend):
    ends = EventCapture(kinds={"MapEnded", "WorkflowEnded", "SessionEnded"})

    @workflow
    def both() -> None:
        map_tasks(fails_at_5, range(200), return_exceptions=True, chunksize=7)
        with pytest.raises(TaskError):
            map_tasks(fails_at_5, range(10), chunksize=1)

    with session(backend=backend, plugins=[ends]) as ctx:
        assert is_plain_call(fails_at_5, ctx.runtime, item=True)
        both()
    returned, raised = ends.of_type(MapEnded)
    assert (returned.done, returned.failures, returned.skipped) == (199, 1, 0)
    assert raised.failures == 1 and raised.done >= 5
    assert raised.done + raised.failures + raised.skipped == raised.total == 10
    (flow,) = ends.of_type(WorkflowEnded)
    (session_end,) = ends.of_type(SessionEnded)
    assert flow.succeeded == session_end.succeeded == returned.done + raised.done
    assert flow.failed == session_end.failed == 2


# -- what a plain item sees of itself (its metadata is made only when it looks) ---------------


@task
def parent_of_me() -> str | None:
    meta = current_task()
    assert meta is not None
    return meta.parent_id


@task
def looks(x: int) -> tuple:
    """What a plain item sees of itself; only every third item looks."""
    if x % 3:
        return (x, None)
    first = current_task()
    assert first is not None
    get_logger().info("looked", x=x)
    same = current_task() is first  # a nested call in between must not change it
    return (x, first.task_id, same, first.map_index, parent_of_me(), first.parent_id)


@pytest.mark.parametrize("backend", ["inline", *BACKENDS])
def test_a_plain_item_that_looks_sees_one_metadata_of_its_own(backend):
    logs = EventCapture(kinds={"LogRecorded", "MapStarted"})

    @workflow
    def flow() -> tuple:
        return parent_of_me(), map_tasks(looks, range(12), chunksize=5)

    with session(backend=backend, plugins=[logs]) as ctx:
        assert is_plain_call(looks, ctx.runtime, item=True)  # the path under test
        flow_id, out = flow()
    assert [row[0] for row in out] == list(range(12))
    looked = [row for row in out if row[1] is not None]
    assert [row[0] for row in looked] == [0, 3, 6, 9]
    assert len({row[1] for row in looked}) == 4
    for x, task_id, same, index, child_parent, parent_id in looked:
        assert same and index == x
        assert child_parent == task_id  # a nested call is the item's child
        assert parent_id == flow_id  # the item is the workflow's child
    records = sorted((r.map_index, r.task_id, r.name) for r in logs.of_type(LogRecorded))
    assert records == [(x, task_id, "looks") for x, task_id, *_ in looked]
    (started,) = logs.of_type(MapStarted)
    assert started.parent_id == flow_id


@task
def fails_with_its_id(x: int) -> int:
    if x == 4:
        meta = current_task()
        assert meta is not None
        raise ValueError(meta.task_id)
    return x


@pytest.mark.parametrize("backend", ["inline", *BACKENDS])
def test_a_failing_plain_item_is_reported_with_the_metadata_it_saw(backend):
    failures = EventCapture(kinds={"TaskFailed"})
    with session(backend=backend, plugins=[failures]) as ctx:
        assert is_plain_call(fails_with_its_id, ctx.runtime, item=True)
        out = map_tasks(fails_with_its_id, range(8), return_exceptions=True, chunksize=8)
    error = out[4]
    assert isinstance(error, TaskError) and error.map_index == 4
    assert out[:4] + out[5:] == [0, 1, 2, 3, 5, 6, 7]
    (failed,) = failures.of_type(TaskFailed)
    assert (failed.map_index, failed.name, failed.task_id) == (
        4,
        "fails_with_its_id",
        str(error.__cause__).splitlines()[0],
    )
    assert failed.duration >= 0.0


@pytest.mark.parametrize("backend", ["inline", "thread"])
def test_a_thread_an_item_starts_in_the_session_keeps_the_item_as_its_frame(backend):
    release = threading.Event()
    seen: dict = {}

    @task
    def starts_a_thread(x: int) -> str:
        if x == 0:  # it does not look at itself before the thread starts

            def later() -> None:
                release.wait(30)  # until the items after this one ran
                seen["meta"] = current_task()

            seen["thread"] = active_session().run_in_thread(later)
        meta = current_task()
        assert meta is not None
        return meta.task_id

    with session(backend=backend) as ctx:
        assert is_plain_call(starts_a_thread, ctx.runtime, item=True)
        ids = map_tasks(starts_a_thread, range(3), chunksize=3)
        release.set()
        seen["thread"].join(30)
    assert (seen["meta"].map_index, seen["meta"].task_id) == (0, ids[0])
    assert len(set(ids)) == 3


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "with-retries"])
def test_a_chunk_with_a_budget_ends_after_the_item_that_spends_it(plain):
    import time

    from daglite.context import bare_runtime

    @task(retries=0 if plain else 1)
    def nap(x: float) -> float:
        time.sleep(x)
        return x

    job = MapJob(
        task=nap,
        items=iter(()),
        total=None,
        map_id="m",
        runtime=bare_runtime(),
        parent=None,
        backend="inline",
    )
    naps = [0.02] * 10  # 50 ms are spent by the third item (sooner, on a loaded machine)
    outcomes = job.run_chunk(enumerate(zip(naps)), budget=0.05)
    assert 1 <= len(outcomes) <= 3
    assert outcomes == [(n, True, 0.02) for n in range(len(outcomes))]
    assert len(job.run_chunk(enumerate(zip(naps)))) == 10  # no budget: the whole chunk
