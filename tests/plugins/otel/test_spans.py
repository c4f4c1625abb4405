"""The span tree, attributes, errors and timings that `OtelProcessor` records (in-memory SDK)."""

from __future__ import annotations

import asyncio
import pickle
import time

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from daglite import TaskError
from daglite import events as ev
from daglite import gather_tasks
from daglite import map_tasks
from daglite import registry
from daglite import session
from daglite import task
from daglite import workflow
from daglite_otel import OtelProcessor
from daglite_otel.ids import span_id_for

BACKENDS = [
    "inline",
    "thread",
    pytest.param(
        "process",
        marks=pytest.mark.skipif(
            "process" not in registry.names("backend"),
            reason="the process backend is not installed (built by its own issue)",
        ),
    ),
]


@task
def double(x: int) -> int:
    # the global provider changes from test to test: look the tracer up at call time
    with trace.get_tracer("tests.user").start_as_current_span(f"user {x}"):
        return 2 * x


@task
def total(n: int) -> int:
    return sum(map_tasks(double, range(n)))


@task
def fails(x: int) -> int:
    raise ValueError(f"no good: {x}")


@workflow
def pipeline(n: int) -> int:
    doubled = map_tasks(double, range(n))
    return total(len(doubled))


def tree(spans) -> dict[str, list[str]]:
    """Map of span name -> sorted names of its children (parents found by span id)."""
    by_id = {span.context.span_id: span for span in spans}
    children: dict[str, list[str]] = {span.name: [] for span in spans}
    for span in spans:
        if span.parent is not None and span.parent.span_id in by_id:
            children[by_id[span.parent.span_id].name].append(span.name)
    return {name: sorted(kids) for name, kids in children.items()}


def parent_of(spans, child):
    by_id = {span.context.span_id: span for span in spans}
    assert child.parent is not None, f"{child.name} has no parent"
    assert child.parent.span_id in by_id, f"{child.name}'s parent was not exported"
    return by_id[child.parent.span_id]


@pytest.mark.parametrize("backend", BACKENDS)
def test_span_tree_of_a_workflow_with_maps(memory, backend):
    with session(backend=backend, plugins=[OtelProcessor(memory.provider)]) as ctx:
        assert pipeline(3) == 6

    spans = [s for s in memory.spans() if not s.name.startswith("user")]
    session_span = memory.one("daglite session")
    workflow_span = memory.one("workflow pipeline")
    tasks = memory.named("task double")
    total_span = memory.one("task total")
    assert len(spans) == 1 + 1 + 3 + 3 + 1
    assert {s.context.trace_id for s in spans} == {session_span.context.trace_id}
    assert session_span.parent is None
    assert parent_of(spans, workflow_span) is session_span
    assert parent_of(spans, total_span) is workflow_span
    # the workflow's map items are its children; total's (nested, inline) map items are total's
    by_parent: dict[str, list[int]] = {}
    for span in tasks:
        by_parent.setdefault(parent_of(spans, span).name, []).append(
            span.attributes["daglite.map.index"]
        )
    assert {k: sorted(v) for k, v in by_parent.items()} == {
        "workflow pipeline": [0, 1, 2],
        "task total": [0, 1, 2],
    }
    assert session_span.attributes["daglite.session.id"] == ctx.session_id
    assert session_span.attributes["daglite.backend"] == backend
    workflow_items = [s for s in tasks if parent_of(spans, s) is workflow_span]
    assert {s.attributes["daglite.backend"] for s in workflow_items} == {backend}
    # every span lies within its parent's time range
    for span in spans:
        if span.parent is not None:
            parent = parent_of(spans, span)
            assert parent.start_time <= span.start_time <= span.end_time <= parent.end_time, span


