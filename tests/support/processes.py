"""Watching real processes from tests: alive pids, waiting for them, killing them, Ctrl-C a map."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """True if `pid` runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids, seconds: float = 10.0) -> list[int]:
    """Wait up to `seconds` for every pid to end; returns those still running."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return []
        time.sleep(0.02)
    return [pid for pid in pids if alive(pid)]


def wait_reports(paths, seconds: float = 60.0) -> list[int]:
    """The pids the items wrote into `paths` (worker, child) once every report exists."""
    deadline = time.monotonic() + seconds
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, "the items never started"
        time.sleep(0.02)
    return [int(pid) for p in paths for pid in p.read_text().split()]


def kill_all(pids) -> None:
    """SIGKILL each of `pids` that still runs."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


#: A script mapping 200 naps of 0.2 s; each item writes its index to a file named by its pid.
NAPS = textwrap.dedent(
    """
    import os, sys, time
    from daglite import map_tasks, session, task

    @task
    def nap(x, folder):
        with open(os.path.join(folder, str(os.getpid())), "a") as fh:
            fh.write(f"{x}\\n")
        time.sleep(0.2)
        return x

    folder, backend = sys.argv[1], sys.argv[2]
    with session(backend=backend):
        try:
            map_tasks(nap, range(200), [folder] * 200, chunksize=1)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            raise
    """
)


def interrupt_naps(tmp_path: Path, backend: str) -> tuple[str, list[int], int]:
    """Run `NAPS`, Ctrl-C it once items run; (stdout, pids that ran items, items started)."""
    script = tmp_path / "naps.py"
    script.write_text(NAPS)
    folder = tmp_path / "seen"
    folder.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(script), str(folder), backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while items_seen(folder) < 2 and time.monotonic() < deadline:  # the map is under way
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGINT, err
    assert "KeyboardInterrupt" in err
    pids = [int(p.name) for p in folder.iterdir()]
    return out, pids, items_seen(folder)


def items_seen(folder: Path) -> int:
    """How many items of the nap script have started (each writes its index to a file)."""
    return sum(len(p.read_text().split()) for p in folder.iterdir())
