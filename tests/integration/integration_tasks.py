"""Tasks of the cross-package tests, in a module that worker processes can import."""

from __future__ import annotations

import os

from daglite import save_dataset
from daglite import task
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
