"""Tables in the result cache: stored as Arrow IPC, keyed by content, stable across runs."""

from __future__ import annotations

import json
import os
import pickle
import runpy
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from daglite import task
from daglite.caching import CacheStore
from daglite.caching import cache_key
from daglite.caching import open_cache_store
from daglite.formats import cache_format
from daglite.testing import CallLog
from daglite.testing import memory_cache_store
from daglite_arrow import fingerprint

from .conftest import KINDS
from .conftest import assert_same
from .conftest import sample


def _entry_format(cache: CacheStore, key: str) -> bytes:
    data = cache.bytes.read(cache.entry_key(key))
    return data[26 : 26 + data[25]].rstrip(b"\0")  # the header's format name (NUL-padded)


def test_tables_choose_feather_for_the_cache_and_other_values_keep_pickle():
    for kind in KINDS:
        fmt = cache_format(type(sample(kind)))
        assert fmt is not None and fmt.name == "feather"
    assert cache_format(dict) is None
    assert cache_format(pd.Series) is None


@pytest.mark.parametrize("where", ["file", "memory"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_cached_table_is_stored_as_feather_and_comes_back_as_the_same_kind(kind, where, tmp_path):
    cache = CacheStore(str(tmp_path / "c")) if where == "file" else memory_cache_store()
    value = sample(kind)
    cache.put("k" * 40, value)
    assert _entry_format(cache, "k" * 40) == b"feather"
    found, loaded, reason = cache.get("k" * 40)
    assert found and reason == ""
    assert_same(loaded, value)


def test_a_cached_task_returning_a_frame_hits_with_an_equal_frame(tmp_path):
    calls = CallLog()

    @task(cache=str(tmp_path / "cache"))
    def enrich(frame: pd.DataFrame, factor: int) -> pd.DataFrame:
        calls.append(factor)
        return frame.assign(total=frame["price"] * factor)

    frame = sample("pandas")
    first = enrich(frame, 2)
    again = enrich(frame.copy(), 2)  # an equal frame, another object: the same key
    enrich(frame, 3)
    assert calls == [2, 3]
    assert_same(again, first)
    cache = open_cache_store(str(tmp_path / "cache"))
    assert _entry_format(cache, cache_key(enrich, frame, 2)) == b"feather"


def test_a_frame_arrow_cannot_hold_is_pickled_and_keyed_all_the_same(tmp_path):
    calls = CallLog()

    @task(cache=str(tmp_path / "cache"))
    def same(frame: pd.DataFrame) -> pd.DataFrame:
        calls.append(1)
        return frame

    mixed = pd.DataFrame({"x": [1, "two", 3.0]})  # an object column of mixed types
    assert_same(same(mixed), mixed)
    assert_same(same(mixed), mixed)
    assert calls == [1]
    cache = open_cache_store(str(tmp_path / "cache"))
    assert _entry_format(cache, cache_key(same, mixed)) == b"pickle"


# -- keys -----------------------------------------------------------------------------------


@task(cache=True)
def measure(frame):
    return frame


@pytest.mark.parametrize("kind", KINDS)
def test_equal_tables_have_equal_keys(kind):
    assert cache_key(measure, sample(kind)) == cache_key(measure, sample(kind))


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.set_column(0, "id", pa.array([1, 2, 3, 5])),
        lambda t: t.rename_columns(["ident", *t.column_names[1:]]),
        lambda t: t.set_column(0, "id", pa.array([1, 2, 3, 4], pa.int32())),
        lambda t: t.slice(1),
        lambda t: t.select(["price", "id", "name", "ok", "note", "day"]),
        lambda t: t.set_column(1, "price", pa.array([1.5, 0.0, 3.25, -4.0])),
    ],
    ids=["value", "name", "type", "rows", "order", "null"],
)
def test_a_change_in_content_changes_the_key(change):
    table = sample("pyarrow")
    assert cache_key(measure, change(table)) != cache_key(measure, table)


def test_the_same_data_as_another_kind_has_another_key():
    keys = {cache_key(measure, sample(kind)) for kind in KINDS}
    assert len(keys) == 3


def test_a_pandas_index_and_dtypes_are_part_of_the_key():
    frame = sample("pandas")
    base = cache_key(measure, frame)
    assert cache_key(measure, frame.set_index("name")) != base
    assert cache_key(measure, frame.set_axis([10, 11, 12, 13])) != base
    assert cache_key(measure, frame.astype({"id": "int32"})) != base


def test_slices_and_chunks_do_not_change_the_fingerprint():
    table = sample("pyarrow")
    chunked = pa.concat_tables([table.slice(0, 1), table.slice(1)])
    assert chunked.column(0).num_chunks == 2
    assert fingerprint(chunked) == fingerprint(table)
    rebuilt = sample("pyarrow").slice(1)
    assert fingerprint(table.slice(1)) == fingerprint(pa.table(rebuilt.to_pydict()))
    dictionary = pa.table({"d": pa.array(["a", "b", "a"]).dictionary_encode()})
    assert fingerprint(dictionary) == fingerprint(dictionary.slice(0))
    other = pa.table({"d": pa.array(["a", "b", "b"]).dictionary_encode()})
    assert fingerprint(dictionary) != fingerprint(other)


