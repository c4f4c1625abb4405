"""One worker process as the coordinator holds it (`daglite.backends.workerprocess`).

Real worker processes, started both ways the `process` backend starts them.
"""

from __future__ import annotations

import os
import signal

import pytest

from daglite.backends.workerprocess import WorkerProcess
from daglite.backends.workerprocess import kill_all

pytestmark = pytest.mark.timeout(60)

METHODS = ["subprocess", "spawn"] if os.name == "posix" else ["spawn"]


@pytest.mark.parametrize("method", METHODS)
def test_a_worker_leaves_with_status_0_when_its_connection_closes(method):
    worker = WorkerProcess(method)
    assert worker.running() is None  # no item has started
    worker.conn.close()
    assert worker.exitcode(timeout=30) == 0
    worker.release()


@pytest.mark.skipif(os.name != "posix", reason="the subprocess start method is POSIX's")
def test_a_killed_worker_is_reaped_and_releases_what_it_held():
    worker = WorkerProcess("subprocess")
    assert worker.progress is not None and worker.conn in worker.waitables()
    worker.kill()
    assert worker.process.returncode == -signal.SIGKILL
    assert worker.conn.closed
    assert worker.progress is None and worker.pidfd is None


@pytest.mark.parametrize("method", METHODS)
def test_kill_all_ends_every_worker_and_empties_the_list(method):
    workers = [WorkerProcess(method) for _ in range(2)]
    processes = [worker.process for worker in workers]
    kill_all(workers)
    assert workers == []
    codes = [p.returncode if hasattr(p, "returncode") else p.exitcode for p in processes]
    assert all(code is not None and code != 0 for code in codes), codes
