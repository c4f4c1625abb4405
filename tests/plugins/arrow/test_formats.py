"""The parquet, feather/arrow and csv formats: round trips, conversions, options, errors."""

from __future__ import annotations

import io
import subprocess
import sys

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from daglite import DatasetError
from daglite import load_dataset
from daglite import registry
from daglite import save_dataset
from daglite import session
from daglite import task
from daglite.formats import get_format
from daglite.formats import resolve_format
from daglite_arrow import CsvFormat
from daglite_arrow import FeatherFormat
from daglite_arrow import ParquetFormat

from .conftest import FORMATS
from .conftest import KINDS
from .conftest import TYPES
from .conftest import assert_same
from .conftest import rows
from .conftest import sample

# -- registration ---------------------------------------------------------------------------


def test_entry_points_register_the_formats_and_the_arrow_alias():
    assert {"parquet", "feather", "arrow", "csv"} <= set(registry.names("format"))
    assert isinstance(get_format("parquet"), ParquetFormat)
    assert isinstance(get_format("feather"), FeatherFormat)
    assert isinstance(get_format("arrow"), FeatherFormat)
    assert get_format("arrow").name == "feather"
    assert isinstance(get_format("csv"), CsvFormat)
    dists = {info.name: info.distribution for info in registry.entries("format")}
    assert dists["parquet"] == dists["arrow"] == "daglite-arrow"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("t.parquet", "parquet"),
        ("a/b/t.pq", "parquet"),
        ("t.feather", "feather"),
        ("t.arrow", "feather"),
        ("t.csv", "csv"),
        ("T.CSV", "csv"),
    ],
)
def test_the_key_extension_chooses_the_format(key, expected):
    assert resolve_format(key).name == expected


@pytest.mark.parametrize("kind", KINDS)
def test_a_table_under_a_key_without_extension_is_parquet(kind, store):
    value = sample(kind)
    store.save("table", value)
    assert store.bytes.read("table")[:4] == b"PAR1"
    assert_same(store.load("table", TYPES[kind]), value)
    assert_same(store.load("table", format="parquet"), value)


def test_format_argument_wins_over_the_extension(store):
    value = sample("pandas")
    store.save("odd.csv", value, format="feather")
    assert store.bytes.read("odd.csv")[:6] == b"ARROW1"
    assert_same(store.load("odd.csv", format="arrow"), value)


