"""Helpers of the arrow plugin's tests: sample tables of each kind, equality, stores."""

from __future__ import annotations

import datetime

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from daglite.datasets import DatasetStore
from daglite.testing import memory_dataset_store

KINDS = ("pyarrow", "pandas", "polars")
TYPES = {"pyarrow": pa.Table, "pandas": pd.DataFrame, "polars": pl.DataFrame}
FORMATS = {"parquet": "parquet", "feather": "feather", "arrow": "feather", "csv": "csv"}


def sample_arrow(rich: bool = True) -> pa.Table:
    """A small table; `rich` adds what only the binary formats keep (nulls in text, dates)."""
    columns = {
        "id": pa.array([1, 2, 3, 4], pa.int64()),
        "price": pa.array([1.5, None, 3.25, -4.0], pa.float64()),
        "name": pa.array(["apple", "pear", "fig", "kiwi"], pa.string()),
        "ok": pa.array([True, False, True, True]),
    }
    if rich:
        columns["note"] = pa.array(["a", None, "", "d"], pa.string())
        columns["day"] = pa.array([datetime.date(2024, 1, d) for d in (1, 2, 3, 4)])
    return pa.table(columns)


def sample(kind: str, rich: bool = True):
    """The sample table as a `kind` ("pyarrow", "pandas", "polars") value."""
    table = sample_arrow(rich)
    if kind == "pandas":
        return table.to_pandas()
    if kind == "polars":
        return pl.from_arrow(table)
    return table


def assert_same(left, right) -> None:
    """Equal tables of the same type (content, column names and dtypes)."""
    assert type(left) is type(right), (type(left), type(right))
    if isinstance(left, pd.DataFrame):
        pd.testing.assert_frame_equal(left, right)
    elif isinstance(left, pl.DataFrame):
        assert left.equals(right), (left, right)
        assert left.schema == right.schema
    else:
        assert left.equals(right), (left, right)


def rows(value) -> list[dict]:
    """The rows of a table of any kind, as plain Python values (nulls as None)."""
    if isinstance(value, pd.DataFrame):
        value = pa.Table.from_pandas(value, preserve_index=False)
    elif isinstance(value, pl.DataFrame):
        value = value.to_arrow()
    return value.to_pylist()


@pytest.fixture(params=["file", "memory"])
def store(request, tmp_path) -> DatasetStore:
    """A dataset store on local files or in memory."""
    if request.param == "file":
        return DatasetStore(str(tmp_path / "datasets"))
    return memory_dataset_store()
