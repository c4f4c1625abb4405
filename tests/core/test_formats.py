"""Formats: built-ins, resolution order, plugin lookup and error messages."""

from __future__ import annotations

import pytest

from daglite import DatasetError
from daglite import registry
from daglite.formats import BytesFormat
from daglite.formats import Format
from daglite.formats import JsonFormat
from daglite.formats import PickleFormat
from daglite.formats import TextFormat
from daglite.formats import get_format
from daglite.formats import resolve_format


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
