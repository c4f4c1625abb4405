"""Worker processes killed mid-item on a real local Ray: Ray's retries, then daglite's error."""

from __future__ import annotations

import logging
import os
import re

import pytest
import ray_tasks as t

from daglite import BackendError
from daglite import DagliteSettings
from daglite import TaskError
from daglite import map_tasks
from daglite import session

pytestmark = pytest.mark.timeout(300)


def _settings(max_retries):
    return DagliteSettings(
        backend="ray", processors=(), options={"ray": {"max_retries": max_retries}}
    )


def test_a_killed_worker_is_a_backend_error_naming_task_and_index(runs_on):
    actors = runs_on(0)
    with session(settings=_settings(0)), pytest.raises(BackendError) as info:
        map_tasks(t.killer, range(6))
    message = str(info.value)
    assert message.startswith("worker process ")
    assert " died running task 'killer' (map index 3): " in message
    lost = "Actor(Unavailable|Died)Error" if actors else "WorkerCrashedError"
    assert re.search(f"Ray reported {lost} for batch daglite-", message), message
    assert "and gave up after 1 attempt (max_retries=0)" in message


def test_a_streaming_batch_tells_the_worker_and_item_that_killed_it(runs_on):
    actors = runs_on(0)
    listener = [lambda event: None]  # somebody shows the items: batches stream
    with session(settings=_settings(0), plugins=listener), pytest.raises(BackendError) as info:
        map_tasks(t.slow_killer, range(6))
    message = str(info.value)
    assert re.match(
        r"worker process \d+ died running task 'slow_killer' \(map index 3\): ", message
    )
    lost = "Actor(Unavailable|Died)Error" if actors else "WorkerCrashedError"
    assert re.search(f"Ray reported {lost} for batch daglite-", message), message


def test_a_batch_queued_behind_the_one_that_killed_its_worker_is_not_blamed(runs_on):
    runs_on(0)
    with session(settings=_settings(0)):  # one item a batch, two in flight per worker
        results = map_tasks(t.killer, range(8), chunksize=1, return_exceptions=True)
    assert [i for i, r in enumerate(results) if isinstance(r, Exception)] == [3]
    assert [r for r in results if not isinstance(r, Exception)] == [0, 1, 2, 4, 5, 6, 7]


def test_other_items_still_return_when_a_worker_is_killed(runs_on):
    runs_on(1)
    with session(settings=_settings(1)):
        results = map_tasks(t.killer, range(6), chunksize=3, return_exceptions=True)
    assert [r for r in results if not isinstance(r, Exception)] == [0, 1, 2, 4, 5]
    (error,) = [r for r in results if isinstance(r, Exception)]
    assert isinstance(error, BackendError) and not isinstance(error, TaskError)
    assert " died running task 'killer' (map index 3): " in str(error)
    assert "gave up after 2 attempts (max_retries=1)" in str(error)
    with session(settings=_settings(1)):  # the cluster is still usable
        assert map_tasks(t.square, range(4)) == [0, 1, 4, 9]


def test_a_batch_ray_re_ran_is_reported_on_the_daglite_logger(runs_on, tmp_path, caplog):
    actors = runs_on(1)
    with caplog.at_level(logging.WARNING, logger="daglite"), session(settings=_settings(1)):
        results = map_tasks(t.crash_once, [str(tmp_path)] * 4, range(4), chunksize=4)
    assert results == [0, 1, 2, 3]
    assert os.path.exists(tmp_path / "crashed")  # item 0 did kill its first worker
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "daglite"]
    assert warning.startswith("Ray re-ran batch daglite-")
    whose = "of its actor" if actors else "running it"
    assert warning.endswith(
        f" 1 time after the worker process {whose} died; the re-run succeeded (max_retries=1)"
    )