def test_keys_of_tables_do_not_pickle_them(monkeypatch):
    def refuse(*args):
        raise AssertionError("the table was pickled")

    frame, frame_pl = sample("pandas"), sample("polars")
    expected = cache_key(measure, frame), cache_key(measure, frame_pl)
    monkeypatch.setattr(pd.DataFrame, "__reduce_ex__", refuse)
    monkeypatch.setattr(pl.DataFrame, "__reduce_ex__", refuse, raising=False)
    monkeypatch.setattr(pickle, "dumps", refuse)
    import cloudpickle

    monkeypatch.setattr(cloudpickle, "dumps", refuse)
    assert (cache_key(measure, frame), cache_key(measure, frame_pl)) == expected


SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, pandas as pd, polars as pl, pyarrow as pa
    from daglite import task, session
    from daglite.caching import cache_key
    from daglite.testing import CallLog

    calls = CallLog()

    @task(cache=sys.argv[1])
    def summarize(frame, table, lazy):
        calls.append(1)
        return frame.describe()

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(5000, 4)), columns=list("abcd"))
    frame["label"] = [f"row-{i % 97}" for i in range(5000)]
    table = pa.table({"x": pa.array(range(1000)), "s": [str(i) for i in range(1000)]})
    lazy = pl.DataFrame({"k": [1, None, 3], "v": ["a", "b", None]})
    keys = [cache_key(summarize, frame, table, lazy)]
    with session():
        summarize(frame, table, lazy)
    print(json.dumps({"keys": keys, "calls": len(calls)}))
    """
)


def test_keys_are_stable_across_processes_and_the_second_run_hits(tmp_path, monkeypatch, capsys):
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT)
    cache = str(tmp_path / "cache")
    env = {**os.environ, "PYTHONHASHSEED": "1"}  # this process has a random hash seed
    done = subprocess.run(
        [sys.executable, str(script), cache],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    first = json.loads(done.stdout.strip().splitlines()[-1])
    # The same pipeline again, in this process (another run, another hash seed).
    monkeypatch.setattr(sys, "argv", [str(script), cache])
    runpy.run_path(str(script), run_name="__main__")
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["keys"] == second["keys"]
    assert [first["calls"], second["calls"]] == [1, 0]  # the second run hit the cache
    entries = open_cache_store(cache).keys()
    assert entries == first["keys"]
    assert _entry_format(open_cache_store(cache), entries[0]) == b"feather"


def test_a_fingerprint_of_a_large_frame_covers_every_row():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200_000, 3)), columns=list("abc"))
    base = fingerprint(frame)
    changed = frame.copy()
    changed.iloc[199_999, 2] += 1e-9
    assert fingerprint(changed) != base


def test_nested_and_sliced_nested_columns_have_stable_fingerprints():
    table = pa.table(
        {
            "tags": pa.array([["x"], [], None, ["y", "z"]]),
            "point": pa.array([{"x": 1}, {"x": 2}, None, {"x": 4}]),
        }
    )
    rebuilt = pa.table(table.slice(1).to_pydict(), schema=table.schema)
    assert fingerprint(table.slice(1)) == fingerprint(rebuilt)
    changed = pa.table(
        {
            "tags": pa.array([["x"], [], None, ["y", "q"]]),
            "point": pa.array([{"x": 1}, {"x": 2}, None, {"x": 4}]),
        }
    )
    assert fingerprint(changed) != fingerprint(table)


def test_unused_pandas_categories_are_part_of_the_key():
    one = pd.DataFrame({"c": pd.Categorical(["a", "b"], categories=["a", "b"])})
    two = pd.DataFrame({"c": pd.Categorical(["a", "b"], categories=["a", "b", "c"])})
    assert cache_key(measure, one) != cache_key(measure, two)


def test_columns_read_from_a_cache_entry_are_8_byte_aligned():
    cache = memory_cache_store()
    table = pa.table({"x": pa.array(range(100), pa.int64()), "y": pa.array([0.5] * 100)})
    cache.put("a" * 40, table)
    found, loaded, _ = cache.get("a" * 40)
    assert found and loaded.equals(table)
    addresses = [c.chunks[0].buffers()[1].address for c in loaded.columns]
    assert all(address % 8 == 0 for address in addresses), addresses


def test_feather_realigns_a_payload_read_at_an_odd_offset():
    from daglite_arrow import FeatherFormat

    table = pa.table({"x": pa.array(range(100), pa.int64())})
    fmt = FeatherFormat()
    data = b"?" + bytes(fmt.dumps(table, {"compression": "uncompressed"}))
    loaded = fmt.loads(memoryview(data)[1:], None, {})
    assert loaded.equals(table)
    assert loaded.column(0).chunks[0].buffers()[1].address % 8 == 0


class Tagged(pd.DataFrame):
    """A pandas subclass with state of its own: the cache must give it back as it was."""

    _metadata = ["tag"]

    @property
    def _constructor(self):
        return Tagged


def test_a_subclass_of_a_frame_is_cached_as_a_pickle_and_comes_back_as_itself(tmp_path):
    frame = Tagged({"x": [1, 2]})
    frame.tag = "raw"
    cache = CacheStore(str(tmp_path / "c"))
    cache.put("a" * 40, frame)
    assert _entry_format(cache, "a" * 40) == b"pickle"
    found, loaded, _ = cache.get("a" * 40)
    assert found and type(loaded) is Tagged and loaded.tag == "raw"
