"""Processors declare the events they want; nothing else is built, and counts travel instead."""

from __future__ import annotations

import pickle
from collections import Counter

import pytest

from daglite import events as ev
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite import workflow
from daglite.errors import PluginError
from daglite.interest import CALL_EVENTS
from daglite.interest import EVERYTHING
from daglite.interest import Interest
from daglite.interest import Wants
from daglite.testing import EventCapture

WANTED = {"TaskFailed", "TaskRetried", "MapStarted", "MapEnded", "SessionEnded"}
BACKENDS = ["inline", "thread", "process"]


@task
def maybe_fail(x: int) -> int:
    if x % 4 == 3:
        raise ValueError(f"item {x} fails")
    return x


_tries: dict[int, int] = {}


@task(retries=1)
def flaky(x: int) -> int:
    # The first attempt of each even item fails (counted per process: workers keep their own).
    _tries[x] = _tries.get(x, 0) + 1
    if x % 2 == 0 and _tries[x] == 1:
        raise OSError("first attempt")
    return x


def _kinds(capture: EventCapture) -> Counter[str]:
    return Counter(e.kind for e in capture.events)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_processor_gets_exactly_the_kinds_it_asked_for(backend):
    picky = EventCapture(kinds=WANTED)
    everything = EventCapture()
    with session(backend=backend, plugins=[picky, everything]):
        out = map_tasks(maybe_fail, range(8), return_exceptions=True)
    assert [isinstance(o, Exception) for o in out] == [x % 4 == 3 for x in range(8)]
    got = _kinds(picky)
    assert set(got) <= WANTED
    assert got == {"TaskFailed": 2, "MapStarted": 1, "MapEnded": 1, "SessionEnded": 1}
    # the same events as the processor that takes everything saw
    assert [e for e in everything.events if e.kind in WANTED] == picky.events
    assert _kinds(everything)["TaskStarted"] == 8


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_plain_callable_still_gets_every_event(backend):
    seen = []
    with session(backend=backend, plugins=[seen.append]):
        map_tasks(maybe_fail, range(4), return_exceptions=True)
    kinds = Counter(e.kind for e in seen)
    assert kinds["TaskStarted"] == 4
    assert kinds["TaskSucceeded"] == 3
    assert kinds["TaskFailed"] == 1
    assert "MapProgress" not in kinds  # a timed summary: only for those who name it


@pytest.mark.parametrize(
    "interest",
    [Interest(kinds={"TaskFailed", "MapEnded"}), Interest(map_items=False)],
    ids=["kinds", "no-map-items"],
)
def test_nothing_unwanted_is_built_in_a_worker_batch(interest):
    from daglite.backends.packing import pack_items
    from daglite.backends.packing import pack_job
    from daglite.backends.packing import worker_spec
    from daglite.backends.transport import BatchRequest
    from daglite.backends.worker import run_batch
    from daglite.context import current_runtime
    from daglite.tallies import COUNTS

    picky = EventCapture()
    picky.interest = interest
    with session(backend="process", plugins=[picky]) as ctx:
        from daglite.backends.base import MapJob

        job = MapJob(
            task=maybe_fail,
            items=iter(()),
            total=4,
            map_id="m-1",
            runtime=ctx.runtime,
            parent=None,
            backend="process",
            return_exceptions=True,
        )
        spec = worker_spec(ctx.runtime, "process")
        items = [(i, (i,)) for i in range(4)]
        request = BatchRequest(
            spec.key, spec, "job-1", pack_job(job), pack_items(maybe_fail, items)
        )
        token = current_runtime.set(None)  # run it as a worker would, outside the session
        try:
            result = pickle.loads(run_batch(request))
        finally:
            current_runtime.reset(token)
    # only the failure was built and buffered; the successes travel as counts
    assert [e.kind for e in result.events] == ["TaskFailed"]
    counts = dict(zip(COUNTS, result.map_counts))
    assert (counts["succeeded"], counts["failed"]) == (3, 1)
    assert dict(zip(COUNTS, result.counts))["succeeded"] == 3


