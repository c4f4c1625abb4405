"""The `thread` backend: a pool of threads, fed with batches of items."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from daglite import TaskError
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.backends.thread import ThreadBackend
from daglite.settings import DagliteSettings
from support.processes import interrupt_naps


@task
def where(x: int) -> str:
    return threading.current_thread().name


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


# -- Ctrl-C during a map, in a script run in a subprocess -------------------------------


@pytest.mark.timeout(60)
def test_ctrl_c_stops_queued_items_of_the_thread_backend(tmp_path):
    out, _, items = interrupt_naps(tmp_path, "thread")
    assert out == "interrupted\n"
    assert items < 100
