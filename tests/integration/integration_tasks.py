"""Tasks of the cross-package tests, in a module that worker processes can import."""

from __future__ import annotations

import os

from daglite import get_logger
from daglite import hookimpl
from daglite import map_tasks
from daglite import save_dataset
from daglite import task
from daglite import workflow
from daglite.context import current_runtime
from daglite.datasets import open_dataset_store


def _visible(key: str) -> bool:
    runtime = current_runtime.get()
    assert runtime is not None
    return open_dataset_store(runtime.dataset_store).exists(key)


@task(cache=True)
def save_and_look(x: int) -> dict:
    """Save `items/{x}.json`, then say whether this process can already read it back.

    A direct write is visible at once; a write relayed to the coordinator is not there
    before the batch's results reach the coordinator.
    """
    key = f"items/{x}.json"
    save_dataset(key, {"x": x, "square": x * x})
    return {"x": x, "pid": os.getpid(), "visible": _visible(key)}


@task(dataset="auto/{x}.json")
def autosaved(x: int) -> dict:
    """A result saved by `dataset=` (after the body: its visibility is checked outside)."""
    return {"x": x, "pid": os.getpid()}


@task(cache=True, dataset="tables/{n}.parquet")
def table(n: int):
    """A pyarrow table of `n` rows: cached (as Arrow) and saved as parquet."""
    import pyarrow as pa

    return pa.table({"i": list(range(n)), "name": [f"row {i}" for i in range(n)]})


@task(cache=True)
def frame(n: int):
    """A pandas frame of `n` rows, cached."""
    import pandas as pd

    return pd.DataFrame({"i": range(n), "twice": [2 * i for i in range(n)]})


# -- observed runs: otel, rich and jsonl together ----------------------------------------

_failed_once: set[int] = set()


@task(retries=1, retry_delay=0.0)
def double(x: int) -> int:
    """Twice `x`, inside a user span; item 1 fails its first attempt (then is retried)."""
    from opentelemetry import trace

    get_logger("tests.integration").info("doubling", x=x)
    if x == 1 and x not in _failed_once:
        _failed_once.add(x)
        raise ConnectionError("flaky once")
    with trace.get_tracer("tests.user").start_as_current_span(f"user {x}"):
        return 2 * x


@task
def total(values: list) -> int:
    """The sum of `values`."""
    return sum(values)


@workflow
def pipeline(n: int) -> int:
    """`n` doubled items on the session's backend, then their total."""
    return total(map_tasks(double, range(n)))


class CallLog:
    """A hook plugin: appends `pid name[index]` to a file after each task call, where it ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    @hookimpl
    def after_task(self, metadata, inputs, result, duration) -> None:
        index = "" if metadata.map_index is None else f"[{metadata.map_index}]"
        with open(self.path, "a") as file:
            file.write(f"{os.getpid()} {metadata.name}{index}\n")


@task
def save_then_fail(x: int, pause: float) -> int:
    """Save `partial/{x}.json`, wait `pause` seconds, then fail for every third item."""
    import time

    save_dataset(f"partial/{x}.json", {"x": x})
    time.sleep(pause)
    if x % 3 == 0:
        raise ValueError(f"item {x} fails after saving")
    return x
