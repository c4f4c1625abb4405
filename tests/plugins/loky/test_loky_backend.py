"""`backend="loky"` with real loky worker processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from loky_tasks import Scaler
from loky_tasks import boom
from loky_tasks import die
from loky_tasks import fetch
from loky_tasks import outer
from loky_tasks import sleepy
from loky_tasks import square
from loky_tasks import whoami

from daglite import BackendError
from daglite import SettingsError
from daglite import TaskError
from daglite import TaskTimeoutError
from daglite import map_tasks
from daglite import registry
from daglite import session
from daglite.settings import DagliteSettings
from support.processes import wait_gone

pytestmark = pytest.mark.timeout(60)

TWO = DagliteSettings(max_workers=2)


def test_the_entry_point_makes_loky_a_backend():
    from daglite_loky.backend import LokyBackend

    assert "loky" in registry.names("backend")
    assert registry.load("backend", "loky") is LokyBackend


def test_results_in_input_order_from_loky_workers():
    with session(backend="loky", settings=TWO):
        assert map_tasks(square, range(300)) == [x * x for x in range(300)]
        pids = set(map_tasks(whoami, range(40), chunksize=1))
    assert pids and os.getpid() not in pids


def test_events_from_loky_workers_arrive_in_order():
    events = []
    with session(backend="loky", settings=TWO, plugins=[events.append]):
        map_tasks(boom, range(20), return_exceptions=True)
    calls: dict[str, list[str]] = {}
    for event in events:
        if hasattr(event, "task_id"):
            calls.setdefault(event.task_id, []).append(event.kind)
    assert len(calls) == 20
    assert sorted(map(tuple, calls.values())) == sorted(
        [("TaskStarted", "TaskSucceeded")] * 19 + [("TaskStarted", "TaskFailed")]
    )
    assert [e.kind for e in events][-2:] == ["MapEnded", "SessionEnded"]


def test_a_processor_gets_exactly_the_events_it_asked_for_from_loky_workers():
    from daglite.testing import EventCapture

    wanted = {"TaskFailed", "MapEnded", "SessionEnded"}
    picky = EventCapture(kinds=wanted)
    everything = EventCapture()
    with session(backend="loky", settings=TWO, plugins=[picky, everything]):
        map_tasks(boom, range(20), return_exceptions=True)
    assert [e.kind for e in picky.events] == ["TaskFailed", "MapEnded", "SessionEnded"]
    assert [e for e in everything.events if e.kind in wanted] == picky.events
    failed, ended, session_end = picky.events
    assert failed.map_index == 3
    # the successes came as counts per batch, and add up to the per-item truth
    assert (ended.done, ended.failures, ended.skipped, ended.total) == (19, 1, 0, 20)
    assert ended.done == sum(e.kind == "TaskSucceeded" for e in everything.events)
    assert (session_end.succeeded, session_end.failed) == (19, 1)


def test_a_failed_item_keeps_its_original_error():
    with session(backend="loky", settings=TWO), pytest.raises(TaskError) as info:
        map_tasks(boom, range(6))
    assert str(info.value) == "task 'boom' (map index 3) failed: ValueError: bad item 3"
    assert type(info.value.__cause__) is ValueError
    assert 'raise ValueError(f"bad item {x}")' in info.value.worker_traceback


@pytest.mark.parametrize(("how", "reason"), [("exit", "exit code 3"), ("kill", "SIGKILL (9)")])
def test_a_dying_worker_is_named_and_loky_recovers(how, reason):
    with session(backend="loky", settings=TWO) as ctx:
        threads = ctx.get_backend("thread")
        out = map_tasks(die, range(12), [how] * 12, return_exceptions=True)
        assert out[:5] + out[6:] == [x for x in range(12) if x != 5]
        assert isinstance(out[5], BackendError)
        assert re.fullmatch(
            rf"worker process died running task 'die' \(map index 5\): .*{re.escape(reason)}.*",
            str(out[5]),
        )
        with pytest.raises(BackendError, match=r"\(map index 5\)"):
            map_tasks(die, range(12), [how] * 12)
        assert map_tasks(square, range(4)) == [0, 1, 4, 9]
        assert ctx.get_backend("thread") is threads  # the session's resources stay


def test_timed_out_item_fails_alone():
    with session(backend="loky", settings=TWO):
        out = map_tasks(sleepy, range(5), return_exceptions=True)
        assert out[:2] + out[3:] == [0, 1, 3, 4]
        assert isinstance(out[2], TaskTimeoutError)
        assert str(out[2]) == "task 'sleepy' (map index 2) timed out after 0.5 s (attempt 1 of 1)"
        assert map_tasks(square, range(3)) == [0, 1, 4]


def test_unpicklable_argument_is_named():
    with session(backend="loky"), pytest.raises(BackendError) as info:
        map_tasks(fetch, [threading.Lock()], [1])
    assert str(info.value) == (
        "argument 'client' of task 'fetch' (map index 0) cannot be sent to a worker "
        "process: cannot pickle '_thread.lock' object"
    )


def test_nested_maps_run_inline_in_the_loky_worker():
    with session(backend="loky"):
        (pids,) = map_tasks(outer, [3])
    assert pids[0] != os.getpid() and set(pids) == {pids[0]}


def test_idle_timeout_option():
    settings = DagliteSettings(options={"loky": {"idle_timeout": 5}})
    with session(backend="loky", settings=settings) as ctx:
        assert ctx.get_backend("loky").transport.idle_timeout == 5.0
        assert map_tasks(square, [3]) == [9]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"idle_timeout": "soon"},
            "invalid value 'soon' for option 'idle_timeout' of plugin 'loky': expected a number",
        ),
        (
            {"idle_timeout": 0},
            "invalid value 0 for 'idle_timeout' in [tool.daglite.options.loky]: must be "
            "a number of seconds > 0",
        ),
        (
            {"workers": 3},
            "unknown option(s) ['workers'] for plugin 'loky'; known options of 'loky': "
            "['idle_timeout'] (set in [tool.daglite.options.loky], DAGLITE_LOKY_<OPTION> or "
            "--option loky.<key>=<value>)",
        ),
    ],
)
def test_bad_options_are_named(options, message):
    settings = DagliteSettings(options={"loky": options})
    # when the session opens (unknown options), else when the backend starts (bad values)
    with pytest.raises(SettingsError) as info, session(backend="loky", settings=settings) as ctx:
        ctx.get_backend("loky")
    assert str(info.value) == message


def test_a_core_session_imports_no_plugin():
    code = textwrap.dedent(
        """
        import sys
        from daglite import map_tasks, session, task

        @task
        def double(x):
            return 2 * x

        for backend in ("inline", "thread", "process"):
            with session(backend=backend, plugins=[lambda event: None]):
                assert map_tasks(double, range(3)) == [0, 2, 4]
        print(sorted(m for m in sys.modules if m.startswith("daglite_")))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stderr == ""
    assert done.stdout == "[]\n"


