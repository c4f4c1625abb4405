"""Worker processes dying mid-batch: dask's retry is reported, its give-up is a BackendError.

A dedicated cluster (its workers get killed and restarted by their nannies) whose scheduler
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


@pytest.fixture(scope="module")
def fragile_cluster():
    import dask
    from distributed import LocalCluster

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # None would still bind :8787
        ) as local,
    ):
        yield local


@pytest.fixture
def settings(fragile_cluster):
    address = fragile_cluster.scheduler_address
    return DagliteSettings(backend="dask", options={"dask": {"address": address}})


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


def test_item_that_kills_its_worker_is_named(settings):
    with session(settings=settings), pytest.raises(BackendError) as info:
        map_tasks(crash_on, [7], [7])
    message = str(info.value)
    assert message.startswith("dask lost the worker running task 'crash_on' (map index 0): ")
    assert "Dask gives up on a batch once it has killed 1 worker(s)" in message
    assert "(distributed.scheduler.allowed-failures = 0 on the scheduler)" in message


def test_batch_that_kills_its_worker_names_its_items(settings):
    with session(settings=settings), pytest.raises(BackendError) as info:
        map_tasks(crash_on, [1, 7, 3], [7] * 3, chunksize=3)
    assert str(info.value).startswith(
        "dask lost the worker running task 'crash_on' (map indices 0-2, one batch): "
    )


def _allow_one_failure(dask_scheduler=None):
    dask_scheduler.allowed_failures = 1


def test_batch_rerun_by_dask_is_reported(settings, fragile_cluster, tmp_path, caplog):
    from distributed import Client

    with Client(fragile_cluster, set_as_default=False) as client:
        client.run_on_scheduler(_allow_one_failure)
    marker = str(tmp_path / "crashed")
    with caplog.at_level(logging.WARNING, logger="daglite"), session(settings=settings):
        assert map_tasks(crash_once, [2], [marker]) == [2]
    warnings = [r.getMessage() for r in caplog.records if r.name == "daglite"]
    assert warnings == [
        "dask lost a worker while it ran task 'crash_once' (map index 0); dask re-ran the "
        "batch on another worker (1 lost worker) and it succeeded"
    ]
