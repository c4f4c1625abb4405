"""The backend's own local Ray, in a subprocess (Ray connects a process to one cluster).

With nothing configured and no Ray initialised, the first map of a session starts a local
Ray on 127.0.0.1, the session's other maps reuse it, and the session shuts it down; Ctrl-C
during a map cancels its batches and leaves no process of that Ray behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

SCRIPT = """
import os
import sys
import time

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite import TaskTimeoutError


@task
def where(x):
    return os.getpid()


@task
def actor_id(x):
    import ray

    return ray.get_runtime_context().get_actor_id()


@task(timeout=0.5)
def stuck(x):
    time.sleep(60)  # in C: its worker is killed
    return x


@task
def nap(folder, x):
    open(os.path.join(folder, str(x)), "w").close()
    time.sleep(300)
    return x


with session(backend="ray") as ctx:
    first = map_tasks(where, range(4))
    import ray

    context = ray.get_runtime_context()
    print("address", context.gcs_address, flush=True)
    node = context.get_node_id()
    second = map_tasks(where, range(4))  # the session's second map: its actors start
    print("same node", ray.get_runtime_context().get_node_id() == node, flush=True)
    print("in workers", os.getpid() not in first + second, flush=True)
    if sys.argv[1] == "normal":
        try:
            map_tasks(stuck, [1])
        except TaskTimeoutError as exc:
            print("timed out:", exc, flush=True)
    if sys.argv[1] == "interrupt-actors":  # the naps run on the warm actors
        actors = ctx.get_backend("ray").transport._actors
        ray.get([actor.ready for actor in actors if actor.ready is not None])
    if sys.argv[1].startswith("interrupt"):
        map_tasks(nap, [sys.argv[2]] * 6, range(6))
print("initialized after the session", ray.is_initialized(), flush=True)
if sys.argv[1] == "normal":  # a new local Ray: nothing of the first one is used
    with session(backend="ray") as ctx:
        print("next session", map_tasks(where, range(4)) != first, flush=True)
        map_tasks(where, range(4))  # its second map: actors start on the new Ray
        actors = ctx.get_backend("ray").transport._actors
        ray.get([actor.ready for actor in actors if actor.ready is not None])
        ids = {actor.handle._actor_id.hex() for actor in actors}
        on_actors = set(map_tasks(actor_id, range(8), chunksize=2))
        print("on its actors", bool(on_actors) and on_actors <= ids, flush=True)
"""


def _ray_processes(root: str) -> list[str]:
    """Command lines of the live processes that belong to the Ray under `root`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if root in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def _wait_gone(root: str, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := _ray_processes(root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture
def ray_root():
    """A short, fresh RAY_TMPDIR (Ray's socket paths must stay short): its processes carry it."""
    root = tempfile.mkdtemp(prefix="dgr-", dir="/tmp")
    yield root
    subprocess.run(["rm", "-rf", root], check=False)


def _start(tmp_path, ray_root, *args):
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "DAGLITE_"))}
    env["RAY_TMPDIR"] = ray_root
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_local_ray_on_loopback_for_the_session_then_shut_down(tmp_path, ray_root):
    proc = _start(tmp_path, ray_root, "normal")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    # (Ray relays its raylet's log to stdout: that it killed the timed-out item's worker)
    lines = [line for line in out.splitlines() if "(raylet)" not in line]
    assert lines[0].startswith("address 127.0.0.1:")
    assert lines[1:] == [
        "same node True",
        "in workers True",
        "timed out: task 'stuck' (map index 0) timed out after 0.5 s (attempt 1 of 1)",
        "initialized after the session False",
        "next session True",
        "on its actors True",
    ]
    assert err.count("Started a local Ray instance") == 2  # once per session, not per map
    assert "Unhandled error" not in err  # Ray's word for an error never read: all were
    assert _wait_gone(ray_root, 30) == []


@pytest.mark.parametrize("mode", ["interrupt", "interrupt-actors"])
def test_ctrl_c_cancels_the_batches_and_leaves_no_ray_process(tmp_path, ray_root, mode):
    folder = tmp_path / "running"
    folder.mkdir()
    proc = _start(tmp_path, ray_root, mode, str(folder))
    deadline = time.monotonic() + 180
    while len(list(folder.iterdir())) < 2:  # both workers are in the middle of an item
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the items never started"
        time.sleep(0.1)
    assert _ray_processes(ray_root), "the local Ray runs under RAY_TMPDIR"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err
    assert "Unhandled error" not in err
    assert "initialized after the session" not in out
    assert _wait_gone(ray_root, 30) == []
    assert len(list(folder.iterdir())) == 2, "the queued items never started"


def test_a_local_ray_that_cannot_start_is_explained(tmp_path, ray_root):
    script = tmp_path / "tiny.py"
    script.write_text(
        "from daglite import BackendError, DagliteSettings, map_tasks, session, task\n"
        "@task\ndef one(x):\n    return x\n"
        "settings = DagliteSettings(max_workers=1, options={'ray': {'object_store_memory': 1}})\n"
        "try:\n"
        "    with session(backend='ray', settings=settings):\n"
        "        map_tasks(one, range(2))\n"
        "except BackendError as exc:\n"
        "    print(exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "DAGLITE_"))}
    env["RAY_TMPDIR"] = ray_root
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240
    )
    message = proc.stdout.strip()
    assert message.startswith("could not start a local Ray (1 CPUs on 127.0.0.1): "), proc.stderr
    assert "cap object store memory usage at 1 bytes" in message  # Ray's own words
    assert message.endswith(
        "; check `num_cpus` and `object_store_memory` in [tool.daglite.options.ray], or set "
        "RAY_ADDRESS to run on a Ray that is already running"
    )
    assert _wait_gone(ray_root, 30) == []
