"""Tasks for the loky trust tests (a module loky workers import by name)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from daglite import task


class TwoArgError(Exception):
    """An exception whose class pickle cannot rebuild (`__init__` takes two arguments)."""

    def __init__(self, quota: str, used: int) -> None:
        super().__init__(f"quota {quota} exceeded: {used} used")


@task
def over_quota(x: int) -> int:
    if x == 1:
        raise TwoArgError("disk", 42)
    return x


@task(dataset="out/{x}.pkl")
def saved(x: int) -> int:
    return x * 10


@task(cache=True)
def blob(size: int) -> bytes:
    return b"x" * size


@task
def env_of(names: tuple[str, ...]) -> tuple[int, dict[str, str | None]]:
    return os.getpid(), {name: os.environ.get(name) for name in names}


def report(path: str, *pids: int) -> None:
    with open(path + ".tmp", "w") as fh:
        fh.write(" ".join(str(pid) for pid in pids))
    os.replace(path + ".tmp", path)


@task
def hold(path: str) -> str:
    """Start a subprocess, report both pids, then block for a minute."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    report(path, os.getpid(), child.pid)
    time.sleep(60)
    return path


@task(timeout=4)  # loky times an item from its submission: room for a worker to start
def burn_in_c(path: str) -> str:
    """Report this worker's pid, then burn a CPU inside the regex engine (no way out)."""
    report(path, os.getpid())
    re.match(r"(a+)+$", "a" * 64 + "b")
    return path


@task
def die(x: int) -> int:
    if x == 1:
        os._exit(3)
    return x


@task
def crash_leaving_a_child(path: str) -> str:
    """Start a subprocess, report both pids, then die."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    report(path, os.getpid(), child.pid)
    os._exit(3)
