"""A real S3 API server (moto's standalone server) on a free port of 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import uuid

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """The endpoint URL of a moto S3 server with one bucket, `daglite-test`."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = _client(endpoint)
    client.create_bucket(Bucket="daglite-test")
    yield endpoint
    server.stop()


def _client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def s3(s3_server, monkeypatch):
    """Environment pointing daglite and botocore at the server; yields a boto3 client."""
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
    client = _client(s3_server)
    client.endpoint = s3_server
    yield client
    forget_stores()


@pytest.fixture
def prefix():
    """A fresh `s3://daglite-test/<unique>` URL prefix for one test."""
    return f"s3://daglite-test/{uuid.uuid4().hex[:12]}"
