"""Fixtures of the ray plugin tests: one real local Ray on 127.0.0.1, shared by the run.

Most tests run in this process on that Ray (the backend finds it initialised and uses it);
those about the backend's own local Ray, Ctrl-C and connecting by address run their
sessions in subprocesses, since Ray connects a process to one cluster at a time.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

import pytest

# Before Ray is imported: no usage reporting, and a node bound to 127.0.0.1 (Ray otherwise
# picks the machine's network address). The backend sets both for the Ray it starts.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

BUCKET = "daglite-ray-test"


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray with 2 CPUs on 127.0.0.1, initialised in this process for the whole run."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False)
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    yield ray
    ray.shutdown()


@pytest.fixture
def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """The endpoint of a moto S3 server on 127.0.0.1 with one bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """Environment pointing daglite-s3 at the server; yields a fresh `s3://` prefix."""
    from daglite.stores import forget_stores

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DAGLITE_S3_ENDPOINT_URL": s3_server,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    yield f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"
    forget_stores()


@pytest.fixture(params=["tasks", "actors"])
def runs_on(request, local_ray):
    """Run a test's batches as Ray tasks, then on warm pool actors (but a timed task's).

    Yields a function of `max_retries` that prepares the pool for a session with that
    option and returns the ids of the actors its batches will run on (none for tasks).
    """

    from pool_actors import Actors

    def prepare(max_retries=3):
        actors = Actors(local_ray, max_retries)
        return actors.warm() if request.param == "actors" else actors.cold()

    yield prepare


@pytest.fixture
def sent(monkeypatch):
    """The `BatchRequest`s the Ray transport is given, as they are submitted."""
    from daglite_ray.transport import RayTransport

    requests = []
    submit = RayTransport.submit

    def kept(self, request):
        requests.append(request)
        return submit(self, request)

    monkeypatch.setattr(RayTransport, "submit", kept)
    return requests