@pytest.mark.parametrize("backend", BACKENDS)
def test_user_spans_nest_under_the_task_span(memory, backend):
    trace.set_tracer_provider(memory.provider)
    with session(backend=backend, plugins=[OtelProcessor(memory.provider)]):
        assert map_tasks(double, [1, 2, 3]) == [2, 4, 6]
        assert double(5) == 10

    spans = memory.spans()
    for x in (1, 2, 3, 5):
        user = memory.one(f"user {x}")
        owner = parent_of(spans, user)
        assert owner.name == "task double"
        assert owner.attributes.get("daglite.map.index") == (x - 1 if x < 5 else None)
        assert owner.start_time <= user.start_time <= user.end_time <= owner.end_time
    # the task's context is restored afterwards: a span opened after the calls is a root
    with trace.get_tracer("tests.user").start_as_current_span("after") as after:
        pass
    assert not after.parent


def test_task_attributes(memory):
    seen = []
    with session(plugins=[OtelProcessor(memory.provider), seen.append]) as ctx:
        double(4)
        map_tasks(double, [7])
    started = [e for e in seen if e.kind == "TaskStarted"]
    (mapped,) = [e for e in seen if e.kind == "MapStarted"]
    plain, item = sorted(memory.named("task double"), key=lambda s: s.start_time)
    assert dict(plain.attributes) == {
        "daglite.task.name": "double",
        "daglite.task.id": started[0].task_id,
        "daglite.backend": "inline",
        "daglite.outcome": "success",
        "daglite.cache.hit": False,
        "daglite.task.attempts": 1,
    }
    assert item.attributes["daglite.task.id"] == started[1].task_id
    assert item.attributes["daglite.map.index"] == 0
    assert item.attributes["daglite.map.id"] == mapped.map_id
    assert plain.status.status_code is StatusCode.UNSET
    session_span = memory.one("daglite session")
    assert dict(session_span.attributes) == {
        "daglite.session.id": ctx.session_id,
        "daglite.backend": "inline",
        "daglite.outcome": "success",
    }


def test_failure_is_an_exception_with_error_status(memory):
    with (
        session(plugins=[OtelProcessor(memory.provider)]),
        pytest.raises(TaskError, match="no good: 3"),
    ):
        fails(3)
    span = memory.one("task fails")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: no good: 3"
    assert span.attributes["daglite.outcome"] == "failure"
    assert span.attributes["error.type"] == "ValueError"
    (exception,) = [e for e in span.events if e.name == "exception"]
    assert exception.attributes["exception.type"] == "ValueError"
    assert exception.attributes["exception.message"] == "no good: 3"
    assert "raise ValueError" in exception.attributes["exception.stacktrace"]
    assert exception.timestamp == span.end_time


def test_failed_map_item_and_failed_workflow_and_session(memory):
    @workflow
    def broken() -> list[int]:
        return map_tasks(fails, [1, 2], return_exceptions=False)

    with pytest.raises(TaskError), session(plugins=[OtelProcessor(memory.provider)]):
        broken()
    item = memory.one("task fails")
    assert item.attributes["daglite.map.index"] == 0
    assert item.status.status_code is StatusCode.ERROR
    workflow_span = memory.one("workflow broken")
    assert workflow_span.status.status_code is StatusCode.ERROR
    assert workflow_span.attributes["daglite.outcome"] == "failure"
    assert "no good: 1" in workflow_span.status.description
    session_span = memory.one("daglite session")
    assert session_span.status.status_code is StatusCode.ERROR
    assert session_span.attributes["daglite.outcome"] == "failure"
    assert session_span.status.description.startswith("TaskError: task 'fails' (map index 0)")


