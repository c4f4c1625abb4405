"""The cache's format extension point: `cache_types` and `fingerprint()` of installed formats.

A format claiming a type in `cache_types` stores cached values of that type instead of
pickle, and its `fingerprint()` keys arguments of that type. These tests register a small
format with `registry.override` (no plugin installed).
"""

from __future__ import annotations

import json
import logging

import pytest

from daglite import formats
from daglite import registry
from daglite import session
from daglite import task
from daglite.caching import CacheStore
from daglite.caching import cache_key
from daglite.formats import cache_format
from daglite.testing import CallLog
from daglite.testing import memory_cache_store


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