def test_ctrl_c_stops_loky_workers(tmp_path):
    import signal

    script = tmp_path / "naps.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, time
            from daglite import map_tasks, session, task

            @task
            def nap(x, folder):
                with open(os.path.join(folder, str(os.getpid())), "a") as fh:
                    fh.write(f"{x}\\n")
                time.sleep(0.2)
                return x

            with session(backend="loky"):
                map_tasks(nap, range(200), [sys.argv[1]] * 200, chunksize=1)
            """
        )
    )
    folder = tmp_path / "seen"
    folder.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(script), str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while _items_seen(folder) < 2 and time.monotonic() < deadline:  # the map is under way
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGINT
    assert _items_seen(folder) < 100  # the queued items never ran
    assert wait_gone([int(p.name) for p in folder.iterdir()]) == []


def _items_seen(folder) -> int:
    """How many items of the nap script have started (each writes its index to a file)."""
    return sum(len(p.read_text().split()) for p in folder.iterdir())


def test_warm_workers_see_the_environment_of_each_new_session(monkeypatch):
    from loky_tasks import env_of

    name = "DAGLITE_TEST_MARK"
    monkeypatch.delenv(name, raising=False)
    with session(backend="loky", settings=TWO):
        before = map_tasks(env_of, [name] * 4, chunksize=1)
    monkeypatch.setenv(name, "set-between-sessions")
    with session(backend="loky", settings=TWO):
        during = map_tasks(env_of, [name] * 4, chunksize=1)
    monkeypatch.delenv(name)
    with session(backend="loky", settings=TWO):
        after = map_tasks(env_of, [name] * 4, chunksize=1)
    assert {value for _, value in before} == {None}
    assert {value for _, value in during} == {"set-between-sessions"}
    assert {value for _, value in after} == {None}
    # the same warm workers served all three sessions: loky did not restart them
    assert {pid for pid, _ in during} & {pid for pid, _ in before}


def test_a_bound_method_task_runs_on_its_instance_in_loky_workers_and_keys_it(tmp_path):
    with session(backend="loky", settings=TWO, cache_store=str(tmp_path)):
        first = map_tasks(Scaler(3).where, [1, 2])
        other = map_tasks(Scaler(5).where, [1, 2])
        again = map_tasks(Scaler(3).where, [1, 2])
    assert [value for _, value in first] == [3, 6]
    assert [value for _, value in other] == [5, 10]  # another instance: not the cache's 3, 6
    assert os.getpid() not in {pid for pid, _ in first}
    assert again == first  # an equal instance: read back from the cache, worker pids too
