"""Backends: the inline and thread backends, and the contract a plugin backend implements."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from daglite import TaskError
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.backends import Backend
from daglite.backends import MapJob
from daglite.backends import Outcome
from daglite.backends.base import collect
from daglite.backends.base import run_coroutine
from daglite.backends.inline import InlineBackend
from daglite.backends.thread import ThreadBackend
from daglite.settings import DagliteSettings
from daglite.testing import override_plugin


@task
def where(x: int) -> str:
    return threading.current_thread().name


def test_inline_backend_runs_items_in_the_calling_thread():
    with session(backend="inline"):
        names = map_tasks(where, range(3))
    assert set(names) == {threading.current_thread().name}


def test_thread_backend_runs_items_on_its_pool():
    with session(backend="thread", settings=DagliteSettings(max_workers=2)) as ctx:
        names = map_tasks(where, range(8), chunksize=1)
        assert ctx.get_backend().max_workers == 2
    assert all(name.startswith("daglite-thread") for name in names)


def test_thread_backend_worker_count_defaults_like_the_executor():
    backend = ThreadBackend(DagliteSettings())
    assert backend.max_workers == min(32, (os.cpu_count() or 1) + 4)
    backend.close()  # closing a pool that never started is fine
    backend.close()


def test_thread_pool_starts_on_first_map_and_stops_on_close():
    backend = ThreadBackend(DagliteSettings(max_workers=2))
    assert backend._pool is None
    with session(backend="thread") as ctx:
        ctx._backends["thread"] = backend
        map_tasks(where, [1])
        assert backend._pool is not None
    assert backend._pool is None


def test_thread_backend_consumes_input_lazily_and_stops_after_a_failure():
    consumed = []

    def items():
        for i in range(10_000):
            consumed.append(i)
            yield i

    @task
    def fail_first(i: int) -> int:
        if i == 0:
            raise ValueError("first")
        return i

    with (
        session(backend="thread", settings=DagliteSettings(max_workers=1)),
        pytest.raises(TaskError, match=r"\(map index 0\) failed: ValueError: first"),
    ):
        map_tasks(fail_first, items(), chunksize=1)
    assert len(consumed) < 100


def test_keyboard_interrupt_in_an_item_stops_the_map():
    ran = []

    @task
    def interrupt(i: int) -> int:
        ran.append(i)
        if i == 0:
            raise KeyboardInterrupt
        return i

    with (
        session(backend="thread", settings=DagliteSettings(max_workers=1)),
        pytest.raises(KeyboardInterrupt),
    ):
        map_tasks(interrupt, range(1000), chunksize=1)
    assert len(ran) < 100


def test_async_items_on_threads_get_their_own_event_loop():
    @task
    async def loop_id(x: int) -> int:
        await asyncio.sleep(0)
        return id(asyncio.get_running_loop())

    with session(backend="thread"):
        assert len(map_tasks(loop_id, range(4))) == 4


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
    assert ThreadBackend.shares_memory and InlineBackend.shares_memory


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
