"""The execution context: ids, the bare runtime, and context that follows threads and tasks."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import warnings

import pytest

from daglite import current_task
from daglite import session
from daglite import task
from daglite import workflow
from daglite.context import ItemFrames
from daglite.context import SessionNotInThreadWarning
from daglite.context import TaskMetadata
from daglite.context import WorkflowFrame
from daglite.context import bare_runtime
from daglite.context import current_frame
from daglite.context import current_runtime
from daglite.context import new_id
from daglite.context import running_frame
from daglite.settings import DagliteSettings
from daglite.settings import set_global_settings
from daglite.testing import EventCapture


def test_ids_are_unique_across_threads():
    ids: list[str] = []

    def make():
        ids.extend(new_id() for _ in range(1000))

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 4000
    prefix, counter = new_id().split("-")
    assert len(prefix) == 8
    int(counter, 16)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_the_parents_ids():
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child_id.split("-")[0] != new_id().split("-")[0]


def test_bare_runtime_follows_the_global_settings():
    first = bare_runtime()
    assert bare_runtime() is first
    assert (first.session_id, first.backend, first.hook, first.emit) == (
        "bare",
        "inline",
        None,
        None,
    )
    set_global_settings(DagliteSettings(backend="thread", cache_store="elsewhere"))
    second = bare_runtime()
    assert second is not first
    assert (second.backend, second.cache_store) == ("thread", "elsewhere")


def test_current_task_inside_tasks_workflows_and_threads():
    seen = {}

    @task
    def leaf() -> str:
        meta = current_task()
        return meta.name, meta.parent_id

    @task
    def branch() -> tuple:
        outer = current_task()
        result = {}

        def in_thread():  # a thread started with a copied context sees the task
            result["name"] = current_task().name

        thread = threading.Thread(target=contextvars.copy_context().run, args=(in_thread,))
        thread.start()
        thread.join()
        return outer.task_id, leaf(), result["name"]

    @workflow
    def flow() -> tuple:
        seen["frame"] = current_frame.get()
        seen["task"] = current_task()
        return branch()

    outer_id, (leaf_name, leaf_parent), thread_name = flow()
    assert isinstance(seen["frame"], WorkflowFrame)
    assert seen["task"] is None  # a workflow is a frame, not a task
    assert (leaf_name, leaf_parent) == ("leaf", outer_id)
    assert thread_name == "branch"
    assert current_frame.get() is None


def test_context_is_per_asyncio_task():
    @task(name="item-{i}")
    async def item(i: int) -> str:
        await asyncio.sleep(0.001 * (3 - i))
        return current_task().name

    async def main():
        return await asyncio.gather(item(0), item(1), item(2))

    with session():
        assert asyncio.run(main()) == ["item-0", "item-1", "item-2"]


def test_runtime_is_reset_even_when_the_session_body_fails():
    with pytest.raises(ZeroDivisionError), session():
        _ = 1 / 0
    assert current_runtime.get() is None


def test_a_bare_call_with_nothing_to_manage_runs_without_metadata():
    @task
    def plain() -> object:
        return current_task()

    @task(name="named-{x}")
    def templated(x: int) -> object:
        return current_task()

    assert plain() is None  # documented: a plain call, as cheap as the function
    assert templated(1).name == "named-1"
    with session() as ctx:
        meta = plain()
    assert (meta.name, meta.session_id) == ("plain", ctx.session_id)


# -- threads started inside a session: they join it, or daglite says once that they did not


@task
def double(x: int) -> int:
    return 2 * x


@task(name="step-{x}")
def named(x: int) -> str | None:
    meta = current_task()
    return meta.parent_id if meta is not None else None


def _run_thread(target, *args) -> list:
    """Run `target(*args)` in a plain `threading.Thread`; its warnings and result."""
    out: list = []

    def body():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out.append(target(*args))
        out.append([(w.category, str(w.message)) for w in caught])

    thread = threading.Thread(target=body, name="user-thread")
    thread.start()
    thread.join()
    return out


def test_a_plain_thread_loses_the_session_and_is_told_once():
    events = EventCapture()
    with session(plugins=[events]) as ctx:
        first = _run_thread(double, 2)
        second = _run_thread(double, 3)
    assert first[0] == 4 and second[0] == 6  # the calls still work, as bare calls
    assert first[1] == [
        (
            SessionNotInThreadWarning,
            "task 'double' was called in thread 'user-thread', which is outside the daglite "
            f"session {ctx.session_id} open in thread 'MainThread': it ran as a bare call (no "
            "events, hooks or session stores). Start the thread with "
            "session.run_in_thread(func, ...) (or run it in contextvars.copy_context()) to join "
            "the session; this is said once per session.",
        )
    ]
    assert second[1] == []  # once per session
    assert issubclass(SessionNotInThreadWarning, RuntimeWarning)  # shown by default
    assert [e.kind for e in events.events if e.kind.startswith("Task")] == []


def test_every_kind_of_task_says_so():
    @task
    async def coro(x: int) -> int:
        return x

    with session():
        out = _run_thread(lambda: coro(1).close())
    assert [category for category, _ in out[1]] == [SessionNotInThreadWarning]


def test_each_new_session_says_so_again_and_none_is_said_without_a_session():
    for _ in range(2):
        with session():
            assert len(_run_thread(double, 1)[1]) == 1
    assert _run_thread(double, 1)[1] == []  # no session open: a bare call is just a call


def test_copy_context_is_the_documented_way_for_any_thread_api():
    events = EventCapture()
    with session(plugins=[events]):
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(double, 4))
        thread.start()
        thread.join()
    assert events.kinds().count("TaskSucceeded") == 1


def test_a_workflow_in_a_thread_is_not_told():
    @workflow
    def flow() -> int:
        return double(1)

    with session():
        out = _run_thread(flow)
    assert out == [2, []]  # a workflow opens its own session: its tasks are in it


def test_the_warning_points_at_the_callers_line():
    with session():
        out = []

        def body():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                double(1)  # the line the warning names
            out.extend(caught)

        thread = threading.Thread(target=body)
        thread.start()
        thread.join()
    assert out[0].filename == __file__


def test_maps_and_dataset_calls_from_a_plain_thread_say_so_too(tmp_path):
    from daglite import map_tasks
    from daglite import save_dataset

    for call, what in [
        (lambda: map_tasks(double, [1, 2]), "map_tasks of task 'double'"),
        (lambda: save_dataset("x.json", 1, store=str(tmp_path)), "save_dataset"),
    ]:
        with session():
            out = _run_thread(call)
        assert len(out[1]) == 1
        category, message = out[1][0]
        assert category is SessionNotInThreadWarning
        assert message.startswith(f"{what} was called in thread 'user-thread', which is outside")


def test_item_frames_make_each_item_metadata_once_when_asked():
    frames = ItemFrames("inc-item", "mod.inc", "adds one", "wf-1", "s-1", "map-1", "process", "mem")
    token = current_frame.set(frames)
    try:
        frames.index = 3
        first = current_task()
        assert current_task() is first is running_frame()
        assert first == TaskMetadata(
            first.task_id, "inc-item", "mod.inc", "adds one", "wf-1", "s-1", 3, "map-1", "process"
        )._replace(dataset_store="mem")
        frames.index = 4  # the next item: a metadata of its own
        second = current_task()
        assert (second.map_index, second.parent_id) == (4, "wf-1")
        assert second.task_id != first.task_id
        assert current_task() is second
    finally:
        current_frame.reset(token)
    assert running_frame() is None and current_task() is None