def test_retries_and_timeouts_are_span_events(memory):
    calls = []

    @task(retries=2, retry_delay=0.0)
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OSError(f"try {len(calls)}")
        return "ok"

    @task(timeout=0.05)
    def slow() -> None:
        time.sleep(1)

    with session(plugins=[OtelProcessor(memory.provider)]):
        assert flaky() == "ok"
        with pytest.raises(TaskError, match="timed out after 0.05 s"):
            slow()
    span = memory.one("task flaky")
    assert span.attributes["daglite.task.attempts"] == 3
    assert span.status.status_code is StatusCode.UNSET
    retries = [e for e in span.events if e.name == "daglite.retry"]
    assert [e.attributes["daglite.task.attempt"] for e in retries] == [1, 2]
    assert [e.attributes["exception.message"] for e in retries] == ["try 1", "try 2"]
    assert all(span.start_time <= e.timestamp <= span.end_time for e in retries)
    slow_span = memory.one("task slow")
    (timeout,) = [e for e in slow_span.events if e.name == "daglite.timeout"]
    assert timeout.attributes["daglite.timeout"] == 0.05
    assert slow_span.status.status_code is StatusCode.ERROR
    assert slow_span.attributes["error.type"] == "TaskTimeoutError"


def test_span_times_are_the_calls_real_start_and_end(memory):
    @task
    def nap() -> None:
        time.sleep(0.05)

    with session(plugins=[OtelProcessor(memory.provider)]):
        before = time.time_ns()
        nap()
        after = time.time_ns()
    span = memory.one("task nap")
    assert before <= span.start_time < span.end_time <= after
    assert span.end_time - span.start_time >= 50_000_000


def test_task_called_in_a_task_is_its_child(memory):
    with session(backend="thread", plugins=[OtelProcessor(memory.provider)]):
        assert total(2) == 2
    spans = memory.spans()
    outer = memory.one("task total")
    for inner in memory.named("task double"):
        assert parent_of(spans, inner) is outer
    assert parent_of(spans, outer).name == "daglite session"


def test_async_tasks_and_gather(memory):
    tracer = memory.provider.get_tracer("user")

    @task
    async def fetch(x: int) -> int:
        await asyncio.sleep(0.01 * (3 - x))  # interleave the items
        with tracer.start_as_current_span(f"fetch {x}"):
            return x

    async def main() -> list[int]:
        async with _async_session(memory):
            return await gather_tasks(fetch, [0, 1, 2])

    assert asyncio.run(main()) == [0, 1, 2]
    spans = memory.spans()
    for x in range(3):
        owner = parent_of(spans, memory.one(f"fetch {x}"))
        assert owner.name == "task fetch"
        assert owner.attributes["daglite.map.index"] == x
        assert owner.attributes["daglite.backend"] == "asyncio"


def _async_session(memory):
    from daglite import async_session

    return async_session(plugins=[OtelProcessor(memory.provider)])


def test_session_joins_the_applications_current_span(memory):
    tracer = memory.provider.get_tracer("app")
    with (
        tracer.start_as_current_span("request") as request,
        session(plugins=[OtelProcessor(memory.provider)]),
    ):
        double(1)
    session_span = memory.one("daglite session")
    assert session_span.parent.span_id == request.get_span_context().span_id
    assert memory.one("task double").context.trace_id == request.get_span_context().trace_id


def test_task_span_ids_are_derived_from_trace_and_task_ids(memory):
    with session(plugins=[OtelProcessor(memory.provider)]):
        double(2)
    span = memory.one("task double")
    expected = span_id_for(span.context.trace_id, span.attributes["daglite.task.id"])
    assert span.context.span_id == expected


def test_a_task_interrupted_by_a_base_exception_fails(memory):
    @task
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), session(plugins=[OtelProcessor(memory.provider)]):
        interrupted()
    span = memory.one("task interrupted")
    assert span.attributes["daglite.outcome"] == "failure"
    assert span.status.description.startswith("KeyboardInterrupt")
    session_span = memory.one("daglite session")
    assert span.end_time <= session_span.end_time
    assert session_span.attributes["daglite.outcome"] == "failure"
    assert session_span.status.description == "KeyboardInterrupt: "
    # the cut-short task's context did not outlive the session
    assert not trace.get_current_span().get_span_context().is_valid


def _feed(processor, *events):
    for event in events:
        processor(event)


