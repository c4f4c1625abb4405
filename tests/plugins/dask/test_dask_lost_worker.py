"""Worker processes dying mid-batch: dask's retry is reported, its give-up is a BackendError.

They run on the command-line cluster (its nannies restart killed workers), whose scheduler
gives a task up at the first worker it kills; the rerun test raises that allowance to one.
"""

from __future__ import annotations

import logging
import os

import pytest

from daglite import BackendError
from daglite import DagliteSettings
from daglite import map_tasks
from daglite import session
from daglite import task

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(cli_cluster):
    return DagliteSettings(backend="dask", options={"dask": {"address": cli_cluster.address}})


@pytest.fixture(autouse=True)
def _all_workers_back(cli_cluster):
    # Nannies restart killed workers; each test starts with both of them registered.
    cli_cluster.wait_for_workers(2)


@task
def crash_on(x, bad):
    if x == bad:
        os._exit(1)
    return x


@task
def crash_once(x, marker):
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os._exit(1)
    return x


def test_batch_rerun_by_dask_is_reported(settings, cli_cluster, tmp_path, caplog):
    from distributed import Client

    marker = str(tmp_path / "crashed")
    with Client(cli_cluster.address, set_as_default=False) as client:
        # By value (a lambda): the scheduler process cannot import this test module.
        client.run_on_scheduler(
            lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 1)
        )
        try:
            with caplog.at_level(logging.WARNING, logger="daglite"), session(settings=settings):
                assert map_tasks(crash_once, [2], [marker]) == [2]
        finally:
            client.run_on_scheduler(
                lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 0)
            )
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "daglite"]
    assert warning.startswith(
        "dask lost 1 worker while running a batch of task 'crash_once' (dask key daglite-"
    )
    assert warning.endswith("dask re-ran the batch on another worker and it succeeded")


def test_item_that_kills_its_worker_is_named(settings):
    with session(settings=settings), pytest.raises(BackendError) as info:
        map_tasks(crash_on, [7], [7])
    message = str(info.value)
    assert message.startswith("worker process ")
    assert " died running task 'crash_on' (map index 0): an unknown exit status; the dask " in (
        message
    )
    assert message.endswith(
        "died and dask gave up on the batch after 1 lost worker(s) "
        "(distributed.scheduler.allowed-failures); see that worker's log"
    )


def test_batch_that_kills_its_worker_is_split_to_name_the_item(settings):
    with session(settings=settings), pytest.raises(BackendError) as info:
        map_tasks(crash_on, [1, 7, 3], [7] * 3, chunksize=3)
    assert " died running task 'crash_on' (map index 1): " in str(info.value)


def test_other_items_still_come_back_with_return_exceptions(settings):
    with session(settings=settings):
        # Many batches in flight: the dying worker also takes the batches queued on it,
        # which must run again rather than be reported lost.
        results = map_tasks(crash_on, [99, *range(1, 12)], [99] * 12, return_exceptions=True)
    assert results[1:] == list(range(1, 12))
    assert isinstance(results[0], BackendError)
    assert " died running task 'crash_on' (map index 0): " in str(results[0])
