"""Task timeouts (`daglite.timeouts`): the attempt is stopped, the caller gets a clear error."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import pytest

from daglite import TaskError
from daglite import TaskTimeoutError
from daglite import current_task
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.events import TaskFailed
from daglite.events import TaskRetried
from daglite.events import TaskTimedOut
from daglite.timeouts import AttemptTimedOut
from daglite.timeouts import await_with_timeout
from daglite.timeouts import call_with_timeout

TIMEOUT = 0.2  # how soon a timeout fires is measured in benchmarks/bench_core.py, not here


# -- the engine, called directly ----------------------------------------------------------


def test_call_with_timeout_returns_the_value_and_raises_the_functions_own_error():
    assert call_with_timeout(lambda a, b=0: a + b, (1,), {"b": 2}, 5, "add") == 3

    def boom() -> None:
        raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        call_with_timeout(boom, (), {}, 5, "boom")


def test_call_with_timeout_raises_attempt_timed_out_and_stops_the_thread():
    stopped = threading.Event()

    def spin() -> None:
        try:
            while True:
                pass
        finally:
            stopped.set()

    with pytest.raises(AttemptTimedOut):
        call_with_timeout(spin, (), {}, TIMEOUT, "spin")
    assert stopped.wait(5), "the abandoned attempt is still running"


def test_await_with_timeout_returns_the_value_or_raises_attempt_timed_out():
    async def value() -> int:
        return 7

    async def forever() -> None:
        await asyncio.sleep(30)

    assert asyncio.run(await_with_timeout(value(), 5)) == 7
    with pytest.raises(AttemptTimedOut):
        asyncio.run(await_with_timeout(forever(), TIMEOUT))


# -- through tasks ------------------------------------------------------------------------


def _spinner(timeout: float = TIMEOUT, **options):
    """A task spinning in pure Python forever, and the counter it keeps increasing."""
    counter = [0]

    @task(name="spin", timeout=timeout, **options)
    def spin(*_: object) -> None:
        while True:
            counter[0] += 1

    return spin, counter


def _timeout_threads() -> list[threading.Thread]:
    """The threads of timed attempts still alive."""
    return [t for t in threading.enumerate() if t.name.startswith("daglite-timeout-")]


def _assert_stopped(counter: list[int]) -> None:
    """The abandoned attempt's loop no longer runs: its counter stops increasing."""
    deadline = time.monotonic() + 2.0
    while True:  # the stop request lands at the thread's next bytecode; give it a moment
        before = counter[0]
        time.sleep(0.05)
        if counter[0] == before:
            break
        assert time.monotonic() < deadline, "the abandoned attempt is still running"
    time.sleep(0.1)
    assert counter[0] == before


@pytest.mark.parametrize("where", ["bare", "inline session", "thread backend"])
def test_sync_timeout_raises_in_time_and_stops_the_busy_attempt(where):
    spin, counter = _spinner()
    start = time.perf_counter()
    with pytest.raises(TaskTimeoutError) as info:
        if where == "bare":
            spin()
        elif where == "inline session":
            with session():
                spin()
        else:
            with session(backend="thread"):
                map_tasks(spin, [1])
    assert time.perf_counter() - start >= TIMEOUT  # not before its time (the loop never ends)
    where_text = " (map index 0)" if where == "thread backend" else ""
    assert str(info.value) == f"task 'spin'{where_text} timed out after 0.2 s (attempt 1 of 1)"
    assert info.value.attempts == 1
    assert info.value.map_index == (0 if where == "thread backend" else None)
    assert counter[0] > 0
    _assert_stopped(counter)


def test_blocking_attempt_is_abandoned_and_its_result_discarded():
    finished = threading.Event()
    ended = threading.Event()

    @task(timeout=TIMEOUT)
    def sleepy() -> str:
        try:
            time.sleep(TIMEOUT + 0.3)
            finished.set()  # never reached: the stop request lands when the sleep returns
            return "late"
        finally:
            ended.set()

    with pytest.raises(TaskTimeoutError):
        sleepy()
    assert not ended.is_set()  # the call gave up while the attempt still slept
    assert ended.wait(10), "the abandoned attempt never ended"
    assert not finished.is_set()  # it ended by the stop request, its result never made


def test_timeout_counts_as_a_failed_attempt_and_is_retried(events):
    calls = []

    @task(name="slow-first", timeout=TIMEOUT, retries=1)
    def slow_first() -> int:
        calls.append(1)
        if len(calls) == 1:
            while True:
                pass
        return len(calls)

    with session(plugins=[events]):
        assert slow_first() == 2
    (timed_out,) = events.of_type(TaskTimedOut)
    assert (timed_out.attempt, timed_out.timeout) == (1, TIMEOUT)
    (retried,) = events.of_type(TaskRetried)
    assert (retried.error_type, retried.error_message) == (
        "TaskTimeoutError",
        "task 'slow-first' timed out after 0.2 s (attempt 1 of 2)",
    )


