"""The `parquet`, `feather` (alias `arrow`) and `csv` formats of `daglite.formats`.

Each saves a `pyarrow.Table`, `pandas.DataFrame` or `polars.DataFrame` and loads one of
them: the `return_type` asked for, else the kind it was saved from (csv files cannot
record it: they load as `pyarrow.Table` unless a return type is given). Options go to
pyarrow's own writer and reader; `preserve_index` (saving) is the pandas index policy of
`pyarrow.Table.from_pandas`.

`parquet` claims the table types for datasets whose key has no extension; `feather`
claims them for the result cache (`cache_types`: fast, no pickle) and keys table
arguments by their content (`fingerprint`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from daglite.plugin import BaseFormat
from daglite_arrow.tables import TABLE_TYPES
from daglite_arrow.tables import fingerprint
from daglite_arrow.tables import from_arrow
from daglite_arrow.tables import requested_kind
from daglite_arrow.tables import to_arrow

if TYPE_CHECKING:
    import pyarrow


class _TableFormat(BaseFormat):
    """What the three formats share: conversion on the way in and out."""

    def dumps(self, value: Any, options: dict[str, Any]) -> bytes:
        import pyarrow as pa

        options = dict(options)
        table = to_arrow(value, self.name, options.pop("preserve_index", None))
        sink = pa.BufferOutputStream()
        self._write(table, sink, options)
        return memoryview(sink.getvalue())  # type: ignore[return-value]  # no copy

    def loads(self, data: bytes, return_type: Any, options: dict[str, Any]) -> Any:
        import pyarrow as pa

        kind = requested_kind(return_type, self.name)  # a bad type fails before reading
        return from_arrow(self._read(pa.py_buffer(data), dict(options)), kind)

    def _write(self, table: pyarrow.Table, sink: Any, options: dict[str, Any]) -> None:
        raise NotImplementedError

    def _read(self, data: pyarrow.Buffer, options: dict[str, Any]) -> pyarrow.Table:
        raise NotImplementedError


class ParquetFormat(_TableFormat):
    """Apache Parquet files (`.parquet`, `.pq`): compressed, columnar, read everywhere.

    Options when saving go to `pyarrow.parquet.write_table` (`compression`: `"snappy"`
    by default, `"zstd"`, `"gzip"`, `"none"`, ...; `compression_level`, `row_group_size`,
    ...); when loading to `pyarrow.parquet.read_table` (`columns`, `filters`, ...).
    """

    name = "parquet"
    extensions = ("parquet", "pq")
    types = TABLE_TYPES

    def _write(self, table: pyarrow.Table, sink: Any, options: dict[str, Any]) -> None:
        import pyarrow.parquet as pq

        pq.write_table(table, sink, **options)

    def _read(self, data: pyarrow.Buffer, options: dict[str, Any]) -> pyarrow.Table:
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pq.read_table(pa.BufferReader(data), **options)


class FeatherFormat(_TableFormat):
    """Feather V2 files, i.e. the Arrow IPC file format (`.feather`, `.arrow`).

    The fastest to save and load (the columns are Arrow's own buffers). Options when saving
    go to `pyarrow.feather.write_feather` (`compression`: `"lz4"` by default, `"zstd"`,
    `"uncompressed"`; `compression_level`, `chunksize`); when loading to
    `pyarrow.feather.read_table` (`columns`, `use_threads`).

    It is also the result cache's format for tables (uncompressed there: written at memory
    speed, read without a copy), and fingerprints table arguments.
    """

    name = "feather"
    extensions = ("feather", "arrow")
    cache_types = TABLE_TYPES
    cache_options = {"compression": "uncompressed"}  # the cache: speed over size

    def fingerprint(self, value: Any) -> bytes:
        """A digest of a table's content (see `daglite_arrow.tables.fingerprint`)."""
        return fingerprint(value)

    def _write(self, table: pyarrow.Table, sink: Any, options: dict[str, Any]) -> None:
        import pyarrow.feather as feather

        feather.write_feather(table, sink, **options)

    def _read(self, data: pyarrow.Buffer, options: dict[str, Any]) -> pyarrow.Table:
        import pyarrow as pa
        import pyarrow.feather as feather

        if data.address % 8:
            # Uncompressed columns are read in place, and Arrow wants them 8-byte aligned:
            # a cache entry's payload follows its header at any offset. Copy it once.
            data = pa.py_buffer(bytes(data))
        options.setdefault("memory_map", False)
        return feather.read_table(pa.BufferReader(data), **options)


class CsvFormat(_TableFormat):
    """Comma-separated text (`.csv`), with a header line.

    Options when saving are those of `pyarrow.csv.WriteOptions` (`delimiter`,
    `include_header`, `quoting_style`, ...). When loading, each option goes to whichever of
    `pyarrow.csv.ReadOptions`, `ParseOptions` or `ConvertOptions` has it (`delimiter`,
    `skip_rows`, `column_types`, `null_values`, ...); `columns` selects columns
    (`include_columns`). A csv file does not record the kind of table it was saved from:
    without a return type it loads as a `pyarrow.Table`.
    """

    name = "csv"
    extensions = ("csv",)

    def _write(self, table: pyarrow.Table, sink: Any, options: dict[str, Any]) -> None:
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, sink, write_options=pcsv.WriteOptions(**options))

    def _read(self, data: pyarrow.Buffer, options: dict[str, Any]) -> pyarrow.Table:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        groups: dict[Any, dict[str, Any]] = {
            pcsv.ReadOptions: {},
            pcsv.ParseOptions: {},
            pcsv.ConvertOptions: {},
        }
        if "columns" in options:
            options["include_columns"] = options.pop("columns")
        for key, value in options.items():
            for cls, chosen in groups.items():
                if _has_option(cls, key):
                    chosen[key] = value
                    break
            else:
                known = sorted({k for cls in groups for k in _option_names(cls)} | {"columns"})
                raise TypeError(f"unknown csv load option {key!r}; known: {', '.join(known)}")
        return pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(**groups[pcsv.ReadOptions]),
            parse_options=pcsv.ParseOptions(**groups[pcsv.ParseOptions]),
            convert_options=pcsv.ConvertOptions(**groups[pcsv.ConvertOptions]),
        )


def _option_names(cls: type) -> list[str]:
    return [name for name, attr in vars(cls).items() if type(attr).__name__ == "getset_descriptor"]


def _has_option(cls: type, key: str) -> bool:
    return type(vars(cls).get(key)).__name__ == "getset_descriptor"
