"""daglite-arrow with daglite-s3: tables round-tripped on a real S3 API (moto, 127.0.0.1).

Runs where both plugins, pandas, polars and moto's server are installed (the integration
env); skipped elsewhere.
"""

from __future__ import annotations

import pytest

pytest.importorskip("daglite_arrow")
pytest.importorskip("daglite_s3")
pytest.importorskip("moto.server")
pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")
pa = pytest.importorskip("pyarrow")

from daglite import load_dataset  # noqa: E402
from daglite import save_dataset  # noqa: E402
from daglite import session  # noqa: E402
from daglite import task  # noqa: E402
from daglite.caching import cache_key  # noqa: E402
from daglite.caching import open_cache_store  # noqa: E402
from daglite.datasets import DatasetStore  # noqa: E402
from daglite.testing import CallLog  # noqa: E402


@pytest.fixture
def prefix(s3):
    """A fresh `s3://bucket/<unique>` prefix on the suite's moto server (see conftest)."""
    return s3.prefix


def _sample(kind: str):
    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "price": pa.array([1.5, None, 3.0]),
            "name": pa.array(["a", "b", "c"]),
        }
    )
    if kind == "pandas":
        return table.to_pandas()
    if kind == "polars":
        return pl.from_arrow(table)
    return table


def _rows(value):
    if isinstance(value, pd.DataFrame):
        value = pa.Table.from_pandas(value, preserve_index=False)
    elif isinstance(value, pl.DataFrame):
        value = value.to_arrow()
    return value.to_pylist()


TYPES = {"pyarrow": pa.Table, "pandas": pd.DataFrame, "polars": pl.DataFrame}


@pytest.mark.parametrize("ext", ["parquet", "feather", "arrow", "csv"])
@pytest.mark.parametrize("kind", sorted(TYPES))
def test_every_kind_and_format_round_trips_on_s3(kind, ext, prefix):
    store = DatasetStore(prefix)
    value = _sample(kind)
    where = store.save(f"tables/t.{ext}", value)
    assert where.startswith("s3://") and where.endswith(f"tables/t.{ext}")
    loaded = store.load(f"tables/t.{ext}", TYPES[kind])
    assert type(loaded) is TYPES[kind]
    assert _rows(loaded) == _rows(value)
    if ext != "csv":  # the kind saved is recorded in the file
        assert type(store.load(f"tables/t.{ext}")) is TYPES[kind]


def test_a_parquet_saved_from_pandas_on_s3_loads_as_polars_with_options(prefix):
    save_dataset("t.parquet", _sample("pandas"), store=prefix, options={"compression": "zstd"})
    loaded = load_dataset("t.parquet", pl.DataFrame, store=prefix, options={"columns": ["id"]})
    assert loaded.columns == ["id"] and loaded["id"].to_list() == [1, 2, 3]


def test_a_table_cached_on_s3_is_a_feather_entry_and_hits(prefix):
    calls = CallLog()

    @task(cache=True)
    def doubled(frame: pd.DataFrame) -> pd.DataFrame:
        calls.append(1)
        return frame.assign(price=frame["price"] * 2)

    frame = _sample("pandas")
    with session(cache_store=f"{prefix}/cache"):
        first = doubled(frame)
        second = doubled(frame.copy())
    assert calls == [1]
    pd.testing.assert_frame_equal(first, second)
    cache = open_cache_store(f"{prefix}/cache")
    entry = cache.bytes.read(cache.entry_key(cache_key(doubled, frame)))
    assert entry[26 : 26 + entry[25]].rstrip(b"\0") == b"feather"