def test_all_attempts_timing_out_raise_task_timeout_error(events):
    spin, counter = _spinner(retries=1)
    with session(plugins=[events]), pytest.raises(TaskTimeoutError) as info:
        spin()
    assert str(info.value) == "task 'spin' timed out after 0.2 s (attempt 2 of 2)"
    assert info.value.attempts == 2
    assert [e.attempt for e in events.of_type(TaskTimedOut)] == [1, 2]
    (failed,) = events.of_type(TaskFailed)
    assert (failed.error_type, failed.attempts) == ("TaskTimeoutError", 2)
    _assert_stopped(counter)


def test_task_timeout_error_is_a_task_error_and_a_timeout_error():
    spin, counter = _spinner()
    with pytest.raises(TimeoutError):
        spin()
    with pytest.raises(TaskError):
        spin()
    _assert_stopped(counter)


def test_timed_attempt_sees_its_task_context():
    @task(name="ctx", timeout=5)
    def where() -> tuple[str, str]:
        meta = current_task()
        return meta.name, threading.current_thread().name

    with session():
        name, thread = where()
    assert name == "ctx"
    assert thread == "daglite-timeout-ctx"


def test_fast_task_with_timeout_returns_its_value_and_raises_its_errors():
    @task(timeout=5)
    def quick(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x

    assert quick(3) == 3
    with pytest.raises(TaskError, match="ValueError: negative") as info:
        quick(-1)
    assert isinstance(info.value.__cause__, ValueError)


def test_async_task_is_cancelled_at_the_timeout():
    cancelled = []

    @task(name="waiter", timeout=TIMEOUT)
    async def waiter() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    start = time.perf_counter()
    with pytest.raises(TaskTimeoutError, match=r"^task 'waiter' timed out after 0.2 s"):
        asyncio.run(waiter())
    assert time.perf_counter() - start >= TIMEOUT
    assert cancelled == [True]


def test_timeout_error_raised_by_an_async_task_itself_is_not_a_timeout():
    @task(timeout=30)
    async def gives_up() -> None:
        raise TimeoutError("upstream timed out")

    with pytest.raises(TaskError) as info:
        asyncio.run(gives_up())
    assert not isinstance(info.value, TaskTimeoutError)
    assert str(info.value) == "task 'gives_up' failed: TimeoutError: upstream timed out"


def test_async_timeout_is_retried():
    calls = []

    @task(timeout=TIMEOUT, retries=1)
    async def second_time_lucky() -> int:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(30)
        return len(calls)

    assert asyncio.run(second_time_lucky()) == 2


def test_attempts_finishing_right_at_the_timeout_never_leak_a_thread_error(monkeypatch):
    leaked = []
    monkeypatch.setattr(threading, "excepthook", leaked.append)

    @task(timeout=0.002)
    def borderline() -> str:
        end = time.perf_counter() + 0.002
        while time.perf_counter() < end:
            pass
        return "done"

    outcomes = set()
    for _ in range(150):
        try:
            outcomes.add(borderline())
        except TaskTimeoutError:
            outcomes.add("timed out")
    deadline = time.monotonic() + 10
    while _timeout_threads() and time.monotonic() < deadline:  # abandoned attempts wind down
        time.sleep(0.01)
    assert _timeout_threads() == []
    assert leaked == []
    assert outcomes <= {"done", "timed out"}


def test_async_attempt_failing_while_cancelled_still_ends_with_the_timeout():
    @task(timeout=TIMEOUT)
    async def messy() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            raise RuntimeError("cleanup failed")  # noqa: B012

    with pytest.raises(TaskTimeoutError, match=r"^task 'messy' timed out after 0.2 s"):
        asyncio.run(messy())


def test_cancelling_the_caller_cancels_a_timed_attempt():
    cancelled = []

    @task(timeout=30)
    async def long_wait() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main():
        pending = asyncio.ensure_future(long_wait())
        await asyncio.sleep(0.05)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending

    asyncio.run(main())
    assert cancelled == [True]


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX timers")
def test_ctrl_c_while_waiting_for_a_timed_attempt_stops_it_too():
    spin, counter = _spinner(timeout=30)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with pytest.raises(KeyboardInterrupt):  # not the timeout's error, 30 s later
            spin()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    _assert_stopped(counter)
