"""Tasks of the ray plugin tests, in a module that Ray worker processes can import."""

from __future__ import annotations

import logging
import os
import signal
import time

from daglite import get_logger
from daglite import load_dataset
from daglite import map_tasks
from daglite import save_dataset
from daglite import task


@task
def square(x):
    return x * x


def with_table(size):
    """A task closing over a table of `size` bytes (sent by value: it is not importable)."""
    table = bytes(size)

    @task(name="with_table")
    def lookup(x):
        return x + len(table)

    return lookup


@task
def where(x):
    return x, os.getpid()


@task
def ray_name(x):
    """The name Ray gives the task running this item."""
    import ray

    return ray.get_runtime_context().get_task_name()


@task
def ray_actor(x):
    """The id of the Ray actor running this item (None in a Ray task)."""
    import ray

    return ray.get_runtime_context().get_actor_id()


@task(timeout=60)
def timed_actor(x):
    """`ray_actor` of a task with a timeout."""
    import ray

    return ray.get_runtime_context().get_actor_id()


@task(name="renamed")
def renamed_ray_name(x):
    import ray

    return ray.get_runtime_context().get_task_name()


@task
def fragile(x):
    if x % 5 == 3:
        raise ValueError(f"bad item {x}")
    return x


@task(retries=2)
def flaky(path, x):
    # Fails on the first attempt of each item, succeeds on the second (state in a file).
    marker = f"{path}/{x}"
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        raise OSError(f"first attempt of {x}")
    return x


@task(timeout=30)
def timed_square(x):
    return x * x


@task(timeout=0.5)
def spin(x):
    end = time.monotonic() + 60
    while time.monotonic() < end:
        pass
    return x


@task(timeout=0.5)
def stuck(x):
    time.sleep(60)  # in C: the abandoned attempt cannot be stopped inside the worker
    return x


@task
def slow(x):
    time.sleep(1.0)
    return x


@task
def nap(seconds):
    time.sleep(seconds)
    return seconds


@task
def chatty(x):
    get_logger().info("structured %s", x)
    logging.getLogger("pipeline.user").warning("item %s on a worker", x)
    return x


@task
def inner_sum(x):
    return sum(map_tasks(square, range(x)))


@task
def killer(x):
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


@task
def slow_killer(x):
    time.sleep(0.1)  # slow items: a batch that streams tells each one it runs
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


@task
def crash_once(path, x):
    # Kills its worker the first time item 0 runs; Ray's re-run of the batch succeeds.
    marker = f"{path}/crashed"
    if x == 0 and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os.kill(os.getpid(), signal.SIGKILL)
    return x


@task(cache=True)
def cached(x):
    return x * x, os.getpid()


@task
def save_and_look(x):
    """Save `items/{x}.json`; True if this process can read it back at once (a direct write)."""
    key = f"items/{x}.json"
    save_dataset(key, {"x": x})
    try:
        load_dataset(key)
    except Exception:
        return x, os.getpid(), False
    return x, os.getpid(), True


@task(dataset="auto/{x}.json")
def autosaved(x):
    return {"x": x, "pid": os.getpid()}


LOADED: list[int] = []  # in this process: one entry per `Table` unpickled here


class Table:
    """A large argument that counts where it is unpickled."""

    def __init__(self, size):
        self.data = bytes(size)

    def __reduce__(self):
        return _load_table, (self.data,)


def _load_table(data):
    table = Table.__new__(Table)
    table.data = data
    LOADED.append(os.getpid())
    return table


@task
def table_size(x, table):
    """`x` plus the table's size, with this worker's pid and how many tables it unpickled."""
    return x + len(table.data), os.getpid(), len(LOADED)


class Scaler:
    """An object whose method is a task: bound, it travels with each item to the workers."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    @task(cache=True)
    def where(self, x: int) -> tuple[int, int]:
        return os.getpid(), self.factor * x
