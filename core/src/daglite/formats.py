"""Serialization formats for datasets, found by name in the `daglite.formats` entry-point group.

A format turns a value into bytes and back. The core ships `pickle`, `json`, `text` and
`bytes`; plugins add more (`daglite-arrow`: `parquet`, `csv`, `feather`). Which format a
dataset uses is decided, in this order, by the explicit `format=` argument, the key's
extension (`results.json` -> `json`), then the type of the value being saved (or the
`return_type` asked for when loading).

Security: unpickling runs code chosen by whoever wrote the bytes. daglite only ever
unpickles bytes read from a store the user configured (an explicit `store=`, a task's
`dataset_store`, the session's or the settings' store); bytes relayed from worker
processes are written as they are, never unpickled on the way.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from typing import Any
from typing import Protocol
from typing import runtime_checkable

from daglite import registry
from daglite.errors import DatasetError
from daglite.errors import PluginError


@runtime_checkable
class Format(Protocol):
    """What a serialization format provides (satisfied by shape; no base class needed).

    Attributes:
        name: The format's canonical name (its entry-point name).
        extensions: Key extensions that select it, without the dot (`("json",)`).
        types: Value types it claims when no format or extension says otherwise: classes,
            or `"module.QualName"` strings so that the format need not import a heavy
            library to claim its types. The most specific claim wins.

    Optional, for formats that also serve the result cache (see `cache_format`):

    - `cache_types`: types whose cached values this format stores instead of pickle
      (classes or `"module.QualName"` strings; exact types, not their subclasses).
      `loads(data, None, {})` must give back an equal value of the same type; `data` may
      then be a `memoryview`.
    - `cache_options`: the options the cache passes to `dumps` (default `{}`), e.g. a
      faster compression than the format's default for files.
    - `fingerprint(value) -> bytes`: a digest of the content of a value of one of its
      `cache_types`, used in cache keys instead of encoding the value's pickle state. It
      must be equal for equal values in every process and run.
    """

    name: str
    extensions: Sequence[str]
    types: Sequence[type | str]

    def dumps(self, value: Any, options: dict[str, Any]) -> bytes:
        """The bytes of `value` (or another bytes-like object, to spare copying a buffer)."""
        ...

    def loads(self, data: bytes, return_type: Any, options: dict[str, Any]) -> Any:
        """The value of `data` (`return_type` is the type asked for, or `None`)."""
        ...


class PickleFormat:
    """Any picklable Python object (the fallback for types no other format claims).

    Options: `protocol` (dumps; default 5). Only load pickles from stores you trust.
    """

    name = "pickle"
    extensions = ("pkl", "pickle")
    types = (object,)

    def dumps(self, value: Any, options: dict[str, Any]) -> bytes:
        """The bytes of `value`."""
        try:
            return pickle.dumps(value, protocol=options.get("protocol", 5))
        except (pickle.PicklingError, TypeError, AttributeError):
            import cloudpickle  # lambdas, local classes: pickled by value

            return cloudpickle.dumps(value, protocol=options.get("protocol", 5))

    def loads(self, data: bytes, return_type: Any, options: dict[str, Any]) -> Any:
        """The value stored in `data`."""
        return pickle.loads(data)


class JsonFormat:
    """JSON documents (dicts, lists, strings, numbers, booleans, `None`).

    Options are passed to `json.dumps` (`indent`, `sort_keys`, ...) when saving and to
    `json.loads` when loading. Selected by the `.json` extension or `format="json"`.
    """

    name = "json"
    extensions = ("json",)
    types = ()

    def dumps(self, value: Any, options: dict[str, Any]) -> bytes:
        """The bytes of `value`."""
        return json.dumps(value, **options).encode("utf-8")

    def loads(self, data: bytes, return_type: Any, options: dict[str, Any]) -> Any:
        """The value stored in `data`."""
        return json.loads(data, **options)


class TextFormat:
    """Strings, as text files (option `encoding`, default UTF-8)."""

    name = "text"
    extensions = ("txt", "text", "md", "log")
    types = (str,)

    def dumps(self, value: Any, options: dict[str, Any]) -> bytes:
        """The bytes of `value`."""
        if not isinstance(value, str):
            raise TypeError(f"the text format saves str values, not {type(value).__name__}")
        return value.encode(options.get("encoding", "utf-8"))

    def loads(self, data: bytes, return_type: Any, options: dict[str, Any]) -> Any:
        """The value stored in `data`."""
        return data.decode(options.get("encoding", "utf-8"))


class BytesFormat:
    """Raw bytes, stored as they are."""

    name = "bytes"
    extensions = ("bin", "bytes")
    types = (bytes, bytearray, memoryview)

    def dumps(self, value: Any, options: dict[str, Any]) -> bytes:
        """The bytes of `value`."""
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"the bytes format saves bytes-like values, not {type(value).__name__}")
        return bytes(value)

    def loads(self, data: bytes, return_type: Any, options: dict[str, Any]) -> Any:
        """The value stored in `data`."""
        return bytearray(data) if return_type is bytearray else bytes(data)


# -- lookup -------------------------------------------------------------------------------

_instances: dict[int, tuple[Any, Any]] = {}  # id(registered object) -> (it, its instance)


def get_format(name: str) -> Format:
    """The format registered under `name` (each class instantiated once).

    The registry is asked every time (it caches what it loaded), since which distribution
    provides a name can differ between sessions (the `providers` setting).

    Raises:
        DatasetError: No such format is installed (the message lists the installed formats
            and, for well-known ones, which plugin to install), or it cannot be used (the
            `PluginError` saying why is the `__cause__`).
    """
    try:
        obj = registry.load("format", name)
    except PluginError as exc:
        raise DatasetError(str(exc)) from exc
    found = _instances.get(id(obj))
    if found is None or found[0] is not obj:
        found = _instances[id(obj)] = (obj, obj() if isinstance(obj, type) else obj)
    return found[1]


_CORE = ("pickle", "json", "text", "bytes")


def _all_formats() -> list[Format]:
    # The core's formats first; a broken or conflicting plugin is left out.
    installed = registry.usable_names("format")
    ordered = [name for name in _CORE if name in installed]
    ordered += [name for name in installed if name not in _CORE]
    return [get_format(name) for name in ordered]


def _by_extension(key: str) -> Format | None:
    last = key.rsplit("/", 1)[-1]
    if "." not in last.lstrip("."):
        return None
    ext = last.rsplit(".", 1)[-1].lower()
    if ext in registry.names("format"):
        return get_format(ext)
    for fmt in _all_formats():
        if ext in fmt.extensions:
            return fmt
    return None


def _type_names(cls: type) -> list[tuple[type, str]]:
    return [(c, f"{c.__module__}.{c.__qualname__}") for c in cls.__mro__]


def _by_type(cls: type) -> Format | None:
    mro = _type_names(cls)
    best: tuple[int, Format] | None = None
    for fmt in _all_formats():
        for claim in fmt.types:
            for rank, (klass, qualname) in enumerate(mro):
                if claim is klass or claim == qualname:
                    if best is None or rank < best[0]:
                        best = (rank, fmt)
                    break
    return best[1] if best is not None else None


_cache_formats: dict[type, Format | None] = {}


def cache_format(cls: type) -> Format | None:
    """The format that stores cached values of type `cls`, or `None` (pickle them).

    It is the first installed format (by name) whose `cache_types` claims `cls` itself:
    a subclass is pickled, since it may carry state that the format does not know. The
    answer is remembered per type. A format plugin that fails to import is logged on the
    `daglite` logger and left out (the cache then falls back to pickle).
    """
    try:
        return _cache_formats[cls]
    except KeyError:
        pass
    qualname = f"{cls.__module__}.{cls.__qualname__}"
    found = None
    for fmt in _cache_candidates():
        if any(claim is cls or claim == qualname for claim in getattr(fmt, "cache_types", ())):
            found = fmt
            break
    _cache_formats[cls] = found
    return found


def _cache_candidates() -> list[Format]:
    return [get_format(name) for name in registry.usable_names("format")]


def resolve_format(
    key: str,
    *,
    format: str | None = None,
    value_type: type | None = None,
) -> Format:
    """The format for `key`: `format` if given, else the key's extension, else `value_type`.

    Raises:
        DatasetError: `format` is not installed, or nothing decides the format.
    """
    if format is not None:
        return get_format(format)
    fmt = _by_extension(key)
    if fmt is None and value_type is not None:
        fmt = _by_type(value_type)
    if fmt is None:
        raise DatasetError(
            f"cannot tell the format of dataset {key!r}: pass format= (installed formats: "
            f"{', '.join(registry.names('format'))}), give the key an extension, or a return_type"
        )
    return fmt
