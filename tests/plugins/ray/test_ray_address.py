"""Connecting by address to a Ray started with `ray start --head` on 127.0.0.1.

The head runs with `--block` and is stopped by a signal to that command, which stops its
own processes only: `ray stop` would stop every Ray on the machine, including the one the
other tests of this run share.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

CLIENT = """
import os
import socket
import sys

from daglite import BackendError
from daglite import DagliteSettings
from daglite import map_tasks
from daglite import session
from daglite import task


@task
def where(x):
    return x, os.getpid()


with session(backend="ray"):  # RAY_ADDRESS
    results = map_tasks(where, range(6))
    import ray

    print("address", ray.get_runtime_context().gcs_address, flush=True)
print("values", [x for x, _ in results], flush=True)
print("in workers", os.getpid() not in {pid for _, pid in results}, flush=True)
print("connected after the session", ray.is_initialized(), flush=True)
del os.environ["RAY_ADDRESS"]

ray.init(address=sys.argv[1])  # the application's own connection
port = sys.argv[1].rsplit(":", 1)[1]
same = DagliteSettings(options={"ray": {"address": f"localhost:{port}"}})
with session(backend="ray", settings=same):
    print("same cluster", [x for x, _ in map_tasks(where, range(3))], flush=True)
with socket.socket() as other:  # something else that accepts connections
    other.bind(("127.0.0.1", 0))
    other.listen()
    elsewhere = f"127.0.0.1:{other.getsockname()[1]}"
    settings = DagliteSettings(options={"ray": {"address": elsewhere}})
    try:
        with session(backend="ray", settings=settings):
            map_tasks(where, range(3))
    except BackendError as exc:
        print("error", exc, flush=True)
print("still connected", ray.is_initialized(), flush=True)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """`ray start --head --block` on 127.0.0.1 (1 CPU, no dashboard, no usage stats)."""
    root = tempfile.mkdtemp(prefix="dgh-", dir="/tmp")
    port = _free_port()
    log = tmp_path_factory.mktemp("ray-head") / "head.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "DAGLITE_"))}
    env.update(RAY_TMPDIR=root, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--include-dashboard=false",
        "--disable-usage-stats",
        "--num-cpus=1",
        "--block",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=out, env=env, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while "command will now block" not in log.read_text():  # printed once the node is up
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the head already started
        raise
    yield address, env
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    subprocess.run(["rm", "-rf", root], check=False)


def test_sessions_connect_by_address_and_leave_the_cluster_running(head, tmp_path):
    address, env = head
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    proc = subprocess.run(
        [sys.executable, str(script), address],
        env={**env, "RAY_ADDRESS": address, "RAY_AUTH_MODE": "token"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:5] == [
        f"address {address}",
        "values [0, 1, 2, 3, 4, 5]",
        "in workers True",
        "connected after the session False",
        "same cluster [0, 1, 2]",
    ]
    assert lines[5].startswith("error this process is already connected to the Ray cluster at ")
    assert "Ray connects a process to one cluster: unset the address" in lines[5]
    assert lines[6:] == ["still connected True"]


def test_a_cluster_that_wants_a_token_is_explained(head, tmp_path):
    address, env = head
    script = tmp_path / "no_token.py"
    script.write_text(
        "from daglite import BackendError, map_tasks, session, task\n"
        "@task\ndef one(x):\n    return x\n"
        "try:\n"
        "    with session(backend='ray'):\n"
        "        map_tasks(one, range(2))\n"
        "except BackendError as exc:\n"
        "    print(exc)\n"
    )
    env = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
    proc = subprocess.run(
        [sys.executable, str(script)],
        env={**env, "RAY_ADDRESS": address},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.stdout.strip() == (
        f"cannot connect to Ray at {address}: the cluster uses Ray's token authentication and "
        "this process sent no valid token; set RAY_AUTH_MODE=token and make the cluster's "
        "token available (~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN; see "
        "`ray get-auth-token`)"
    ), proc.stderr
