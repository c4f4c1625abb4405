"""The `process` backend with real worker processes: results, events, batching, failures."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import pickle
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from daglite import BackendError
from daglite import TaskError
from daglite import TaskTimeoutError
from daglite import gather_tasks
from daglite import map_tasks
from daglite import session
from daglite.backends import process as process_module
from daglite.events import MapEnded
from daglite.events import TaskFailed
from daglite.settings import DagliteSettings
from support.processes import interrupt_naps
from support.processes import wait_gone

from ..support.process_tasks import FailingStart
from ..support.process_tasks import WorkerHook
from ..support.process_tasks import async_double
from ..support.process_tasks import boom
from ..support.process_tasks import chatty
from ..support.process_tasks import count_to
from ..support.process_tasks import die
from ..support.process_tasks import exits
from ..support.process_tasks import fail_at
from ..support.process_tasks import nap
from ..support.process_tasks import outer
from ..support.process_tasks import saver
from ..support.process_tasks import sleepy
from ..support.process_tasks import square
from ..support.process_tasks import stuck_in_c
from ..support.process_tasks import whoami

pytestmark = pytest.mark.timeout(60)


# -- results --------------------------------------------------------------------------------


def test_results_in_input_order_on_two_workers():
    with session(backend="process", settings=DagliteSettings(max_workers=2)) as ctx:
        assert map_tasks(square, range(200)) == [x * x for x in range(200)]
        pids = set(map_tasks(whoami, range(50), chunksize=1))
        assert len(pids) == 2 and os.getpid() not in pids
        assert set(ctx.get_backend("process").pool.pids) == pids


def test_workers_stop_when_the_session_ends():
    with session(backend="process") as ctx:
        pids = ctx.get_backend("process").pool.pids
        map_tasks(square, range(4))
        pids = ctx.get_backend("process").pool.pids
        assert pids
    assert wait_gone(pids) == []


def test_explicit_chunksize_sends_items_in_groups():
    with session(backend="process", settings=DagliteSettings(max_workers=2)):
        pids = map_tasks(whoami, range(40), chunksize=10)
    for start in range(0, 40, 10):
        assert len(set(pids[start : start + 10])) == 1


def test_generator_input_is_consumed_lazily_with_a_bound():
    finished = []
    pulled = 0
    ahead = 0

    def numbers():
        nonlocal pulled, ahead
        for n in range(1_000_000):
            pulled += 1
            ahead = max(ahead, pulled - len(finished))
            yield n

    def on_event(event):
        if event.kind in ("TaskSucceeded", "TaskFailed"):
            finished.append(event.map_index)

    settings = DagliteSettings(max_workers=2)
    match = r"map index 300\) failed: ValueError: stop at 300"
    opened = session(backend="process", settings=settings, plugins=[on_event])
    with opened, pytest.raises(TaskError, match=match):
        map_tasks(fail_at, numbers(), itertools.repeat(300), chunksize=10)
    # The window: two batches per worker in flight, plus the next one packed. It holds at
    # every pull, whatever the machine's load.
    assert ahead <= 10 * (2 * 2 + 1)
    # The map stops pulling once the failure is read. How many batches the other worker
    # finishes before that depends on scheduling (3-8 on a quiet machine, 12 once in CI
    # under load), so the bound here only shows the input stopped near the failure, not a
    # million items later.
    assert 300 < pulled <= 300 + 10 * 30


def test_return_exceptions_keeps_other_values():
    with session(backend="process"):
        out = map_tasks(boom, range(6), return_exceptions=True)
    assert out[:3] == [0, 1, 2] and out[4:] == [4, 5]
    assert isinstance(out[3], TaskError)
    assert str(out[3]) == "task 'boom' (map index 3) failed: ValueError: bad item 3"


def test_original_exception_is_the_cause_with_the_worker_traceback():
    with session(backend="process"), pytest.raises(TaskError) as info:
        map_tasks(boom, range(6))
    cause = info.value.__cause__
    assert type(cause) is ValueError and str(cause) == "bad item 3"
    assert info.value.map_index == 3 and info.value.task_name == "boom"
    text = info.value.worker_traceback
    assert "Traceback (most recent call last)" in text
    assert 'raise ValueError(f"bad item {x}")' in text
    assert any("Traceback in worker process" in note for note in cause.__notes__)


def test_async_and_generator_tasks():
    with session(backend="process"):
        assert map_tasks(async_double, range(5)) == [0, 2, 4, 6, 8]
        assert map_tasks(count_to, [0, 2, 3]) == [[], [0, 1], [0, 1, 2]]


def test_gather_tasks_on_the_process_backend():
    async def main():
        return await gather_tasks(async_double, range(4), backend="process")

    with session():
        assert asyncio.run(main()) == [0, 2, 4, 6]


def test_map_outside_a_session_starts_and_stops_its_own_pool():
    assert map_tasks(square, range(10), backend="process") == [x * x for x in range(10)]


@pytest.mark.parametrize("nested", [None, "process"])
def test_nested_maps_run_inline_in_the_worker(nested):
    with session(backend="process"):  # even a nested map naming a process backend
        (result,) = map_tasks(outer, [3], [nested])
    outer_pid = result[0][0]
    assert outer_pid != os.getpid()
    assert result[1:] == [(outer_pid, "inline")] * 3


# -- events, logs, hooks, relayed writes -------------------------------------------------


def test_worker_events_reach_the_coordinator_in_order():
    events = []
    with session(backend="process", plugins=[events.append]):
        map_tasks(boom, range(40), return_exceptions=True)
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["SessionStarted", "MapStarted"]
    assert kinds[-2:] == ["MapEnded", "SessionEnded"]
    map_id = events[1].map_id
    calls: dict[str, list[str]] = {}
    for event in events[2:-2]:
        assert event.map_id == map_id and event.session_id == events[0].session_id
        calls.setdefault(event.task_id, []).append(event.kind)
    assert len(calls) == 40
    failed = [e for e in events if e.kind == "TaskFailed"]
    assert [e.map_index for e in failed] == [3]
    for kinds_of_call in calls.values():
        assert kinds_of_call in (["TaskStarted", "TaskSucceeded"], ["TaskStarted", "TaskFailed"])
    assert events[-2].total == 40 and events[-2].failures == 1


def test_worker_log_records_are_relayed(caplog):
    caplog.set_level(logging.WARNING, logger="daglite.tests.worker")
    with session(backend="process"):
        map_tasks(chatty, range(3))
    messages = sorted(r.getMessage() for r in caplog.records if r.name == "daglite.tests.worker")
    assert messages == [f"item {x} says hi" for x in range(3)]
    assert all(r.process != os.getpid() for r in caplog.records if r.name.endswith("worker"))


def test_dataset_writes_are_relayed_and_applied_in_order(tmp_path, monkeypatch):
    from daglite import datasets

    applied: list[str] = []
    real = datasets.apply_relayed_write

    def recording(store, key, data):  # the real write, on the coordinator, keeping its order
        applied.append(key)
        return real(store, key, data)

    monkeypatch.setattr(datasets, "apply_relayed_write", recording)
    root = tmp_path / "ds"
    saved_before_success = []

    def on_event(event):
        if event.kind == "TaskSucceeded":
            saved_before_success.append((root / "items" / f"{event.map_index}.json").exists())

    settings = DagliteSettings(max_workers=1)
    with session(backend="process", settings=settings, dataset_store=str(root), plugins=[on_event]):
        # fixed batches, run one after the other (a blind batch's rest would run later)
        assert map_tasks(saver, range(300), chunksize=50) == list(range(300))
    assert applied == [f"items/{x}.json" for x in range(300)]
    assert saved_before_success == [True] * 300  # writes land before the events after them
    assert sorted(p.name for p in (root / "items").iterdir()) == sorted(
        f"{x}.json" for x in range(300)
    )


def test_hook_plugins_run_in_workers_and_start_once_per_worker(tmp_path):
    hook = WorkerHook(str(tmp_path))
    with session(backend="process", plugins=[hook], settings=DagliteSettings(max_workers=2)):
        pids = map_tasks(whoami, range(6), chunksize=1)
        for x in range(6):
            assert int((tmp_path / f"task-{x}").read_text()) == pids[x]
        pids += map_tasks(whoami, range(6), chunksize=1)
    starts = sorted(p.name for p in tmp_path.glob("start-*"))
    assert starts == sorted(f"start-{pid}" for pid in set(pids))
    for path in tmp_path.glob("start-*"):
        assert path.read_text() == "started\n"


# -- dying workers and timeouts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "reason"),
    [("exit", "exit code 3"), ("kill", "signal SIGKILL (9)"), ("segv", "signal SIGSEGV (11)")],
)
def test_a_dying_worker_is_named_and_replaced(how, reason):
    with session(backend="process", settings=DagliteSettings(max_workers=2)) as ctx:
        map_tasks(square, range(4))  # workers up
        with pytest.raises(BackendError) as info:
            map_tasks(die, range(20), [how] * 20, chunksize=4)
        message = str(info.value)
        assert re.fullmatch(
            rf"worker process \d+ died running task 'die' \(map index 5\): {re.escape(reason)}.*",
            message,
        )
        out = map_tasks(die, range(20), [how] * 20, return_exceptions=True)
        assert isinstance(out[5], BackendError) and "(map index 5)" in str(out[5])
        assert out[:5] + out[6:] == [x for x in range(20) if x != 5]
        assert map_tasks(square, range(3)) == [0, 1, 4]  # the pool was rebuilt
        assert len(ctx.get_backend("process").pool.pids) == 2


def test_an_item_whose_worker_died_is_reported_as_a_failed_task():
    from daglite.testing import EventCapture

    capture = EventCapture(kinds={"TaskFailed", "MapEnded"})
    settings = DagliteSettings(max_workers=2)
    with session(backend="process", settings=settings, plugins=[capture]):
        map_tasks(die, range(8), ["kill"] * 8, chunksize=4, return_exceptions=True)
    (failed,) = capture.of_type(TaskFailed)
    assert (failed.name, failed.map_index, failed.error_type) == ("die", 5, "BackendError")
    assert "died running task 'die' (map index 5): signal SIGKILL (9)" in failed.error_message
    (ended,) = capture.of_type(MapEnded)
    assert (ended.done, ended.failures, ended.total) == (7, 1, 8)


def test_spawn_start_method_finds_the_dying_item_without_progress(monkeypatch):
    monkeypatch.setattr(process_module, "START_METHOD", "spawn")
    with session(backend="process", settings=DagliteSettings(max_workers=2)):
        out = map_tasks(die, range(12), ["exit"] * 12, chunksize=6, return_exceptions=True)
    assert str(out[5]).endswith("died running task 'die' (map index 5): exit code 3")
    assert out[:5] + out[6:] == [x for x in range(12) if x != 5]


def test_a_dying_item_is_found_by_halving_its_batch(monkeypatch):
    from ..support.process_tasks import die_at

    # No progress: which item of the 64 killed the worker is unknown. Halves run alone,
    # and the half that dies is halved again: 1 + 2 x 6 batches, not one per item.
    monkeypatch.setattr(process_module, "START_METHOD", "spawn")
    with session(backend="process", settings=DagliteSettings(max_workers=2)) as ctx:
        transport = ctx.get_backend("process").transport
        submit = transport.submit
        sizes = []

        def counted(request):
            sizes.append(len(pickle.loads(request.items)[1]))
            return submit(request)

        transport.submit = counted
        out = map_tasks(die_at, range(64), [37] * 64, chunksize=64, return_exceptions=True)
    assert str(out[37]).endswith("died running task 'die_at' (map index 37): exit code 3")
    assert out[:37] + out[38:] == [x for x in range(64) if x != 37]
    assert sizes == [64, 32, 32, 16, 16, 8, 8, 4, 4, 2, 2, 1, 1]


def test_items_below_a_later_failure_still_run_after_their_worker_died(monkeypatch):
    from ..support.process_tasks import die_or_fail

    # No progress: the batch [0, 6) that died runs again one item at a time. [6, 12) fails
    # at 10 meanwhile; items 0-5 are below it and still run, so 5 is the first failure.
    monkeypatch.setattr(process_module, "START_METHOD", "spawn")
    settings = DagliteSettings(max_workers=2)
    with session(backend="process", settings=settings), pytest.raises(BackendError) as caught:
        map_tasks(die_or_fail, range(12), chunksize=6)
    assert str(caught.value).endswith("died running task 'die_or_fail' (map index 5): exit code 3")


def test_timed_out_item_fails_alone_and_its_worker_is_replaced(tmp_path):
    pidfile = str(tmp_path / "pid")
    with session(backend="process", settings=DagliteSettings(max_workers=2)) as ctx:
        out = map_tasks(sleepy, range(5), [pidfile] * 5, return_exceptions=True)
        assert out[:2] + out[3:] == [0, 1, 3, 4]
        assert isinstance(out[2], TaskTimeoutError)
        assert str(out[2]) == "task 'sleepy' (map index 2) timed out after 0.5 s (attempt 1 of 1)"
        stuck = int(Path(pidfile).read_text())
        assert wait_gone([stuck]) == []
        assert stuck not in ctx.get_backend("process").pool.pids
        assert map_tasks(square, range(3)) == [0, 1, 4]


def test_a_stopped_pure_python_attempt_keeps_its_worker():
    from ..support.process_tasks import spin

    with session(backend="process", settings=DagliteSettings(max_workers=1)) as ctx:
        pool = ctx.get_backend("process")
        before = map_tasks(spin, [0], chunksize=1)
        out = map_tasks(spin, [0, 1, 2], chunksize=1, return_exceptions=True)
        assert isinstance(out[1], TaskTimeoutError)
        assert out[0] == out[2] == before[0]  # the same worker ran before and after it
        assert before[0] in pool.pool.pids


@pytest.mark.parametrize("method", ["subprocess", "spawn"])
def test_attempt_stuck_in_c_code_gets_its_worker_killed(method, monkeypatch):
    monkeypatch.setattr(process_module, "START_METHOD", method)
    with session(backend="process", settings=DagliteSettings(max_workers=2)):
        out = map_tasks(stuck_in_c, range(4), return_exceptions=True)
    assert out[0] == 0 and out[2:] == [2, 3]
    assert isinstance(out[1], TaskTimeoutError)
    assert str(out[1]) == (
        "task 'stuck_in_c' (map index 1) timed out after 0.3 s; its worker process did not "
        "stop the attempt and was killed"
    )


def test_session_end_stops_a_map_running_in_another_thread():
    import contextvars

    errors = []

    def run():
        try:
            map_tasks(nap, [0.2] * 100, chunksize=1)
        except BackendError as exc:
            errors.append(exc)

    finished = []  # items of the map done when the session ended
    running = threading.Event()

    def watch(event) -> None:
        if type(event).__name__ == "TaskSucceeded":
            finished.append(event)
            running.set()

    settings = DagliteSettings(max_workers=2)
    with session(backend="process", settings=settings, plugins=[watch]) as ctx:
        thread = threading.Thread(target=contextvars.copy_context().run, args=(run,))
        thread.start()
        assert running.wait(30), "no item of the map finished"
        pids = ctx.get_backend("process").pool.pids
    done_at_end = len(finished)
    thread.join(5)
    assert not thread.is_alive()
    assert [str(e) for e in errors] == ["the process pool was closed (its session ended)"]
    assert wait_gone(pids) == []
    assert done_at_end < 100  # the session did not wait for the rest of the map


def test_a_failing_worker_start_hook_is_reported():
    match = (
        r"^task 'square' could not be loaded in worker process \d+: "
        r"RuntimeError: no database here$"
    )
    opened = session(backend="process", plugins=[FailingStart()])
    with opened, pytest.raises(BackendError, match=match):
        map_tasks(square, range(3))


def test_system_exit_in_a_task_ends_its_worker():
    with session(backend="process"):
        out = map_tasks(exits, range(3), return_exceptions=True)
    assert out[0] == 0 and out[2] == 2
    assert re.fullmatch(
        r"worker process \d+ died running task 'exits' \(map index 1\): exit code 4", str(out[1])
    )


def test_events_of_slow_items_arrive_while_they_run():
    arrivals = []

    def on_event(event):
        arrivals.append((event.kind, time.monotonic()))

    with session(backend="process", plugins=[on_event]):
        map_tasks(nap, [0.8, 0.8])
    seen = dict(arrivals)  # the last arrival of each kind
    starts = [t for kind, t in arrivals if kind == "TaskStarted"]
    ends = [t for kind, t in arrivals if kind == "TaskSucceeded"]
    assert len(starts) == len(ends) == 2
    assert max(ends) - max(starts) >= 0.5  # TaskStarted did not wait for the batch's end
    assert seen["MapEnded"] >= max(ends)


# -- scripts run in a subprocess: tasks in `__main__`, and Ctrl-C during a map ------------


MAIN_TASKS = textwrap.dedent(
    """
    from daglite import map_tasks, session, task

    @task
    def work(x):
        return x + 1

    first_work = work

    @task
    def work(x):  # same function name as the task above
        return x * 10

    def scaler(k):
        @task
        def scale(x):
            return k * x
        return scale

    by_three, by_five = scaler(3), scaler(5)

    # No `if __name__ == "__main__":` guard: workers never import this script.
    with session(backend="process"):
        print(map_tasks(first_work, range(3)))
        print(map_tasks(work, range(3)))
        print(map_tasks(by_three, range(3)), map_tasks(by_five, range(3)))
    """
)


EXPECTED = "[1, 2, 3]\n[0, 10, 20]\n[0, 3, 6] [0, 5, 10]\n"


def test_tasks_defined_in_a_script(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(MAIN_TASKS)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.stderr == ""
    assert done.stdout == EXPECTED


def test_tasks_defined_in_a_script_read_from_stdin():
    done = subprocess.run(
        [sys.executable, "-"], input=MAIN_TASKS, capture_output=True, text=True, timeout=60
    )
    assert done.stderr == ""
    assert done.stdout == EXPECTED


def test_ctrl_c_stops_the_process_backend_and_its_workers(tmp_path):
    out, pids, items = interrupt_naps(tmp_path, "process")
    assert out == "interrupted\n"
    assert pids and wait_gone(pids) == []
    assert items < 50  # the queued items never ran
