"""Tasks for the loky backend tests, in a module that imports little (workers import it)."""

from __future__ import annotations

import os
import signal
import threading
import time

from daglite import map_tasks
from daglite import task


@task
def square(x: int) -> int:
    return x * x


@task
def whoami(x: int) -> int:
    return os.getpid()


@task
def boom(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


@task
def die(x: int, how: str) -> int:
    if x == 5:
        if how == "exit":
            os._exit(3)
        os.kill(os.getpid(), signal.SIGKILL)
    return x


@task(timeout=0.5)
def sleepy(x: int) -> int:
    if x == 2:
        time.sleep(30)
    return x


@task
def fetch(client: object, n: int) -> int:
    return n


@task
def inner(x: int) -> int:
    return os.getpid()


@task
def outer(n: int) -> list[int]:
    return [os.getpid(), *map_tasks(inner, range(n))]


LOCK = threading.Lock()


@task
def env_of(name: str) -> tuple[int, str | None]:
    return os.getpid(), os.environ.get(name)


class Scaler:
    """An object whose method is a task: bound, it travels with each item to the workers."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    @task(cache=True)
    def where(self, x: int) -> tuple[int, int]:
        return os.getpid(), self.factor * x
