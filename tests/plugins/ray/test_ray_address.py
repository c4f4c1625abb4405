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


CONNECT = """
from daglite import BackendError, map_tasks, session, task


@task
def one(x):
    return x


try:
    with session(backend="ray"):  # RAY_ADDRESS
        map_tasks(one, range(2))
except BackendError as exc:
    print(exc)
"""

RAY_CLIENT = """
import time

from daglite import map_tasks
from daglite import session
from daglite import task


@task
def square(x):
    return x * x


@task(timeout=30)
def timed(x):
    return x + 1


@task(timeout=0.5)
def stuck(x):
    time.sleep(60)  # in C: only killing its worker stops it
    return x


@task
def actor(x):
    import ray

    return ray.get_runtime_context().get_actor_id()


events = []
with session(backend="ray", plugins=[events.append]):  # RAY_ADDRESS=ray://...
    print("values", map_tasks(square, range(2000))[-2:], flush=True)  # the listener: events
    from ray.util.client import ray as client

    print("over Ray Client", client.is_connected(), flush=True)
    print("timed", map_tasks(timed, range(4)), flush=True)
    try:
        map_tasks(stuck, [1])
    except Exception as exc:
        print("stuck", type(exc).__name__, exc, flush=True)
    print("timed again", map_tasks(timed, range(4)), flush=True)
    deadline = time.monotonic() + 120
    while None in set(map_tasks(actor, range(8), chunksize=1)):  # until the actors are up
        assert time.monotonic() < deadline, "the actors never came up"
    print("on warm actors", None not in set(map_tasks(actor, range(8), chunksize=1)), flush=True)
squares = [e for e in events if e.kind == "TaskSucceeded" and e.name == "square"]
print("events", sorted(e.map_index for e in squares) == list(range(2000)), flush=True)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """`ray start --head --block` on 127.0.0.1 (1 CPU, no dashboard, no usage stats).

    Yields its GCS address, the environment to reach it, and its Ray Client address.
    """
    root = tempfile.mkdtemp(prefix="dgh-", dir="/tmp")
    port, client_port = _free_port(), _free_port()
    log = tmp_path_factory.mktemp("ray-head") / "head.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "DAGLITE_"))}
    env.update(RAY_TMPDIR=root, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    # Without it, Ray's client server failed to start a client's own server (the process it
    # forks exits at once) in about 1 connection of 5 here; with it, 0 of 20.
    head_env = {**env, "GRPC_ENABLE_FORK_SUPPORT": "0"}
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--include-dashboard=false",
        "--disable-usage-stats",
        "--num-cpus=1",
        f"--ray-client-server-port={client_port}",
        "--block",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=out, env=head_env, start_new_session=True
        )
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
    yield address, env, f"ray://127.0.0.1:{client_port}"
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    subprocess.run(["rm", "-rf", root], check=False)


def test_sessions_connect_by_address_and_leave_the_cluster_running(head, tmp_path):
    address, env, _ = head
    proc = _run(CLIENT, env, tmp_path, address, RAY_ADDRESS=address, RAY_AUTH_MODE="token")
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
    address, env, _ = head
    env = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
    proc = _run(CONNECT, env, tmp_path, RAY_ADDRESS=address)
    assert proc.stdout.strip() == (
        f"cannot connect to Ray at {address}: the cluster uses Ray's token authentication and "
        "this process sent no valid token; set RAY_AUTH_MODE=token and make the cluster's "
        "token available (~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN; see "
        "`ray get-auth-token`)"
    ), proc.stderr


def _run(script, env, tmp_path, *args, **extra):
    """Run `script` in a fresh Python with `env` and the `extra` variables."""
    path = tmp_path / "script.py"
    path.write_text(script)
    return subprocess.run(
        [sys.executable, str(path), *args],
        env={**env, **extra},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_a_session_runs_over_ray_client(head, tmp_path):
    _, env, client = head
    proc = _run(RAY_CLIENT, env, tmp_path, RAY_ADDRESS=client, RAY_AUTH_MODE="token")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "values [3992004, 3996001]",
        "over Ray Client True",
        "timed [1, 2, 3, 4]",  # no streaming over Ray Client: timed from when it is sent
        "stuck TaskTimeoutError task 'stuck' (map index 0) timed out after 0.5 s (attempt 1 of 1)",
        "timed again [1, 2, 3, 4]",  # its worker was killed, the cluster still usable
        "on warm actors True",
        "events True",  # brought back with each batch's result
    ]
    assert "Unhandled error" not in proc.stderr


def test_ray_client_without_its_package_is_explained(head, tmp_path):
    _, env, client = head
    script = "import sys\nsys.modules['grpc'] = None  # as without `ray[client]`\n" + CONNECT
    proc = _run(script, env, tmp_path, RAY_ADDRESS=client, RAY_AUTH_MODE="token")
    assert proc.stdout.strip() == (
        f"cannot connect to Ray at {client}: a ray:// address goes through Ray Client, which "
        'needs Ray\'s client extra: pip install "ray[client]"'
    ), proc.stderr
