"""No orphans: workers end with their coordinator, and take their subprocesses along.

Real processes and real signals: a coordinator script runs a map whose items start a
subprocess each and then block; the test kills the coordinator and waits (bounded) for
every worker and every subprocess to be gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daglite import BackendError
from daglite import TaskTimeoutError
from daglite import map_tasks
from daglite import session
from daglite.settings import DagliteSettings
from support.processes import alive
from support.processes import kill_all
from support.processes import wait_gone
from support.processes import wait_reports

from ..support.isolation_tasks import crash_leaving_a_child
from ..support.isolation_tasks import hold_timed
from ..support.isolation_tasks import leave_behind

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).parent.parent / "support"  # the helper task modules the scripts import
TWO = DagliteSettings(max_workers=2)


COORDINATOR = textwrap.dedent(
    """
    import sys
    from daglite import map_tasks, session
    from daglite.settings import DagliteSettings
    from isolation_tasks import hold
    with session(backend=sys.argv[1], settings=DagliteSettings(max_workers=2)):
        map_tasks(hold, [sys.argv[2] + "/a", sys.argv[2] + "/b"], chunksize=1)
    """
)


def run_coordinator(backend: str, folder: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
    return subprocess.Popen(
        [sys.executable, "-c", COORDINATOR, backend, str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_workers_and_their_subprocesses_end_with_the_coordinator(how, tmp_path):
    coordinator = run_coordinator("process", tmp_path)
    pids: list[int] = []
    try:
        pids = wait_reports([tmp_path / "a", tmp_path / "b"])
        coordinator.send_signal(how)
        coordinator.wait(10)
        assert wait_gone(pids) == [], "workers or their subprocesses outlived it"
    finally:
        coordinator.kill()
        kill_all(pids)


def test_a_worker_killed_after_a_timeout_takes_its_subprocesses_along(tmp_path):
    report = tmp_path / "a"
    with session(backend="process", settings=TWO):
        [error] = map_tasks(hold_timed, [str(report)], return_exceptions=True)
        assert isinstance(error, TaskTimeoutError)
        pids = wait_reports([report], 5.0)
        try:
            assert wait_gone(pids) == []
        finally:
            kill_all(pids)


def test_a_subprocess_a_task_left_running_does_not_outlive_the_session(tmp_path):
    reports = [tmp_path / "a", tmp_path / "b"]
    with session(backend="process", settings=TWO):
        map_tasks(leave_behind, [str(p) for p in reports], chunksize=1)
        pids = wait_reports(reports, 5.0)
        children = pids[1::2]
        assert all(alive(pid) for pid in children)  # still running while the session lives
    try:
        assert wait_gone(pids) == []
    finally:
        kill_all(pids)


def test_a_worker_that_dies_takes_the_subprocesses_it_started_along(tmp_path):
    report = tmp_path / "a"
    with session(backend="process", settings=TWO):
        [error] = map_tasks(crash_leaving_a_child, [str(report)], return_exceptions=True)
        assert isinstance(error, BackendError) and "exit code 3" in str(error)
        pids = wait_reports([report], 5.0)
        try:
            assert wait_gone(pids) == []
        finally:
            kill_all(pids)
