"""Tasks for the process backend tests, in a module that imports little (workers import it)."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import re
import signal
import threading
import time

import daglite
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
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "segv":
            ctypes.string_at(0)
    return x


@task
def fail_at_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


@task
def own_index(x: int) -> int:
    """The map index the item sees of itself; item 3 fails, naming it."""
    meta = daglite.current_task()
    assert meta is not None
    if x == 3:
        raise ValueError(f"I am item {meta.map_index}")
    return meta.map_index


@task
def die_at(x: int, at: int) -> int:
    if x == at:
        os._exit(3)
    return x


@task
def die_or_fail(x: int) -> int:
    if x == 5:
        os._exit(3)
    if x == 10:
        raise ValueError(f"item {x} is bad")
    return x


@task(timeout=0.5)
def sleepy(x: int, pidfile: str) -> int:
    if x == 2:
        with open(pidfile, "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(30)
    return x


@task(timeout=0.3)
def spin(x: int) -> int:
    if x == 1:  # pure Python: stopped at its next instruction when abandoned
        while True:
            pass
    return os.getpid()


@task(timeout=0.3)
def stuck_in_c(x: int) -> int:
    if x == 1:  # catastrophic backtracking: holds the GIL inside the regex engine
        re.match(r"(a+)+$", "a" * 40 + "b")
    return x


@task
def fetch(client: object, n: int) -> int:
    return n


@task
def unpicklable_result(x: int) -> object:
    return threading.Lock()


@task
def inner(x: int) -> tuple[int, str | None]:
    meta = daglite.current_task()
    return os.getpid(), meta.backend if meta else None


@task
def outer(n: int, backend: str | None = None) -> list[tuple[int, str | None]]:
    return [(os.getpid(), None), *map_tasks(inner, range(n), backend=backend)]


@task
def chatty(x: int) -> int:
    logging.getLogger("daglite.tests.worker").warning("item %d says hi", x)
    return x


@task(dataset="items/{x}.json")
def saver(x: int) -> int:
    return x


@task
async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@task
def count_to(n: int):
    yield from range(n)


class WorkerHook:
    """A hook plugin that records, in files, where its hooks ran."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    @daglite.hookimpl
    def on_worker_start(self, settings) -> None:
        with open(os.path.join(self.folder, f"start-{os.getpid()}"), "a") as fh:
            fh.write("started\n")

    @daglite.hookimpl
    def before_task(self, metadata, inputs) -> None:
        with open(os.path.join(self.folder, f"task-{inputs['x']}"), "w") as fh:
            fh.write(str(os.getpid()))


@task
def fail_at(x: int, at: int) -> int:
    if x == at:
        raise ValueError(f"stop at {x}")
    return x


@task
def nap(x: float) -> float:
    time.sleep(x)
    return x


@task
def nap_then(x: float, fails: bool) -> float:
    time.sleep(x)
    if fails:
        raise ValueError(f"failed after {x}")
    return x


@task
def size_of(data: bytes) -> int:
    return len(data)


@task
def exits(x: int) -> int:
    if x == 1:
        raise SystemExit(4)
    return x


class FailingStart:
    """A hook plugin whose per-worker set-up fails."""

    @daglite.hookimpl
    def on_worker_start(self, settings) -> None:
        raise RuntimeError("no database here")


@daglite.workflow
def sub_workflow(n: int) -> tuple[str, list[int]]:
    runtime = daglite.context.current_runtime.get()
    return runtime.session_id if runtime else "", map_tasks(square, range(n))


@task
def calls_a_workflow(n: int) -> tuple[str, list[int]]:
    return sub_workflow(n)


PICKLED: list[int] = []  # in this process: one entry per `Table` pickled here
LOADED: list[int] = []  # in this process: one entry per `Table` unpickled here


class Table:
    """A large argument that counts where it is pickled and unpickled."""

    def __init__(self, size: int) -> None:
        self.data = bytes(size)

    def __reduce__(self):
        PICKLED.append(os.getpid())
        return _load_table, (self.data,)


def _load_table(data: bytes) -> Table:
    table = Table.__new__(Table)
    table.data = data
    LOADED.append(os.getpid())
    return table


@task
def table_size(x: int, table: Table) -> tuple[int, int, int]:
    """`x` plus the table's size, with this worker's pid and how many tables it unpickled."""
    return x + len(table.data), os.getpid(), len(LOADED)


@task
def table_rows(table: Table) -> tuple[int, int, int]:
    """The table's size, with this worker's pid and how many tables it unpickled."""
    return len(table.data), os.getpid(), len(LOADED)
