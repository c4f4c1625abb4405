"""Task events from loky workers say which process and thread ran the call (report lanes)."""

from __future__ import annotations

import os

import pytest
from loky_tasks import square

from daglite import events as ev
from daglite import map_tasks
from daglite import session
from daglite.settings import DagliteSettings
from daglite.testing import EventCapture

pytestmark = pytest.mark.timeout(60)


def test_task_events_carry_the_loky_worker_pid_and_thread():
    capture = EventCapture()
    with session(backend="loky", settings=DagliteSettings(max_workers=2), plugins=[capture]):
        map_tasks(square, range(6), chunksize=2)
    ends = capture.of_type(ev.TaskSucceeded)
    assert len(ends) == 6
    assert os.getpid() not in {e.pid for e in ends}
    assert {e.thread for e in ends} == {"MainThread"}
    started = {e.task_id: (e.pid, e.thread) for e in capture.of_type(ev.TaskStarted)}
    assert all(started[e.task_id] == (e.pid, e.thread) for e in ends)
    (ended,) = capture.of_type(ev.MapEnded)
    assert ended.batches == {2: 3}