def _item_calls(capture: EventCapture) -> list[str]:
    return [e.kind for e in capture.events if e.kind in CALL_EVENTS and e.map_index is not None]


@pytest.mark.parametrize("backend", BACKENDS)
def test_map_items_false_leaves_out_the_call_events_of_items_only(backend):
    _tries.clear()
    counts_only = EventCapture()
    counts_only.interest = Interest(map_items=False)
    everything = EventCapture()
    with session(backend=backend, plugins=[counts_only, everything]):
        assert maybe_fail(1) == 1  # a call outside a map: all its events
        map_tasks(maybe_fail, range(8), return_exceptions=True)
        assert map_tasks(flaky, range(4)) == list(range(4))
    assert _item_calls(counts_only) == []
    got = _kinds(counts_only)
    assert (got["TaskStarted"], got["TaskSucceeded"]) == (1, 1)
    assert got["TaskFailed"] == 2 and got["TaskRetried"] == 2  # items' failures still come
    failing = counts_only.of_type(ev.MapEnded)[0]
    assert (failing.done, failing.failures) == (6, 2)
    # the other processor of the session still gets every event of every item
    assert Counter(_item_calls(everything)) == {"TaskStarted": 12, "TaskSucceeded": 10}
    shared = [e for e in everything.events if e.kind not in CALL_EVENTS or e.map_index is None]
    assert shared == counts_only.events


@pytest.mark.parametrize("backend", BACKENDS)
def test_map_items_false_alone_skips_the_pipeline_of_plain_items(backend):
    counts_only = EventCapture()
    counts_only.interest = Interest(kinds={"TaskStarted", "TaskFailed"}, map_items=False)
    with session(backend=backend, plugins=[counts_only]) as ctx:
        wants = ctx.runtime.emit.wants
        assert wants.calls and not wants.items.calls
        out = map_tasks(maybe_fail, range(8), return_exceptions=True)
    assert sum(isinstance(o, Exception) for o in out) == 2
    assert [e.kind for e in counts_only.events] == ["TaskFailed", "TaskFailed"]
    assert {e.map_index for e in counts_only.events} == {3, 7}


def test_wants_of_map_items_join_and_travel():
    off = Interest(map_items=False)
    assert off.wants("TaskStarted") and not off.wants("TaskStarted", item=True)
    assert off.wants("TaskFailed", item=True)
    wants = Wants.join([off, Interest(kinds={"CacheHit"})])
    assert wants.items is not wants
    assert "CacheHit" in wants.items and "TaskStarted" not in wants.items
    assert wants.items.task_failed and not wants.items.task_succeeded
    assert wants.task_started and wants.items.items is wants.items
    copy = pickle.loads(pickle.dumps(wants))  # workers get it in their spec
    assert copy.task_started and not copy.items.task_started and copy.items.cache_hit
    assert Wants.join([EVERYTHING, off]).items.task_started  # anyone's wish is enough
    with pytest.raises(TypeError, match="'map_items' must be <class 'bool'>"):
        Interest(map_items="no")


