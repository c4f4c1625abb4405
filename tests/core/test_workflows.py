"""`@workflow`: named entry points that open (or join) a session for their tasks."""

from __future__ import annotations

import asyncio
import doctest
import inspect

import pytest

from daglite import TaskError
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite import workflow
from daglite import workflows
from daglite.events import MapStarted
from daglite.events import SessionStarted
from daglite.events import TaskStarted
from daglite.events import WorkflowEnded
from daglite.events import WorkflowStarted
from daglite.session import active_session
from daglite.settings import DagliteSettings
from daglite.settings import set_global_settings
from daglite.testing import EventCapture
from daglite.testing import override_plugin
from daglite.workflows import AsyncWorkflow
from daglite.workflows import SyncWorkflow
from daglite.workflows import is_workflow


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def mul(x: int, y: int) -> int:
    return x * y


def test_docstring_examples_hold():
    @workflow
    def my_workflow(x: int, y: int):
        return add(x=x, y=y)

    @workflow
    def chain_workflow(x: int, y: int):
        a = add(x=x, y=y)
        return mul(x=a, y=10)

    assert my_workflow(2, 3) == 5
    assert chain_workflow(2, 3) == 50


def test_the_module_doctests_pass():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(workflows) if t.examples]
    assert tests, "the workflow docstring lost its examples"
    for test in tests:
        runner.run(test)
    assert runner.failures == 0


def test_sync_and_async_workflows():
    @workflow
    def sync_flow(x: int) -> int:
        return add(x, 1)

    @workflow
    async def async_flow(x: int) -> int:
        @task
        async def inc(v: int) -> int:
            return v + 1

        return await inc(x)

    assert isinstance(sync_flow, SyncWorkflow)
    assert isinstance(async_flow, AsyncWorkflow)
    pending = async_flow(1)
    assert inspect.iscoroutine(pending)
    assert asyncio.run(pending) == 2
    assert is_workflow(sync_flow) and not is_workflow(add)


def test_workflow_opens_its_own_session_for_the_call():
    seen = []

    @workflow
    def flow() -> None:
        seen.append(active_session())

    assert active_session() is None
    flow()
    assert seen[0] is not None
    assert active_session() is None


def test_workflow_joins_the_active_session(events):
    @workflow
    def flow(n: int) -> list[int]:
        assert active_session() is ctx
        return map_tasks(add, range(n), range(n))

    with session(plugins=[events], backend="thread") as ctx:
        assert flow(3) == [0, 2, 4]
    assert len(events.of_type(SessionStarted)) == 1
    assert [e.backend for e in events.of_type(MapStarted)] == ["thread"]
    (started,) = events.of_type(WorkflowStarted)
    assert (started.name, started.session_id) == ("flow", ctx.session_id)


def test_workflow_session_comes_from_the_settings():
    captured = EventCapture()

    class Capture:
        def __call__(self, event):
            captured(event)

    @workflow
    def flow() -> list[int]:
        return map_tasks(add, [1], [1])

    set_global_settings(DagliteSettings(backend="thread", processors=("capture",)))
    with override_plugin("processor", "capture", Capture):
        assert flow() == [2]
    assert captured.kinds()[0] == "SessionStarted"
    assert captured.of_type(SessionStarted)[0].backend == "thread"
    assert [e.backend for e in captured.of_type(MapStarted)] == ["thread"]


def test_workflow_events_and_parent_links(events):
    @workflow(name="pipeline")
    def flow() -> int:
        return mul(add(1, 2), 2)

    with session(plugins=[events]):
        assert flow() == 6
    (started,) = events.of_type(WorkflowStarted)
    (ended,) = events.of_type(WorkflowEnded)
    assert (ended.workflow_id, ended.status, ended.name) == (
        started.workflow_id,
        "success",
        "pipeline",
    )
    assert {e.parent_id for e in events.of_type(TaskStarted)} == {started.workflow_id}


def test_workflow_failure_is_reported_and_raised(events):
    @task
    def broken() -> None:
        raise ValueError("bad input")

    @workflow
    def flow() -> None:
        broken()

    with (
        session(plugins=[events]),
        pytest.raises(TaskError, match=r"^task 'broken' failed: ValueError: bad input$"),
    ):
        flow()
    (ended,) = events.of_type(WorkflowEnded)
    assert (ended.status, ended.error_type) == ("failure", "TaskError")
    assert ended.error_message == "task 'broken' failed: ValueError: bad input"


def test_nested_workflows_link_to_their_parent(events):
    @workflow
    def inner() -> int:
        return add(1, 1)

    @workflow
    def outer() -> int:
        return inner()

    with session(plugins=[events]):
        assert outer() == 2
    first, second = events.of_type(WorkflowStarted)
    assert (first.name, second.name) == ("outer", "inner")
    assert second.parent_id == first.workflow_id


def test_workflow_keeps_name_doc_and_signature():
    def original(a: int, b: str = "x") -> str:
        """Original docs."""
        return b * a

    flow = workflow(original)
    assert flow.name == "original"
    assert flow.description == "Original docs."
    assert flow.__doc__ == "Original docs."
    assert flow.__name__ == "original"
    assert inspect.signature(flow) == inspect.signature(original)
    assert flow.signature == inspect.signature(original)
    named = workflow(name="custom", description="mine")(original)
    assert (named.name, named.description) == ("custom", "mine")
    assert repr(named) == "<SyncWorkflow 'custom'>"
    assert original.__name__ == "original"


@pytest.mark.parametrize("target", [int, type("Thing", (), {}), 3, None])
def test_workflow_rejects_classes_and_non_callables(target):
    with pytest.raises(TypeError) as info:
        workflow()(target)
    assert str(info.value) == "`@workflow` can only be applied to callable functions."


def test_workflow_rejects_generator_functions():
    def gen():
        yield 1

    async def agen():
        yield 1

    for func in (gen, agen):
        with pytest.raises(TypeError) as info:
            workflow(func)
        assert str(info.value) == (
            "`@workflow` cannot wrap generator functions. Use `@task` for generator functions "
            "or collect results inside the workflow."
        )


def test_callable_objects_can_be_workflows():
    class Flow:
        def __call__(self, x: int) -> int:
            return add(x, 1)

    flow = workflow(Flow())
    assert flow.name == "Flow"
    assert flow(1) == 2


def test_a_workflow_called_in_a_process_worker_joins_the_coordinators_session(events):
    from .support.process_tasks import calls_a_workflow

    with session(backend="process", plugins=[events]) as ctx:
        (result,) = map_tasks(calls_a_workflow, [2])
    assert result == (ctx.session_id, [0, 1])  # no session of its own in the worker
    assert [k for k in events.kinds() if k.startswith("Workflow")] == [
        "WorkflowStarted",
        "WorkflowEnded",
    ]
    assert {e.session_id for e in events.events} == {ctx.session_id}
    squares = [e for e in events.of_type(TaskStarted) if e.name == "square"]
    assert len(squares) == 2  # the workflow's own tasks are reported too
