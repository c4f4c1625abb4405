"""Task events from dask workers say which process and thread ran the call (report lanes)."""

from __future__ import annotations

import os

import pytest
from distributed import Client

from daglite import events as ev
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.testing import EventCapture

pytestmark = pytest.mark.timeout(120)


@task
def double(x: int) -> int:
    return 2 * x


def test_task_events_carry_the_dask_worker_pid_and_thread(dask_settings, cluster):
    capture = EventCapture()
    with session(settings=dask_settings, plugins=[capture]):
        map_tasks(double, range(6), chunksize=3)
    ends = capture.of_type(ev.TaskSucceeded)
    assert len(ends) == 6
    with Client(cluster) as client:  # ask each worker process for its pid
        worker_pids = set(client.run(os.getpid).values())
    pids = {e.pid for e in ends}
    assert os.getpid() not in pids
    assert pids <= worker_pids
    assert all(e.thread and e.thread != "MainThread" for e in ends)  # dask's task threads
    (ended,) = capture.of_type(ev.MapEnded)
    assert ended.batches == {3: 2}
