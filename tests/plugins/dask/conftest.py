"""Fixtures of the dask plugin tests: one real LocalCluster (worker processes on loopback)."""

from __future__ import annotations

import pytest
from dask_clusters import CliCluster

from daglite import DagliteSettings


@pytest.fixture(scope="session")
def cluster():
    """A LocalCluster of two single-threaded worker processes on 127.0.0.1, shared by the run.

    No client is made the default here, so tests choose how the backend finds the cluster.
    """
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # None would still bind :8787
    ) as local:
        yield local


@pytest.fixture
def dask_settings(cluster):
    """Settings pointing the dask backend at the shared cluster by address."""
    return DagliteSettings(backend="dask", options={"dask": {"address": cluster.scheduler_address}})


@pytest.fixture
def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def cli_cluster(tmp_path_factory):
    """A scheduler and two workers started with the `dask` command line, shared by the run.

    Its scheduler gives a task up at the first worker it kills (`allowed-failures` 0), so
    the lost-worker tests need one death per case; `dask worker`'s nanny restarts the dead.
    """
    cluster = CliCluster(
        tmp_path_factory.mktemp("dask-cli"),
        env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"},
    )
    try:
        yield cluster
    finally:
        cluster.close()
