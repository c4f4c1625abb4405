"""Tasks for the per-item isolation tests (a module workers import by name)."""

from __future__ import annotations

from daglite import task


class TwoArgError(Exception):
    """An exception whose class pickle cannot rebuild (`__init__` takes two arguments)."""

    def __init__(self, quota: str, used: int) -> None:
        super().__init__(f"quota {quota} exceeded: {used} used")
        self.quota = quota
        self.used = used


@task
def over_quota(x: int) -> int:
    if x == 1:
        raise TwoArgError("disk", 42)
    return x


@task(dataset="out/{name}/value.pkl")
def named(name: str) -> str:
    return name


@task(dataset="out/{x}.pkl")
def saved(x: int) -> int:
    return x * 10


@task(cache=True)
def blob(size: int) -> bytes:
    return b"x" * size


@task
def env_of(names: tuple[str, ...]) -> dict[str, str | None]:
    import os

    return {name: os.environ.get(name) for name in names}


def _start_child_and_report(path: str) -> None:
    """Start a subprocess that would run for a minute; write `<worker pid> <child pid>`."""
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(path + ".tmp", "w") as fh:
        fh.write(f"{os.getpid()} {child.pid}")
    os.replace(path + ".tmp", path)


@task
def hold(path: str) -> str:
    """Start a subprocess, report both pids, then block for a minute (in C: `time.sleep`)."""
    import time

    _start_child_and_report(path)
    time.sleep(60)
    return path


@task(timeout=0.5)
def hold_timed(path: str) -> str:
    import time

    _start_child_and_report(path)
    time.sleep(60)
    return path


@task
def leave_behind(path: str) -> str:
    """Start a subprocess and return at once, leaving it running."""
    _start_child_and_report(path)
    return path


@task
def crash_leaving_a_child(path: str) -> str:
    """Start a subprocess, report both pids, then die."""
    import os

    _start_child_and_report(path)
    os._exit(3)


@task
def over_quota_deep(x: int) -> int:
    """Fails with a daglite error whose own cause cannot be rebuilt from its pickle."""
    from daglite import StoreError

    if x == 1:
        try:
            raise TwoArgError("disk", 42)
        except TwoArgError as exc:
            raise StoreError("cannot write the entry") from exc
    return x
