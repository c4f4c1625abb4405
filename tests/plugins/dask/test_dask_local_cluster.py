"""With no address and no running client, the session starts (and closes) a LocalCluster."""

from __future__ import annotations

import pytest

from daglite import DagliteSettings
from daglite import map_tasks
from daglite import session
from daglite import task

pytestmark = pytest.mark.slow


@task
def cube(x):
    return x**3


def test_session_owns_a_local_cluster_on_loopback():
    settings = DagliteSettings(backend="dask", options={"dask": {"n_workers": 1}})
    with session(settings=settings) as ctx:
        backend = ctx.get_backend()
        assert backend._cluster is None  # nothing starts before the first map
        assert map_tasks(cube, range(6)) == [0, 1, 8, 27, 64, 125]
        cluster = backend._cluster
        client = backend.client
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert list(client.nthreads().values()) == [1]
        assert all(address.startswith("tcp://127.0.0.1:") for address in client.nthreads())
    assert client.status == "closed"
    assert cluster.status.name == "closed"
