"""Real components shared by the cross-package tests: one moto S3 server on 127.0.0.1.

The integration env installs the core and every plugin (but dask); these tests combine
them the way a user would. Worker processes inherit the environment that points daglite
and botocore at the server, so every test that may start workers asks for `s3` first.
"""

from __future__ import annotations

import logging
import socket
import uuid

import pytest

BUCKET = "daglite-integration"

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """The endpoint URL of a moto S3 server holding the bucket `BUCKET`."""
    pytest.importorskip("moto.server")
    pytest.importorskip("daglite_s3")
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_keys()).create_bucket(
        Bucket=BUCKET
    )
    yield endpoint
    server.stop()


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class S3:
    """The server's endpoint, a boto3 client on it and a fresh `s3://` prefix for one test."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        self.endpoint = endpoint
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_keys())
        self.folder = uuid.uuid4().hex[:12]
        self.prefix = f"s3://{BUCKET}/{self.folder}"

    def keys(self, under: str = "") -> list[str]:
        """The object keys below `prefix/under`, relative to the test's prefix, sorted."""
        start = f"{self.folder}/{under}"
        listed = self.client.list_objects_v2(Bucket=BUCKET, Prefix=start)
        return sorted(item["Key"][len(self.folder) + 1 :] for item in listed.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=BUCKET, Key=f"{self.folder}/{key}")["Body"].read()

    @property
    def env(self) -> dict[str, str]:
        """The variables that point daglite (and botocore) at the server, as documented."""
        return {**AWS_ENV, "DAGLITE_S3_ENDPOINT_URL": self.endpoint}


@pytest.fixture
def s3(s3_server, monkeypatch):
    """An `S3` for this test, with the environment (inherited by workers) set."""
    from daglite.stores import forget_stores

    found = S3(s3_server)
    for name, value in found.env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    yield found
    forget_stores()