def test_cache_hits_and_unfinished_workflows_from_events(memory):
    # Events as the core emits them for a cache hit (no TaskStarted, no attempt).
    processor = OtelProcessor(memory.provider)
    t = time.time()
    ids = {"session_id": "s-1", "task_id": "s-2", "name": "load", "map_index": 4, "map_id": "m"}
    _feed(
        processor,
        ev.SessionStarted(session_id="s-1", backend="thread", timestamp=t),
        ev.MapStarted(
            session_id="s-1", map_id="m", name="load", backend="thread", total=5, timestamp=t
        ),
        ev.CacheHit(**ids, key="abc", timestamp=t + 0.1),
        ev.TaskSucceeded(**ids, duration=0.05, cached=True, timestamp=t + 0.15),
        ev.WorkflowStarted(session_id="s-1", workflow_id="s-3", name="wf", timestamp=t + 0.2),
        ev.SessionEnded(session_id="s-1", duration=0.5, status="success", timestamp=t + 0.5),
    )
    hit = memory.one("task load")
    assert hit.attributes["daglite.cache.hit"] is True
    assert hit.attributes["daglite.cache.key"] == "abc"
    assert hit.attributes["daglite.task.attempts"] == 0
    assert hit.attributes["daglite.backend"] == "thread"
    assert hit.end_time == int((t + 0.15) * 1e9)
    assert abs(hit.start_time - int((t + 0.1) * 1e9)) < 1000  # end - duration
    wf = memory.one("workflow wf")
    assert wf.attributes["daglite.outcome"] == "unfinished"
    assert wf.status.description == "Unfinished: the session ended before the workflow returned"
    assert wf.end_time == memory.one("daglite session").end_time


def test_cache_miss_key_is_recorded(memory):
    processor = OtelProcessor(memory.provider)
    ids = {"session_id": "s-1", "task_id": "s-2", "name": "load"}
    _feed(
        processor,
        ev.SessionStarted(session_id="s-1", backend="inline"),
        ev.CacheMissed(**ids, key="k1", reason="expired"),
        ev.TaskStarted(**ids, backend="inline"),
        ev.TaskSucceeded(**ids, duration=0.001),
        ev.SessionEnded(session_id="s-1", duration=0.1, status="success"),
    )
    span = memory.one("task load")
    assert span.attributes["daglite.cache.key"] == "k1"
    assert span.attributes["daglite.cache.hit"] is False


def test_pickled_plugin_makes_the_same_task_context_current(memory):
    processor = OtelProcessor(memory.provider)
    processor(ev.SessionStarted(session_id="s-1", backend="process"))
    copy = pickle.loads(pickle.dumps(processor))
    assert copy._traces == processor._traces
    assert not copy._sessions and copy._tracer is None

    from daglite.context import TaskMetadata

    meta = TaskMetadata("s-7", "double", "q", "", None, "s-1")
    copy.before_task(metadata=meta)
    try:
        current = trace.get_current_span().get_span_context()
    finally:
        copy.after_task(metadata=meta)
    trace_id = processor._traces["s-1"][0]
    assert current.trace_id == trace_id
    assert current.span_id == span_id_for(trace_id, "s-7")
    assert current.trace_flags.sampled
    assert not trace.get_current_span().get_span_context().is_valid


def test_other_events_are_ignored_and_unknown_sessions_are_not_traced(memory):
    processor = OtelProcessor(memory.provider)
    processor(ev.TaskSucceeded(session_id="nope", task_id="x", name="t", duration=0.1))
    processor(
        ev.DatasetSaved(session_id="nope", key="k", store="memory://", format=None, duration=0.1)
    )
    assert memory.spans() == []
    processor.close()


