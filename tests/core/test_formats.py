"""Formats: built-ins, resolution order, plugin lookup, error messages, and cache formats."""

from __future__ import annotations

import json
import logging

import pytest

from daglite import DatasetError
from daglite import formats
from daglite import registry
from daglite import session
from daglite import task
from daglite.caching import CacheStore
from daglite.caching import cache_key
from daglite.formats import BytesFormat
from daglite.formats import Format
from daglite.formats import JsonFormat
from daglite.formats import PickleFormat
from daglite.formats import TextFormat
from daglite.formats import cache_format
from daglite.formats import get_format
from daglite.formats import resolve_format
from daglite.testing import CallLog
from daglite.testing import memory_cache_store


def test_core_formats_are_registered_by_entry_point():
    assert {"bytes", "json", "pickle", "text"} <= set(registry.names("format"))
    for name, cls in [
        ("pickle", PickleFormat),
        ("json", JsonFormat),
        ("text", TextFormat),
        ("bytes", BytesFormat),
    ]:
        fmt = get_format(name)
        assert isinstance(fmt, cls) and isinstance(fmt, Format) and fmt.name == name
        assert get_format(name) is fmt


@pytest.mark.parametrize(
    ("fmt", "value", "options"),
    [
        ("pickle", {"a": (1, 2), "b": {3}}, {}),
        ("pickle", lambda: 1, {}),  # cloudpickle fallback
        ("json", {"a": [1, 2.5, None, True]}, {"indent": 2}),
        ("text", "héllo\nworld", {}),
        ("text", "latin", {"encoding": "latin-1"}),
        ("bytes", b"\x00\x01", {}),
    ],
)
def test_round_trips(fmt, value, options):
    format_ = get_format(fmt)
    data = format_.dumps(value, options)
    assert isinstance(data, bytes)
    back = format_.loads(data, None, {k: v for k, v in options.items() if k != "indent"})
    if callable(value):
        assert back() == 1
    else:
        assert back == value


def test_bytes_format_honours_bytearray_return_type():
    assert get_format("bytes").loads(b"ab", bytearray, {}) == bytearray(b"ab")
    assert type(get_format("bytes").loads(b"ab", bytearray, {})) is bytearray


def test_type_errors_of_text_and_bytes():
    with pytest.raises(TypeError, match="the text format saves str values, not int"):
        get_format("text").dumps(3, {})
    with pytest.raises(TypeError, match="the bytes format saves bytes-like values, not str"):
        get_format("bytes").dumps("x", {})


def test_resolution_order_explicit_then_extension_then_type():
    assert resolve_format("a.json", format="pickle", value_type=str).name == "pickle"
    assert resolve_format("a.json", value_type=str).name == "json"
    assert resolve_format("dir.d/a.txt").name == "text"
    assert resolve_format("a.PKL").name == "pickle"
    assert resolve_format("a.bin").name == "bytes"
    assert resolve_format("noext", value_type=str).name == "text"
    assert resolve_format("noext", value_type=bytes).name == "bytes"
    assert resolve_format("noext", value_type=dict).name == "pickle"
    assert resolve_format("unknown.zzz", value_type=list).name == "pickle"
    assert resolve_format(".hidden", value_type=str).name == "text"


def test_subclasses_resolve_to_the_nearest_claim():
    class MyStr(str):
        pass

    assert resolve_format("k", value_type=MyStr).name == "text"


def test_nothing_decides_the_format():
    with pytest.raises(DatasetError) as info:
        resolve_format("noext")
    message = str(info.value)
    assert "cannot tell the format of dataset 'noext'" in message
    assert "json" in message and "pickle" in message


@pytest.mark.parametrize("name", ["parquet", "csv", "feather", "arrow"])
def test_well_known_plugin_formats_say_what_to_install(name):
    with pytest.raises(DatasetError) as info:
        get_format(name)
    message = str(info.value)
    assert f"format '{name}' is not installed: install daglite-arrow from a clone" in message
    assert "bytes, json, pickle, text" in message


