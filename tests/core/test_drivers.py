"""The drivers: a stream task is one call around its iteration, and a call's frame is current."""

from __future__ import annotations

import asyncio

import pytest

from daglite import TaskError
from daglite import current_task
from daglite import session
from daglite import task
from daglite.events import TaskFailed


def test_generator_task_reports_one_call_around_its_iteration(events):
    @task
    def items(n: int):
        yield from range(n)

    with session(plugins=[events]):
        assert list(items(3)) == [0, 1, 2]
    assert events.kinds()[1:-1] == ["TaskStarted", "TaskSucceeded"]


def test_generator_task_failure_is_a_task_error(events):
    @task
    def broken():
        yield 1
        raise RuntimeError("stream broke")

    with session(plugins=[events]):
        stream = broken()
        assert next(stream) == 1
        with pytest.raises(TaskError, match=r"task 'broken' failed: RuntimeError: stream broke"):
            next(stream)
    (failed,) = events.of_type(TaskFailed)
    assert failed.error_message == "stream broke"


def test_generator_stopped_early_by_its_consumer_ends_normally(events):
    closed = []

    @task
    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(True)

    with session(plugins=[events]):
        stream = endless()
        assert [next(stream) for _ in range(3)] == [0, 1, 2]
        stream.close()
    assert closed == [True]
    assert events.kinds()[1:-1] == ["TaskStarted", "TaskSucceeded"]


def test_async_generator_task_failure_is_a_task_error():
    @task
    async def broken():
        yield 1
        raise RuntimeError("async stream broke")

    async def consume():
        return [i async for i in broken()]

    with pytest.raises(TaskError, match="RuntimeError: async stream broke"):
        asyncio.run(consume())


def test_current_task_is_the_running_call_and_none_outside():
    @task(name="who-{x}")
    def who(x: int) -> str:
        return current_task().name

    assert current_task() is None
    assert who(7) == "who-7"
    with session():
        assert who(8) == "who-8"
        assert current_task() is None


def test_async_generator_stopped_early_by_its_consumer_ends_normally(events):
    closed = []

    @task
    async def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(True)

    async def consume():
        stream = endless()
        got = [await stream.__anext__() for _ in range(2)]
        await stream.aclose()
        return got

    with session(plugins=[events]):
        assert asyncio.run(consume()) == [0, 1]
    assert closed == [True]
    assert events.kinds()[1:-1] == ["TaskStarted", "TaskSucceeded"]


def test_ctrl_c_inside_a_stream_task_is_reported_as_its_failure(events):
    @task
    def interrupted():
        yield 1
        raise KeyboardInterrupt

    with session(plugins=[events]), pytest.raises(KeyboardInterrupt):
        list(interrupted())
    assert events.kinds()[1:-1] == ["TaskStarted", "TaskFailed"]
    assert events.of_type(TaskFailed)[0].error_type == "KeyboardInterrupt"