def test_spans_ended_in_a_worker_are_relayed_with_their_ids(memory):
    """The worker half runs here under a worker runtime; the events then cross a pickle."""
    from opentelemetry.sdk.trace import TracerProvider

    from daglite.context import Runtime
    from daglite.context import TaskMetadata
    from daglite.context import current_runtime
    from daglite.settings import DagliteSettings
    from daglite_otel.relay import RelaySpanProcessor

    coordinator = OtelProcessor(memory.provider)
    coordinator(ev.SessionStarted(session_id="s-1", backend="process"))
    worker_plugin = pickle.loads(pickle.dumps(coordinator))
    relayed: list = []
    runtime = Runtime("s-1", DagliteSettings(), "process", emit=relayed.append, in_worker=True)
    worker_provider = TracerProvider()
    worker_provider.add_span_processor(RelaySpanProcessor())
    tracer = worker_provider.get_tracer("my.http", "1.2")
    meta = TaskMetadata("s-9", "fetch", "q", "", None, "s-1", 0, "m-1")

    token = current_runtime.set(runtime)
    try:
        worker_plugin.before_task(metadata=meta)
        with tracer.start_as_current_span(
            "GET /", kind=trace.SpanKind.CLIENT, attributes={"http.status_code": 500}
        ) as client:
            client.add_event("retrying", {"n": 1})
            client.set_status(trace.Status(StatusCode.ERROR, "server error"))
            with tracer.start_as_current_span("parse"):
                pass
        worker_plugin.after_task(metadata=meta)
        with tracer.start_as_current_span("background"):  # outside a task: a root of its own
            pass
    finally:
        current_runtime.reset(token)
    with tracer.start_as_current_span("not in a worker"):  # no worker runtime: not relayed
        pass

    assert [e.spans[0]["name"] for e in relayed] == ["parse", "GET /", "background"]
    for event in pickle.loads(pickle.dumps(relayed)):
        coordinator(event)
    coordinator(ev.SessionEnded(session_id="s-1", duration=1.0, status="success"))

    trace_id = memory.one("daglite session").context.trace_id
    get = memory.one("GET /")
    assert get.context.trace_id == trace_id
    assert get.parent.span_id == span_id_for(trace_id, "s-9")  # the task span's id
    assert get.kind is trace.SpanKind.CLIENT
    assert get.attributes["http.status_code"] == 500
    assert [e.name for e in get.events] == ["retrying"]
    assert get.status.status_code is StatusCode.ERROR
    assert get.status.description == "server error"
    assert get.instrumentation_scope.name == "my.http"
    assert get.instrumentation_scope.version == "1.2"
    assert memory.one("parse").parent.span_id == get.context.span_id
    background = memory.one("background")
    assert background.parent is None
    assert background.context.trace_id != trace_id
    assert memory.named("not in a worker") == []


def test_install_in_worker_sets_a_relaying_provider_once():
    from daglite_otel import relay

    relay.install_in_worker()
    installed = trace.get_tracer_provider()
    (processor,) = installed._active_span_processor._span_processors
    assert isinstance(processor, relay.RelaySpanProcessor)
    relay.install_in_worker()
    assert trace.get_tracer_provider() is installed


def test_install_in_worker_leaves_the_applications_provider(memory):
    from daglite_otel import relay

    trace.set_tracer_provider(memory.provider)
    relay.install_in_worker()
    assert trace.get_tracer_provider() is memory.provider


def test_generator_tasks_get_one_span_and_nest_user_spans(memory):
    tracer = memory.provider.get_tracer("user")

    @task
    def count(n: int):
        for i in range(n):
            with tracer.start_as_current_span(f"item {i}"):
                pass
            yield i

    with session(plugins=[OtelProcessor(memory.provider)]):
        assert list(count(2)) == [0, 1]
        assert map_tasks(count, [1]) == [[0]]
    spans = memory.spans()
    streams = sorted(memory.named("task count"), key=lambda s: s.start_time)
    assert [s.attributes.get("daglite.map.index") for s in streams] == [None, 0]
    assert [parent_of(spans, s) for s in memory.named("item 1")] == [streams[0]]
    assert {parent_of(spans, s).context.span_id for s in memory.named("item 0")} == {
        s.context.span_id for s in streams
    }
