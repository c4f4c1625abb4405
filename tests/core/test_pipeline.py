"""The run pipeline: retries with backoff, errors and what each call reports (not timeouts)."""

from __future__ import annotations

import asyncio
import time

import pytest

from daglite import TaskError
from daglite import session
from daglite import task
from daglite.events import TaskFailed
from daglite.events import TaskRetried
from daglite.events import TaskStarted
from daglite.events import TaskSucceeded


def flaky(failures: int, exc: type[Exception] = ValueError):
    """A function failing `failures` times, then returning the number of calls."""
    calls = []

    def run() -> int:
        calls.append(1)
        if len(calls) <= failures:
            raise exc(f"failure {len(calls)}")
        return len(calls)

    return run, calls


# -- retries ------------------------------------------------------------------------------


def test_retries_make_that_many_more_attempts():
    run, calls = flaky(2)
    assert task(retries=2)(run)() == 3
    assert len(calls) == 3


def test_retries_exhausted_raise_task_error_with_attempts_and_last_cause():
    run, calls = flaky(5)
    with pytest.raises(TaskError) as info:
        task(name="unlucky", retries=2)(run)()
    assert str(info.value) == "task 'unlucky' failed after 3 attempts: ValueError: failure 3"
    assert info.value.attempts == 3
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == "failure 3"
    assert len(calls) == 3


def test_no_retry_by_default():
    run, calls = flaky(1)
    with pytest.raises(TaskError, match=r"^task 'run' failed: ValueError: failure 1$"):
        task(run)()
    assert len(calls) == 1


def test_retry_delays_grow_by_the_backoff_and_are_reported(events):
    run, _ = flaky(3)
    retried = task(name="r", retries=3, retry_delay=0.01, retry_backoff=2)(run)
    start = time.perf_counter()
    with session(plugins=[events]):
        assert retried() == 4
    assert time.perf_counter() - start >= 0.01 + 0.02 + 0.04
    retries = events.of_type(TaskRetried)
    assert [(e.attempt, e.delay) for e in retries] == [(1, 0.01), (2, 0.02), (3, 0.04)]
    assert {(e.error_type, e.error_message) for e in retries} == {
        ("ValueError", "failure 1"),
        ("ValueError", "failure 2"),
        ("ValueError", "failure 3"),
    }
    (done,) = events.of_type(TaskSucceeded)
    assert done.attempts == 4
    assert events.kinds()[1:-1] == [
        "TaskStarted",
        "TaskRetried",
        "TaskRetried",
        "TaskRetried",
        "TaskSucceeded",
    ]


def test_retry_delay_defaults_to_immediate_retries(events):
    run, _ = flaky(1)
    with session(plugins=[events]):
        task(retries=1)(run)()
    assert [e.delay for e in events.of_type(TaskRetried)] == [0.0]


def test_async_task_retries_with_delay(events):
    calls = []

    @task(retries=2, retry_delay=0.01, retry_backoff=3)
    async def shaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("flaky network")
        return "ok"

    with session(plugins=[events]):
        assert asyncio.run(shaky()) == "ok"
    assert [e.delay for e in events.of_type(TaskRetried)] == [0.01, 0.03]


def test_final_failure_is_reported_once_with_traceback(events):
    run, _ = flaky(9)
    with session(plugins=[events]), pytest.raises(TaskError):
        task(name="f", retries=1)(run)()
    (failed,) = events.of_type(TaskFailed)
    assert (failed.attempts, failed.error_type, failed.error_message) == (
        2,
        "ValueError",
        "failure 2",
    )
    assert "ValueError: failure 2" in failed.traceback
    assert not events.of_type(TaskSucceeded)


# -- what each call reports ---------------------------------------------------------------


def test_call_events_carry_ids_and_parent_links(events):
    @task
    def inner(x: int) -> int:
        return x + 1

    @task
    def outer(x: int) -> int:
        return inner(x) * 2

    with session(plugins=[events]) as ctx:
        assert outer(1) == 4
    started = events.of_type(TaskStarted)
    assert [e.name for e in started] == ["outer", "inner"]
    assert started[0].parent_id is None
    assert started[1].parent_id == started[0].task_id
    assert {e.session_id for e in events.events} == {ctx.session_id}
    succeeded = events.of_type(TaskSucceeded)
    assert [e.name for e in succeeded] == ["inner", "outer"]
    assert all(e.duration >= 0 and e.attempts == 1 for e in succeeded)


# -- every started call ends, also on Ctrl-C, cancellation and failed saves -----------------


def test_ctrl_c_inside_a_task_is_reported_as_its_failure(events):
    @task(retries=1)
    def interrupted() -> None:
        raise KeyboardInterrupt

    with session(plugins=[events]), pytest.raises(KeyboardInterrupt):
        interrupted()
    assert events.kinds()[1:-1] == ["TaskStarted", "TaskFailed"]
    (failed,) = events.of_type(TaskFailed)
    assert (failed.error_type, failed.attempts) == ("KeyboardInterrupt", 1)


def test_a_cancelled_async_task_is_reported_as_failed(events):
    @task
    async def long_wait() -> None:
        await asyncio.sleep(30)

    async def main():
        pending = asyncio.ensure_future(long_wait())
        await asyncio.sleep(0.05)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending

    with session(plugins=[events]):
        asyncio.run(main())
    assert events.kinds()[1:-1] == ["TaskStarted", "TaskFailed"]
    assert events.of_type(TaskFailed)[0].error_type == "CancelledError"


def test_a_failed_dataset_save_is_reported_as_the_calls_failure(events, tmp_path):
    from daglite import StoreError

    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the store's folder should be")

    @task(dataset="out/{x}.json", dataset_store=str(blocker))
    def saved(x: int) -> int:
        return x

    with session(plugins=[events]), pytest.raises(StoreError):
        saved(1)
    assert events.kinds()[1:-1] == ["TaskStarted", "TaskFailed"]
    assert events.of_type(TaskFailed)[0].error_type == "StoreError"


def test_a_failing_before_task_hook_ends_the_call_it_started(events):
    from daglite import hookimpl

    class Broken:
        @hookimpl
        def before_task(self, metadata, inputs):
            raise RuntimeError("plugin broke")

    @task
    def step(x: int) -> int:
        return x  # pragma: no cover - the hook fails first

    with session(plugins=[Broken(), events]), pytest.raises(RuntimeError, match="plugin broke"):
        step(1)
    assert events.kinds()[1:-1] == ["TaskStarted", "TaskFailed"]
    assert events.of_type(TaskFailed)[0].error_message == "plugin broke"