@pytest.mark.parametrize("backend", BACKENDS)
def test_map_counts_add_up_to_the_per_item_truth(backend, tmp_path):
    _tries.clear()
    everything = EventCapture()
    ended = EventCapture(kinds={"MapEnded", "SessionEnded"})
    with session(backend=backend, plugins=[everything, ended]):
        assert map_tasks(flaky, range(6)) == list(range(6))
        map_tasks(maybe_fail, range(8), return_exceptions=True)
        with pytest.raises(Exception, match="item 3 fails"):
            map_tasks(maybe_fail, range(8), chunksize=1)
    retried, failing, stopped = ended.of_type(__import__("daglite").events.MapEnded)
    for end in (retried, failing, stopped):
        items = [e for e in everything.events if getattr(e, "map_id", None) == end.map_id]
        truth = Counter(e.kind for e in items)
        cached = sum(1 for e in items if e.kind == "TaskSucceeded" and e.cached)
        assert end.done == truth["TaskSucceeded"] - cached
        assert end.cached == cached
        assert end.failures == truth["TaskFailed"]
        assert end.retried == truth["TaskRetried"]
        assert end.done + end.cached + end.failures + end.skipped == end.total
    assert (retried.done, retried.retried, retried.failures, retried.total) == (6, 3, 0, 6)
    assert (failing.done, failing.failures, failing.skipped) == (6, 2, 0)
    assert stopped.failures >= 1 and stopped.total == 8
    (session_end,) = ended.of_type(__import__("daglite").events.SessionEnded)
    calls = Counter(e.kind for e in everything.events)
    assert session_end.succeeded == calls["TaskSucceeded"]
    assert session_end.failed == calls["TaskFailed"]
    assert session_end.retried == calls["TaskRetried"] == 3


def test_cache_hits_count_as_cached_not_done(tmp_path):
    from daglite import events as ev

    @task(cache=True)
    def cached_square(x: int) -> int:
        return x * x

    ended = EventCapture(kinds={"MapEnded", "SessionEnded", "WorkflowEnded"})

    @workflow
    def twice() -> None:
        map_tasks(cached_square, range(5))
        map_tasks(cached_square, range(5))

    with session(cache_store=str(tmp_path), plugins=[ended]):
        twice()
    first, second = ended.of_type(ev.MapEnded)
    assert (first.done, first.cached) == (5, 0)
    assert (second.done, second.cached) == (0, 5)
    (flow,) = ended.of_type(ev.WorkflowEnded)
    (whole,) = ended.of_type(ev.SessionEnded)
    for end in (flow, whole):
        assert (end.succeeded, end.cached, end.failed) == (5, 5, 0)


def test_an_unknown_length_map_counts_the_items_it_took():
    from daglite import events as ev

    ended = EventCapture(kinds={"MapEnded"})
    with session(backend="thread", plugins=[ended]):
        map_tasks(maybe_fail, (x for x in range(7)), return_exceptions=True)
    (end,) = ended.of_type(ev.MapEnded)
    assert (end.total, end.done, end.failures, end.skipped) == (7, 6, 1, 0)


def test_map_progress_comes_to_those_who_name_it():
    from daglite import events as ev
    from daglite import tallies

    @task
    def slow(x: int) -> int:
        import time

        time.sleep(0.01)
        return x

    progress = EventCapture(kinds={"MapProgress", "MapEnded"})
    everything = EventCapture()
    old = tallies.PROGRESS_EVERY
    tallies.PROGRESS_EVERY = 0.0  # a progress event at every item
    try:
        with session(backend="thread", plugins=[progress, everything]):
            map_tasks(slow, range(20))
    finally:
        tallies.PROGRESS_EVERY = old
    updates = progress.of_type(ev.MapProgress)
    assert updates and not everything.of_type(ev.MapProgress)
    finished = [u.done + u.cached + u.failures for u in updates]
    assert finished == sorted(finished) and finished[-1] <= 20
    assert all(u.total == 20 and u.elapsed >= 0 for u in updates)


def test_interest_declarations_and_their_errors():
    assert Interest(kinds=["A", "B"]).wants("A") and not Interest(kinds="A").wants("B")
    assert EVERYTHING.wants("TaskStarted") and not EVERYTHING.wants("MapProgress")
    info = Interest(kinds={"LogRecorded"}, log_level="info")
    assert info.wants("LogRecorded", "warning") and not info.wants("LogRecorded", "debug")
    with pytest.raises(ValueError, match="unknown log level 'loud'; expected one of debug"):
        Interest(log_level="loud")

    class Odd:
        interest = 42

        def __call__(self, event):
            pass

    with (
        pytest.raises(PluginError, match=r"declares interest=42: expected a daglite.plugin"),
        session(plugins=[Odd()]),
    ):
        pass

    class Named:
        interest = ("TaskFailed",)

        def __call__(self, event):
            pass

    with session(plugins=[Named()]) as ctx:
        wants = ctx.runtime.emit.wants
        assert "TaskFailed" in wants and "TaskStarted" not in wants
        assert not wants.calls and not wants.task_started


