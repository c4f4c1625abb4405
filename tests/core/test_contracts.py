"""Plugin contracts in one process: the contract of each kind, and the plugin API version.

The distributions here are real installed metadata (a `.dist-info` folder with
`entry_points.txt` on `sys.path`, the `installed` fixture), found by `importlib.metadata`
like any installed plugin. Conflicts and `providers`: `test_registry.py`.
"""

from __future__ import annotations

import pytest

from daglite import contracts
from daglite import registry
from daglite.errors import PluginError
from daglite.plugin import Backend
from daglite.testing import override_plugin


def test_a_plugin_without_an_api_version_or_with_another_is_refused(installed):
    installed("noversion", "0.1", {"daglite.processors": {"nov": "P"}}, "P = print\n", api="")
    installed("oldapi", "3.0", {"daglite.processors": {"old": "P"}}, "P = print\n", api="0")
    with pytest.raises(PluginError) as info:
        registry.load("processor", "nov")
    assert str(info.value) == (
        "processor 'nov' (distribution 'noversion' 0.1, noversion:P) cannot be used: it does "
        "not say which plugin API it was built for: set DAGLITE_API_VERSION = 1 in noversion "
        "(this daglite has plugin API version 1)"
    )
    with pytest.raises(PluginError) as info:
        registry.load("processor", "old")
    assert str(info.value) == (
        "processor 'old' (distribution 'oldapi' 3.0, oldapi:P) cannot be used: it was built "
        "for plugin API version 0, and this daglite has version 1: install a release of the "
        "plugin made for this daglite"
    )
    assert registry.usable_names("processor") == ["jsonl", "logging"]


# -- the contract of each kind -------------------------------------------------------------


class FullFormat:
    name = "full"
    extensions = ("full",)
    types = ()

    def dumps(self, value, options):
        return b""

    def loads(self, data, return_type, options):
        return None


class Mapless(Backend):
    pass


class Needy:
    def __init__(self, endpoint, *, token):
        pass

    def __call__(self, event):
        pass


@pytest.mark.parametrize(
    ("kind", "obj", "problem"),
    [
        ("backend", int, "int is not a subclass of daglite.plugin.Backend that implements map()"),
        (
            "backend",
            Mapless,
            "Mapless does not implement map() (a subclass of daglite.plugin.Backend that "
            "implements map())",
        ),
        (
            "store",
            "s3",
            "str is not a store factory: a callable (url, options, settings) -> "
            "daglite.plugin.ByteStore",
        ),
        (
            "format",
            type("Half", (), {"name": "half"}),
            "Half lacks extensions, types, dumps, loads (a Format: name, extensions, types, "
            "dumps() and loads())",
        ),
        (
            "format",
            type("Named", (FullFormat,), {"name": 3}),
            "Named.name is 3, not a string",
        ),
        (
            "format",
            type("Exts", (FullFormat,), {"extensions": (1,)}),
            "Exts.extensions must be strings, not (1,)",
        ),
        (
            "format",
            type("NoSeq", (FullFormat,), {"types": 5}),
            "NoSeq: extensions and types must be sequences ('int' object is not iterable)",
        ),
        (
            "processor",
            Needy,
            "Needy cannot be built: it needs endpoint, token; give them defaults or add a "
            "from_settings(settings) classmethod",
        ),
        (
            "processor",
            3,
            "int is not a processor: a callable over one event, built by "
            "from_settings(settings) or with no argument",
        ),
    ],
)
def test_misshapen_plugins_are_described(kind, obj, problem):
    assert contracts.shape_problem(kind, obj) == problem


@pytest.mark.parametrize(
    ("kind", "obj"),
    [
        ("backend", registry.load("backend", "thread")),
        ("store", lambda url, options: None),
        ("format", FullFormat),
        ("format", FullFormat()),
        ("processor", print),
        ("processor", type("Built", (Needy,), {"from_settings": classmethod(lambda c, s: 1)})),
    ],
)
def test_plugins_of_the_right_shape_pass(kind, obj):
    assert contracts.shape_problem(kind, obj) is None


def test_a_misshapen_override_is_refused_by_name():
    with override_plugin("backend", "mapless", Mapless), pytest.raises(PluginError) as info:
        registry.load("backend", "mapless")
    assert str(info.value) == (
        "backend 'mapless' (registered with daglite.testing.override_plugin) cannot be used: "
        "Mapless does not implement map() (a subclass of daglite.plugin.Backend that "
        "implements map())"
    )