def test_unknown_format_lists_installed():
    with pytest.raises(DatasetError, match=r"unknown format 'yaml'; installed formats: bytes"):
        resolve_format("x.json", format="yaml")


class Upper:
    """A plugin format claiming a type by qualified name string and an extension."""

    name = "upper"
    extensions = ("up",)
    types = ("collections.OrderedDict",)

    def dumps(self, value, options):
        return str(value).upper().encode()

    def loads(self, data, return_type, options):
        return data.decode().lower()


def test_plugin_formats_by_extension_and_type_name():
    from collections import OrderedDict

    with registry.override("format", "upper", Upper):
        assert resolve_format("a.up").name == "upper"
        assert resolve_format("k", value_type=OrderedDict).name == "upper"
        assert resolve_format("k", value_type=dict).name == "pickle"
    assert resolve_format("k", value_type=OrderedDict).name == "pickle"


# -- the cache's format extension point: `cache_types` and `fingerprint()` --------------------
#
# The cache's format extension point: `cache_types` and `fingerprint()` of installed formats.
#
# A format claiming a type in `cache_types` stores cached values of that type instead of
# pickle, and its `fingerprint()` keys arguments of that type. These tests register a small
# format with `registry.override` (no plugin installed).


class Point:
    """A value type nobody else claims, compared by content."""

    def __init__(self, x: int, y: int, label: str = "") -> None:
        self.x, self.y, self.label = x, y, label

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


class PointFormat:
    """Points as JSON; fingerprints ignore the label (to prove which encoding keys use)."""

    name = "pointjson"
    extensions = ()
    types = ()
    cache_types = (f"{__name__}.Point",)
    cache_options = {"separators": (",", ":")}
    fingerprinted: list[Point] = []

    def dumps(self, value, options):
        if options != {"separators": (",", ":")}:
            raise AssertionError(f"dumps got options {options}")
        if value.x < 0:
            raise ValueError("negative points are not supported")
        return json.dumps([value.x, value.y, value.label], **options).encode()

    def loads(self, data, return_type, options):
        x, y, label = json.loads(bytes(data))
        return Point(x, y, label)

    def fingerprint(self, value):
        if value.y < 0:
            raise ValueError("no fingerprint below zero")
        self.fingerprinted.append(value)
        return f"{value.x},{value.y}".encode()


@pytest.fixture
def point_format():
    """`PointFormat` registered as `pointjson` for one test; the lookups forget it after."""
    PointFormat.fingerprinted = []
    with registry.override("format", "pointjson", PointFormat):
        yield
    formats._instances.pop("pointjson", None)
    formats._cache_formats.clear()
    from daglite import cachekeys

    cachekeys._fingerprints.clear()


def _entry_format(cache: CacheStore, key: str) -> bytes:
    data = cache.bytes.read(cache.entry_key(key))
    return data[26 : 26 + data[25]].rstrip(b"\0")


def test_a_type_claimed_by_a_format_is_cached_in_it(point_format):
    assert cache_format(Point).name == "pointjson"
    assert cache_format(dict) is None
    cache = memory_cache_store()
    cache.put("a" * 40, Point(1, 2, "home"))
    assert _entry_format(cache, "a" * 40) == b"pointjson"
    assert cache.bytes.read(cache.entry_key("a" * 40)).endswith(b'[1,2,"home"]')  # its options
    found, value, _ = cache.get("a" * 40)
    assert found and value == Point(1, 2) and value.label == "home"
    cache.put("b" * 40, {"not": "a point"})
    assert _entry_format(cache, "b" * 40) == b"pickle"


def test_the_payload_of_an_entry_starts_8_byte_aligned(point_format):
    cache = memory_cache_store()
    cache.put("a" * 40, Point(1, 2))  # "pointjson": 26 + 9 header bytes, padded to 40
    data = cache.bytes.read(cache.entry_key("a" * 40))
    assert data[25] == 14 and data[26:40] == b"pointjson\0\0\0\0\0"
    assert data[40:] == b'[1,2,""]'
    cache.put("b" * 40, {"x": 1})  # "pickle": 26 + 6 bytes, aligned as it is
    assert cache.bytes.read(cache.entry_key("b" * 40))[25] == 6


