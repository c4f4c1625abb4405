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
from daglite.context import WorkflowFrame
from daglite.context import bare_runtime
from daglite.context import current_frame
from daglite.context import current_runtime
from daglite.context import new_id
from daglite.settings import DagliteSettings
from daglite.settings import set_global_settings


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