def test_wants_join_and_travel():
    wants = Wants.join([Interest(kinds={"TaskFailed"}), Interest(kinds={"MapProgress"})])
    assert "MapProgress" in wants and "TaskFailed" in wants and "TaskStarted" not in wants
    assert wants.progress and not wants.calls
    everything = Wants.join([EVERYTHING, Interest(kinds={"MapProgress"})])
    assert "MapProgress" in everything and "PluginEvent" in everything
    copy = pickle.loads(pickle.dumps(everything))
    assert "MapProgress" in copy and copy.log_level == everything.log_level


def test_plugin_emit_and_wanted_follow_the_interest():
    from daglite import plugin
    from daglite.events import Event

    class Custom(Event):
        pass

    picky = EventCapture(kinds={"TaskFailed"})
    everything = EventCapture()
    assert not plugin.wanted("TaskFailed")  # outside a session nobody listens
    with session(plugins=[picky]):
        assert plugin.wanted("TaskFailed") and not plugin.wanted("Custom")
        plugin.emit(Custom(session_id="s"))
    with session(plugins=[everything]):
        assert plugin.wanted("Custom")
        plugin.emit(Custom(session_id="s"))
    assert picky.events == []
    assert [e.kind for e in everything.events][1:-1] == ["Custom"]


def test_each_processor_gets_the_records_of_its_own_level():
    from daglite import get_logger
    from daglite.settings import DagliteSettings

    class Records(EventCapture):
        def __init__(self, level):
            super().__init__()
            self.interest = Interest(kinds={"LogRecorded"}, log_level=level)

    @task
    def talk() -> None:
        log = get_logger()
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")

    loud, quiet = Records("info"), Records("error")
    with session(plugins=[loud, quiet], settings=DagliteSettings(plugins=(), log_level="debug")):
        talk()
    assert [e.message for e in loud.events] == ["i", "w", "e"]
    assert [e.message for e in quiet.events] == ["e"]


def test_gather_tasks_counts_its_items_too():
    import asyncio

    from daglite import events as ev
    from daglite import gather_tasks

    @task
    async def half(x: int) -> float:
        if x == 2:
            raise ValueError("two")
        return x / 2

    ended = EventCapture(kinds={"MapEnded", "TaskFailed"})

    async def main() -> list:
        with session(plugins=[ended]):
            return await gather_tasks(half, range(5), return_exceptions=True)

    out = asyncio.run(main())
    assert isinstance(out[2], Exception)
    (failed,) = ended.of_type(ev.TaskFailed)
    (end,) = ended.of_type(ev.MapEnded)
    assert failed.map_index == 2
    assert (end.done, end.failures, end.total, end.skipped) == (4, 1, 5, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_item_whose_dataset_write_fails_on_the_coordinator_counts_as_failed(backend, tmp_path):
    from daglite import events as ev

    from .support.isolation_tasks import saved

    (tmp_path / "out" / "1.pkl").mkdir(parents=True)  # the write of item 1 cannot land
    ended = EventCapture(kinds={"MapEnded", "SessionEnded"})
    with session(backend=backend, dataset_store=str(tmp_path), plugins=[ended]):
        out = map_tasks(saved, [0, 1, 2], return_exceptions=True)
    assert isinstance(out[1], Exception)
    (end,) = ended.of_type(ev.MapEnded)
    (session_end,) = ended.of_type(ev.SessionEnded)
    assert (end.done, end.failures, end.total) == (2, 1, 3)
    assert (session_end.succeeded, session_end.failed, session_end.saved) == (2, 1, 2)
