"""The dask backend against `dask scheduler` and two `dask worker` processes, by address."""

from __future__ import annotations

import os

import pytest

from daglite import map_tasks
from daglite import session
from daglite import task

pytestmark = pytest.mark.slow


@task(retries=1)
def where(x):
    return x, os.getpid()


@pytest.fixture(autouse=True)
def _all_workers_back(cli_cluster):
    cli_cluster.wait_for_workers(2)  # the lost-worker tests kill some; nannies restart them


def test_connects_by_address_from_the_environment(cli_cluster, monkeypatch):
    monkeypatch.setenv("DAGLITE_DASK_ADDRESS", cli_cluster.address)
    events = []
    with session(backend="dask", plugins=[events.append]) as ctx:
        results = map_tasks(where, range(40))
        client = ctx.get_backend().client
        assert client.scheduler.address == cli_cluster.address
        assert len(client.nthreads()) == 2
    assert [x for x, _ in results] == list(range(40))
    assert os.getpid() not in {pid for _, pid in results}
    assert client.status == "closed"  # ours to close; the cluster keeps running
    assert len([e for e in events if e.kind == "TaskSucceeded"]) == 40
