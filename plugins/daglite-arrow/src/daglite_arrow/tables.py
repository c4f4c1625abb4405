"""Tables: which kind a value or a requested type is, conversion through Arrow, fingerprints.

Every format of this plugin works on a `pyarrow.Table`: a pandas or polars frame is
converted to one on save, and the table read back is converted to the kind asked for on
load. The kind a table was saved from is recorded in its schema metadata under
`daglite.type`, so that a load without a return type gives back the same kind.

Kinds are recognized by the qualified names of a class and its bases, so nothing imports
pandas or polars to find out that a value is not one of their frames.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:  # pyarrow is imported when a table is first handled
    import pyarrow

#: The schema metadata key recording which kind of table was saved.
TYPE_KEY = b"daglite.type"

PYARROW = "pyarrow.Table"
PANDAS = "pandas.DataFrame"
POLARS = "polars.DataFrame"

#: The kinds, by every qualified name their classes have had (pandas 3 moved DataFrame).
KIND_NAMES: dict[str, str] = {
    "pyarrow.lib.Table": PYARROW,
    "pyarrow.Table": PYARROW,
    "pandas.DataFrame": PANDAS,
    "pandas.core.frame.DataFrame": PANDAS,
    "polars.dataframe.frame.DataFrame": POLARS,
    "polars.DataFrame": POLARS,
}

#: What the formats claim (`types` / `cache_types`): the same names, imported by nobody.
TABLE_TYPES = tuple(KIND_NAMES)

_LIBRARY = {PYARROW: "pyarrow", PANDAS: "pandas", POLARS: "polars"}
_KINDS_TEXT = "pyarrow.Table, pandas.DataFrame or polars.DataFrame"


def kind_of(cls: Any) -> str | None:
    """The kind (`"pandas.DataFrame"`, ...) of class `cls` or its bases, or `None`."""
    for klass in getattr(cls, "__mro__", ()):
        kind = KIND_NAMES.get(f"{klass.__module__}.{klass.__qualname__}")
        if kind is not None:
            return kind
    return None


def to_arrow(value: Any, fmt: str, preserve_index: bool | None = None) -> pyarrow.Table:
    """`value` as a `pyarrow.Table`, its kind recorded in the schema metadata.

    Args:
        value: A pyarrow table, pandas or polars frame.
        fmt: The format's name (for the error message).
        preserve_index: For pandas frames: `None` keeps a non-default index as columns (a
            default range index as metadata only), `True` always, `False` never.

    Raises:
        TypeError: `value` is not a table of a supported kind.
    """
    import pyarrow as pa

    kind = kind_of(type(value))
    if kind == PYARROW:
        table = value
    elif kind == PANDAS:
        table = pa.Table.from_pandas(value, preserve_index=preserve_index)
    elif kind == POLARS:
        table = value.to_arrow()
    else:
        raise TypeError(
            f"the {fmt} format saves {_KINDS_TEXT} values, not "
            f"{type(value).__module__}.{type(value).__qualname__}"
        )
    metadata = dict(table.schema.metadata or {})
    metadata[TYPE_KEY] = kind.encode()
    return table.replace_schema_metadata(metadata)


def requested_kind(return_type: Any, fmt: str) -> str | None:
    """The kind asked for by `return_type` (`None` when no type is asked for).

    Raises:
        TypeError: `return_type` is not a supported table type.
    """
    if return_type is None:
        return None
    kind = kind_of(return_type)
    if kind is None:
        name = getattr(return_type, "__qualname__", None) or repr(return_type)
        module = getattr(return_type, "__module__", None)
        full = f"{module}.{name}" if module and module != "builtins" else name
        raise TypeError(f"the {fmt} format loads {_KINDS_TEXT}, not {full}")
    return kind


def from_arrow(table: pyarrow.Table, kind: str | None) -> Any:
    """`table` converted to `kind`; `None` means the kind it was saved from (else pyarrow).

    Raises:
        ImportError: The library of the kind is not installed (the message says which
            package to install and how to load the table without it).
    """
    metadata = dict(table.schema.metadata or {})
    saved = metadata.pop(TYPE_KEY, None)
    why = f"is asked for as a {kind}"
    if kind is None:
        kind = KIND_NAMES.get(saved.decode(), PYARROW) if saved else PYARROW
        why = f"was saved from a {kind}"
    if kind == PYARROW:
        return table.replace_schema_metadata(metadata or None) if saved else table
    library = _LIBRARY[kind]
    try:
        module = __import__(library)
    except ImportError as exc:
        raise ImportError(
            f"the table {why}, but {library} is not installed: pip install {library} "
            f"(or load it with return_type=pyarrow.Table)"
        ) from exc
    if kind == PANDAS:
        return table.to_pandas()
    return module.from_arrow(_without_pandas_index(table))


def _without_pandas_index(table: pyarrow.Table) -> pyarrow.Table:
    # A pandas index saved as columns: polars has no index, so it is left out (as
    # polars.from_pandas does).
    raw = (table.schema.metadata or {}).get(b"pandas")
    if not raw:
        return table
    index = [c for c in json.loads(raw).get("index_columns", []) if isinstance(c, str)]
    present = [name for name in index if name in table.column_names]
    return table.drop_columns(present) if present else table


def fingerprint(value: Any) -> bytes:
    """A digest of a table's content: equal for equal tables, in every process and run.

    It covers the kind, the schema (names, types, nullability; for pandas frames the index
    and dtypes) and the Arrow buffers of every column, hashed in place (a column is copied
    only when it is split into several chunks or is a slice). Two equal tables built in
    different ways may differ in their buffers (padding, values under nulls): that gives a
    different key (a cache miss), never a wrong hit.

    Raises:
        TypeError: `value` is not a table of a supported kind.
    """
    h = hashlib.sha256()
    kind = kind_of(type(value))
    table = to_arrow(value, "fingerprint")
    h.update(kind.encode() if kind else b"")
    raw = (table.schema.metadata or {}).get(b"pandas")
    if raw:  # index, column dtypes; without the versions of who wrote it
        meta = json.loads(raw)
        meta.pop("creator", None)
        meta.pop("pandas_version", None)
        h.update(json.dumps(meta, sort_keys=True).encode())
    for field, column in zip(table.schema, table.columns):
        h.update(f"\x00{field.name!r}:{field.type}:{field.nullable}:{len(column)};".encode())
        chunks = column.chunks
        if len(chunks) == 1:
            _hash_array(chunks[0], h)
        elif chunks:
            _hash_array(column.combine_chunks(), h)
    return h.digest()


def _hash_array(array: Any, h: Any) -> None:
    import pyarrow as pa

    if array.offset:
        array = pa.concat_arrays([array])  # rebased: its buffers start at the slice
    h.update(b"%d,%d;" % (len(array), array.null_count))
    if pa.types.is_dictionary(array.type):
        _hash_array(array.indices, h)
        _hash_array(array.dictionary, h)
        return
    for buf in array.buffers():
        if buf is None:
            h.update(b"-")
        else:
            h.update(b"%d:" % buf.size)
            h.update(buf)
