"""loky: per-item isolation, the workers' environment, no orphans, kills that kill.

Real loky workers and real signals throughout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from loky_trust_tasks import crash_leaving_a_child
from loky_trust_tasks import die
from loky_trust_tasks import env_of
from loky_trust_tasks import over_quota
from loky_trust_tasks import saved

from daglite import BackendError
from daglite import StoreError
from daglite import TaskError
from daglite import map_tasks
from daglite import session
from daglite.errors import RemoteError
from daglite.settings import DagliteSettings
from support.processes import kill_all
from support.processes import wait_gone
from support.processes import wait_reports

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).parent
TWO = DagliteSettings(max_workers=2)


def script_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))


# -- per-item isolation ---------------------------------------------------------------------


def test_an_exception_that_cannot_be_unpickled_comes_back_as_a_stand_in():
    with session(backend="loky", settings=TWO):
        out = map_tasks(over_quota, [0, 1, 2], return_exceptions=True)
    assert out[0] == 0 and out[2] == 2
    assert isinstance(out[1], TaskError)
    cause = out[1].__cause__
    assert isinstance(cause, RemoteError)
    assert str(cause) == "loky_trust_tasks.TwoArgError: quota disk exceeded: 42 used"
    assert 'raise TwoArgError("disk", 42)' in cause.worker_traceback


def test_a_relayed_dataset_write_that_fails_fails_only_its_item(tmp_path):
    (tmp_path / "out" / "1.pkl").mkdir(parents=True)
    with session(backend="loky", settings=TWO, dataset_store=str(tmp_path)):
        out = map_tasks(saved, [0, 1, 2], return_exceptions=True)
    assert out[0] == 0 and out[2] == 20
    assert isinstance(out[1], StoreError) and "out/1.pkl" in str(out[1])


DISK_FULL = textwrap.dedent(
    """
    import resource, sys
    limit = 1 << 20  # a file may not grow past 1 MiB: writing more fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    from daglite import map_tasks, session
    from daglite.settings import DagliteSettings
    from loky_trust_tasks import blob
    with session(backend="loky", cache_store=sys.argv[1], settings=DagliteSettings(max_workers=2)):
        out = map_tasks(blob, [10, 4 << 20, 20], return_exceptions=True)
    print([type(o).__name__ for o in out])
    print(out[1])
    """
)


def test_disk_full_while_caching_one_item_fails_only_that_item(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        env=script_env(),
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr
    kinds, message = proc.stdout.splitlines()[:2]
    assert kinds == "['bytes', 'StoreError', 'bytes']"
    assert "File too large" in message


def test_maps_with_dying_workers_only_ever_fail_their_items():
    # A worker death breaks loky's executor; the next submit may meet the broken one
    # (TerminatedWorkerError) or one being shut down: never an error of the whole map.
    with session(backend="loky", settings=TWO):
        for _ in range(8):
            out = map_tasks(die, range(6), chunksize=1, return_exceptions=True)
            assert [v for i, v in enumerate(out) if i != 1] == [0, 2, 3, 4, 5]
            assert isinstance(out[1], BackendError)
            assert "died running task 'die' (map index 1)" in str(out[1])


# -- the environment --------------------------------------------------------------------------


def test_warm_loky_workers_see_only_the_session_variables(monkeypatch):
    names = ("MY_DB_PASSWORD", "MYAPP_TOKEN", "DAGLITE_TEST_MARK")
    monkeypatch.setenv("MY_DB_PASSWORD", "s3cr3t")
    monkeypatch.setenv("MYAPP_TOKEN", "app-token")
    monkeypatch.setenv("DAGLITE_TEST_MARK", "mark")
    with session(backend="loky", settings=TWO):
        seen = map_tasks(env_of, [names] * 4, chunksize=1)
    for _, values in seen:
        assert values == {"MY_DB_PASSWORD": None, "MYAPP_TOKEN": None, "DAGLITE_TEST_MARK": "mark"}
    with session(backend="loky", settings=TWO.evolve(worker_env=("MYAPP_*",))):
        again = map_tasks(env_of, [names] * 4, chunksize=1)
    for _, values in again:
        assert values["MYAPP_TOKEN"] == "app-token" and values["MY_DB_PASSWORD"] is None


# -- orphans and kills ------------------------------------------------------------------------

COORDINATOR = textwrap.dedent(
    """
    import sys
    from daglite import map_tasks, session
    from daglite.settings import DagliteSettings
    from loky_trust_tasks import hold
    with session(backend="loky", settings=DagliteSettings(max_workers=2)):
        map_tasks(hold, [sys.argv[1] + "/a", sys.argv[1] + "/b"], chunksize=1)
    """
)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_loky_workers_and_their_subprocesses_end_with_the_coordinator(how, tmp_path):
    coordinator = subprocess.Popen(
        [sys.executable, "-c", COORDINATOR, str(tmp_path)],
        env=script_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pids: list[int] = []
    try:
        pids = wait_reports([tmp_path / "a", tmp_path / "b"])
        coordinator.send_signal(how)
        coordinator.wait(10)
        assert wait_gone(pids, 2.0) == [], "loky workers or their subprocesses outlived it"
    finally:
        coordinator.kill()
        kill_all(pids)


STUCK = textwrap.dedent(
    """
    import sys
    from daglite import map_tasks, session
    from daglite.settings import DagliteSettings
    from loky_trust_tasks import burn_in_c
    paths = [f"{sys.argv[1]}/{i}" for i in range(3)]
    with session(backend="loky", settings=DagliteSettings(max_workers=2)):
        out = map_tasks(burn_in_c, paths, return_exceptions=True)
    for error in out:
        print(type(error).__name__, error)
    """
)


def test_workers_reported_killed_are_killed_and_the_interpreter_exits(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK, str(tmp_path)],
        env=script_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=90)  # loky's exit handler must not hang
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert line.startswith("TaskTimeoutError task 'burn_in_c' (map index ")
        assert line.endswith("its worker process did not stop the attempt and was killed")
    pids = [int(p.read_text()) for p in tmp_path.iterdir() if not p.name.endswith(".tmp")]
    assert pids
    try:
        assert wait_gone(pids, 2.0) == [], "a worker reported killed is still running"
    finally:
        kill_all(pids)


def test_a_worker_that_dies_takes_the_subprocesses_it_started_along(tmp_path):
    report = tmp_path / "a"
    with session(backend="loky", settings=TWO):
        [error] = map_tasks(crash_leaving_a_child, [str(report)], return_exceptions=True)
        assert isinstance(error, BackendError) and "exit code 3" in str(error)
        pids = wait_reports([report], 5.0)
        try:
            assert wait_gone(pids, 2.0) == []
        finally:
            kill_all(pids)