def test_importing_the_plugin_or_choosing_by_type_imports_no_table_library():
    code = (
        "import sys\n"
        "import daglite_arrow\n"
        "from daglite.formats import resolve_format\n"
        "class Thing: pass\n"
        "assert resolve_format('x', value_type=Thing).name == 'pickle'\n"
        "assert resolve_format('x.parquet').name == 'parquet'\n"
        "from daglite.formats import cache_format\n"
        "assert cache_format(Thing) is None and cache_format(dict) is None\n"
        "from daglite import task\n"
        "from daglite.caching import cache_key\n"
        "f = task(cache=True)(lambda thing: 1)\n"
        "cache_key(f, Thing())\n"
        "heavy = [m for m in ('pyarrow', 'pandas', 'polars') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["parquet", "feather", "arrow"])
@pytest.mark.parametrize("kind", KINDS)
def test_binary_formats_round_trip_every_kind_without_a_return_type(kind, ext, store):
    value = sample(kind)
    where = store.save(f"data/t.{ext}", value)
    assert where.endswith(f"data/t.{ext}")
    assert_same(store.load(f"data/t.{ext}"), value)
    assert_same(store.load(f"data/t.{ext}", TYPES[kind]), value)


@pytest.mark.parametrize("kind", KINDS)
def test_csv_round_trips_every_kind_with_a_return_type(kind, store):
    value = sample(kind, rich=False)
    store.save("t.csv", value)
    text = store.bytes.read("t.csv").decode()
    assert text.splitlines()[0] == '"id","price","name","ok"'
    assert_same(store.load("t.csv", TYPES[kind]), value)


@pytest.mark.parametrize("kind", KINDS)
def test_csv_without_a_return_type_loads_a_pyarrow_table(kind, store):
    store.save("t.csv", sample(kind, rich=False))
    assert_same(store.load("t.csv"), sample("pyarrow", rich=False))


@pytest.mark.parametrize("ext", sorted(FORMATS))
@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_dataset_in_a_session_store(kind, ext, tmp_path):
    value = sample(kind, rich=False)
    with session(dataset_store=str(tmp_path / "ds")):
        save_dataset(f"t.{ext}", value)
        assert_same(load_dataset(f"t.{ext}", TYPES[kind]), value)
    assert (tmp_path / "ds" / f"t.{ext}").is_file()


def test_a_task_result_is_saved_as_parquet_by_its_dataset_key(tmp_path):
    @task(dataset="prices/{region}.parquet")
    def prices(region: str) -> pd.DataFrame:
        return pd.DataFrame({"region": [region] * 2, "price": [1.0, 2.0]})

    with session(dataset_store=str(tmp_path)):
        frame = prices("north")
    assert pq.read_table(tmp_path / "prices" / "north.parquet").num_rows == 2
    assert_same(load_dataset("prices/north.parquet", store=str(tmp_path)), frame)


# -- conversions ----------------------------------------------------------------------------


@pytest.mark.parametrize("ext", sorted(FORMATS))
@pytest.mark.parametrize("saved", KINDS)
@pytest.mark.parametrize("loaded", KINDS)
def test_a_table_saved_as_one_kind_loads_as_another(saved, loaded, ext, store):
    store.save(f"t.{ext}", sample(saved, rich=False))
    value = store.load(f"t.{ext}", TYPES[loaded])
    assert type(value) is TYPES[loaded]
    assert rows(value) == rows(sample("pyarrow", rich=False))
    assert list(value.columns if loaded != "pyarrow" else value.column_names) == [
        "id",
        "price",
        "name",
        "ok",
    ]


def test_a_pandas_index_is_kept_for_pandas_and_left_out_for_polars(store):
    frame = pd.DataFrame({"v": [1, 2, 3]}, index=pd.Index(["a", "b", "c"], name="key"))
    store.save("t.parquet", frame)
    assert_same(store.load("t.parquet"), frame)
    as_polars = store.load("t.parquet", pl.DataFrame)
    assert as_polars.columns == ["v"]
    assert as_polars["v"].to_list() == [1, 2, 3]
    assert store.load("t.parquet", pa.Table).column_names == ["v", "key"]


def test_preserve_index_option_saves_a_default_index_too(store):
    frame = pd.DataFrame({"v": [1, 2]})
    store.save("t.parquet", frame, options={"preserve_index": True})
    assert store.load("t.parquet", pa.Table).column_names == ["v", "__index_level_0__"]
    store.save("u.parquet", frame, options={"preserve_index": False})
    assert store.load("u.parquet", pa.Table).column_names == ["v"]


def test_a_loaded_pyarrow_table_keeps_its_own_metadata_without_daglites(store):
    table = sample("pyarrow").replace_schema_metadata({"owner": "sales"})
    store.save("t.feather", table)
    assert store.load("t.feather").schema.metadata == {b"owner": b"sales"}
    raw = pa.ipc.open_file(pa.BufferReader(store.bytes.read("t.feather"))).schema.metadata
    assert raw[b"daglite.type"] == b"pyarrow.Table"


def test_a_parquet_file_written_by_another_tool_loads_as_a_pyarrow_table(tmp_path):
    pq.write_table(sample("pyarrow"), tmp_path / "other.parquet")
    loaded = load_dataset("other.parquet", store=str(tmp_path))
    assert_same(loaded, sample("pyarrow"))


# -- options --------------------------------------------------------------------------------


def test_parquet_options_reach_the_writer_and_the_reader(store):
    value = sample("pandas")
    store.save("z.parquet", value, options={"compression": "zstd", "row_group_size": 2})
    meta = pq.ParquetFile(io.BytesIO(store.bytes.read("z.parquet"))).metadata
    assert meta.num_row_groups == 2
    assert meta.row_group(0).column(0).compression == "ZSTD"
    store.save("s.parquet", value)
    meta = pq.ParquetFile(io.BytesIO(store.bytes.read("s.parquet"))).metadata
    assert meta.row_group(0).column(0).compression == "SNAPPY"
    loaded = store.load("z.parquet", options={"columns": ["id", "name"]})
    assert list(loaded.columns) == ["id", "name"]
    assert loaded["name"].tolist() == ["apple", "pear", "fig", "kiwi"]


def test_feather_options_reach_the_writer_and_the_reader(store):
    value = pl.DataFrame({"text": ["same words again"] * 5000, "n": list(range(5000))})
    store.save("plain.feather", value, options={"compression": "uncompressed"})
    store.save("zstd.feather", value, options={"compression": "zstd"})
    plain, packed = store.bytes.read("plain.feather"), store.bytes.read("zstd.feather")
    assert len(packed) * 10 < len(plain)
    assert_same(store.load("zstd.feather"), value)
    assert store.load("plain.feather", options={"columns": ["n"]}).columns == ["n"]


def test_csv_options_reach_the_writer_and_the_reader(store):
    value = sample("pyarrow", rich=False)
    store.save("t.csv", value, options={"delimiter": ";", "include_header": False})
    text = store.bytes.read("t.csv").decode()
    assert text.splitlines()[0] == '1;1.5;"apple";true'
    loaded = store.load(
        "t.csv",
        options={
            "delimiter": ";",
            "column_names": ["id", "price", "name", "ok"],
            "columns": ["name", "id"],
        },
    )
    assert loaded.column_names == ["name", "id"]
    assert loaded.column("id").to_pylist() == [1, 2, 3, 4]


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "feather", "csv"])
def test_saving_a_value_that_is_not_a_table_names_the_supported_types(fmt, store):
    with pytest.raises(DatasetError) as info:
        store.save("t.bin", {"a": [1]}, format=fmt)
    assert str(info.value) == (
        f"cannot save dataset 't.bin' to store '{store.url}' as {fmt}: TypeError: the {fmt} "
        "format saves pyarrow.Table, pandas.DataFrame or polars.DataFrame values, not "
        "builtins.dict"
    )
    assert not store.exists("t.bin")