def test_a_value_the_format_cannot_save_is_pickled_instead(point_format):
    cache = memory_cache_store()
    cache.put("a" * 40, Point(-1, 2))
    assert _entry_format(cache, "a" * 40) == b"pickle"
    assert cache.get("a" * 40)[1] == Point(-1, 2)


def test_arguments_of_a_claimed_type_are_keyed_by_the_fingerprint(point_format):
    @task(cache=True)
    def area(p: Point) -> int:
        return p.x * p.y

    # The label is left out by the fingerprint: the keys are equal.
    assert cache_key(area, Point(2, 3, "a")) == cache_key(area, Point(2, 3, "b"))
    assert cache_key(area, Point(2, 3)) != cache_key(area, Point(3, 2))
    assert PointFormat.fingerprinted
    # A fingerprint that fails: the value is encoded like any other object (its state).
    assert cache_key(area, Point(2, -3, "a")) != cache_key(area, Point(2, -3, "b"))


def test_a_cached_task_round_trips_through_the_format(point_format, tmp_path):
    calls = CallLog()

    @task(cache=str(tmp_path / "c"))
    def moved(p: Point) -> Point:
        calls.append(p)
        return Point(p.x + 1, p.y, "moved")

    with session():
        assert moved(Point(1, 1)) == Point(2, 1)
        again = moved(Point(1, 1, "other label"))
    assert again.label == "moved" and len(calls) == 1


def test_an_entry_whose_format_is_not_installed_is_a_miss_naming_it(tmp_path, caplog):
    cache = CacheStore(str(tmp_path / "c"))
    with registry.override("format", "pointjson", PointFormat):
        formats._cache_formats.pop(Point, None)
        cache.put("a" * 40, Point(1, 2))
    formats._instances.pop("pointjson", None)
    formats._cache_formats.pop(Point, None)
    with caplog.at_level(logging.WARNING, logger="daglite"):
        found, value, reason = cache.get("a" * 40)
    assert not found and value is None
    assert reason.startswith("corrupt: bad header (unknown format 'pointjson'; installed formats:")
    assert "is a miss" in caplog.text


def test_an_entry_the_format_cannot_read_is_a_miss(point_format):
    cache = memory_cache_store()
    cache.put("a" * 40, Point(1, 2))
    PointFormat.loads = lambda self, data, rt, options: 1 / 0  # type: ignore[method-assign]
    try:
        found, _, reason = cache.get("a" * 40)
    finally:
        del PointFormat.loads
    assert not found
    assert reason == "corrupt: cannot load as pointjson (ZeroDivisionError: division by zero)"


def test_a_format_that_fails_to_load_is_left_out_of_the_cache_with_a_warning(caplog):
    class Broken:
        def __init__(self):
            raise RuntimeError("broken plugin")

    class Lonely:
        pass

    try:
        with (
            registry.override("format", "brokenfmt", Broken),
            caplog.at_level(logging.WARNING, logger="daglite"),
        ):
            assert cache_format(Lonely) is None
    finally:
        formats._cache_formats.pop(Lonely, None)
    assert (
        "format 'brokenfmt' (registered with daglite.testing.override_plugin) cannot be used: "
    ) in caplog.text
    assert "Broken() cannot be built: RuntimeError: broken plugin (left out until it is fixed)" in (
        caplog.text
    )


def test_a_subclass_of_a_claimed_type_is_pickled_and_keyed_by_its_state(point_format):
    class LabelledPoint(Point):
        pass

    assert cache_format(LabelledPoint) is None
    cache = memory_cache_store()
    cache.put("a" * 40, LabelledPoint(1, 2, "x"))
    assert _entry_format(cache, "a" * 40) == b"pickle"
    found, value, _ = cache.get("a" * 40)
    assert found and type(value) is LabelledPoint and value.label == "x"