def test_loading_as_a_type_that_is_not_a_table_names_the_supported_types(store):
    store.save("t.parquet", sample("pandas"))
    with pytest.raises(DatasetError) as info:
        store.load("t.parquet", dict)
    assert str(info.value) == (
        f"cannot load dataset 't.parquet' from store '{store.url}' as parquet: TypeError: the "
        "parquet format loads pyarrow.Table, pandas.DataFrame or polars.DataFrame, not dict"
    )


def test_a_table_saved_from_a_library_that_is_missing_says_what_to_install(store, monkeypatch):
    store.save("t.feather", sample("polars"))
    store.save("t.parquet", sample("pyarrow"))
    monkeypatch.setitem(sys.modules, "polars", None)  # `import polars` now fails
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(DatasetError) as info:
        store.load("t.feather")
    assert str(info.value) == (
        f"cannot load dataset 't.feather' from store '{store.url}' as feather: ImportError: "
        "the table was saved from a polars.DataFrame, but polars is not installed: "
        "pip install polars (or load it with return_type=pyarrow.Table)"
    )
    assert isinstance(info.value.__cause__, ImportError)
    assert rows(store.load("t.feather", pa.Table)) == rows(sample("pyarrow"))
    assert_same(store.load("t.parquet"), sample("pyarrow"))  # no library needed


def test_asking_for_a_kind_whose_library_is_missing_says_what_to_install(store, monkeypatch):
    store.save("t.parquet", sample("pyarrow"))
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(DatasetError) as info:
        store.load("t.parquet", pd.DataFrame)
    assert str(info.value).endswith(
        "as parquet: ImportError: the table is asked for as a pandas.DataFrame, but pandas is "
        "not installed: pip install pandas (or load it with return_type=pyarrow.Table)"
    )


def test_an_unknown_csv_load_option_lists_the_known_ones(store):
    store.save("t.csv", sample("pyarrow", rich=False))
    with pytest.raises(DatasetError) as info:
        store.load("t.csv", options={"delimeter": ";"})
    message = str(info.value)
    assert "as csv: TypeError: unknown csv load option 'delimeter'; known: " in message
    assert "delimiter" in message and "columns" in message and "skip_rows" in message


def test_an_unknown_writer_option_is_an_error_naming_it(store):
    with pytest.raises(DatasetError) as info:
        store.save("t.parquet", sample("pyarrow"), options={"compresion": "zstd"})
    assert "as parquet: TypeError:" in str(info.value)
    assert "compresion" in str(info.value)
    assert not store.exists("t.parquet")


@pytest.mark.parametrize("ext", ["parquet", "feather"])
def test_bytes_that_are_not_the_format_are_a_clear_load_error(ext, store):
    store.bytes.write(f"t.{ext}", b"not a table at all")
    with pytest.raises(DatasetError) as info:
        store.load(f"t.{ext}")
    assert str(info.value).startswith(
        f"cannot load dataset 't.{ext}' from store '{store.url}' as {FORMATS[ext]}: ArrowInvalid"
    )


# -- richer types ---------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["parquet", "feather"])
def test_pandas_categoricals_and_time_zones_round_trip(ext, store):
    frame = pd.DataFrame(
        {
            "grade": pd.Categorical(["b", "a", "b"], categories=["a", "b", "c"], ordered=True),
            "at": pd.date_range("2024-03-01", periods=3, freq="h", tz="Europe/Oslo"),
            "n": pd.array([1, None, 3], dtype="Int64"),
        }
    )
    store.save(f"t.{ext}", frame)
    assert_same(store.load(f"t.{ext}"), frame)


@pytest.mark.parametrize("ext", ["parquet", "feather"])
def test_polars_nested_and_enum_columns_round_trip(ext, store):
    frame = pl.DataFrame(
        {
            "tags": [["x", "y"], [], None],
            "point": [{"x": 1, "y": 2}, {"x": 3, "y": None}, None],
            "size": pl.Series(["s", "l", "s"], dtype=pl.Enum(["s", "m", "l"])),
        }
    )
    store.save(f"t.{ext}", frame)
    assert_same(store.load(f"t.{ext}"), frame)
