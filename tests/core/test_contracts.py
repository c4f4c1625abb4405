"""Plugin health in one process: contract checks, API versions, conflicts and `providers`.

The distributions here are real installed metadata (a `.dist-info` folder with
`entry_points.txt` on `sys.path`), found by `importlib.metadata` like any installed
plugin; `tests/integration/test_plugin_health.py` builds and installs real wheels.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from daglite import contracts
from daglite import registry
from daglite import save_dataset
from daglite import session
from daglite.errors import DatasetError
from daglite.errors import PluginError
from daglite.plugin import Backend
from daglite.settings import DagliteSettings
from daglite.testing import check_plugin
from daglite.testing import override_plugin


@pytest.fixture
def installed(tmp_path):
    """Install (on sys.path) distributions written as {dist: (version, {group: {name: value}},
    module source)}; removed afterwards."""
    added = []

    def install(dist: str, version: str, groups: dict, source: str, api: str = "1") -> None:
        package = dist.replace("-", "_")
        (tmp_path / f"{package}.py").write_text(
            (f"DAGLITE_API_VERSION = {api}\n" if api else "") + textwrap.dedent(source)
        )
        info = tmp_path / f"{package}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(
            "".join(
                f"[{group}]\n" + "".join(f"{n} = {package}:{v}\n" for n, v in names.items())
                for group, names in groups.items()
            )
        )
        added.append(package)
        registry.clear_cache()

    sys.path.insert(0, str(tmp_path))
    yield install
    sys.path.remove(str(tmp_path))
    for package in added:
        sys.modules.pop(package, None)
    registry.clear_cache()


TSV = """
class Tsv:
    name = "tsv"
    extensions = ("tsv",)
    types = ()

    def dumps(self, value, options):
        return SIDE + value.encode()

    def loads(self, data, return_type, options):
        return data.decode()
"""


def _two_tsv(installed):
    installed("tsv-a", "1.0", {"daglite.formats": {"tsv": "Tsv"}}, "SIDE = b'a:'\n" + TSV)
    installed("tsv-b", "2.0", {"daglite.formats": {"tsv": "Tsv"}}, "SIDE = b'b:'\n" + TSV)


def test_a_name_claimed_by_two_distributions_names_both(installed):
    _two_tsv(installed)
    with pytest.raises(PluginError) as info:
        registry.load("format", "tsv", providers={})
    assert str(info.value) == (
        "format 'tsv' is provided by two distributions, 'tsv-a' 1.0 (tsv_a:Tsv), 'tsv-b' 2.0 "
        "(tsv_b:Tsv): pick one in the providers setting, e.g. [tool.daglite.providers] "
        'format.tsv = "tsv-a" in pyproject.toml or DAGLITE_PROVIDERS=format.tsv=tsv-a '
        "(claimed by 'tsv-a' and 'tsv-b')"
    )
    assert [e.distribution for e in registry.entries("format") if e.name == "tsv"] == [
        "tsv-a",
        "tsv-b",
    ]


def test_providers_pick_one_and_a_wrong_pick_is_named(installed, tmp_path):
    _two_tsv(installed)
    picked = registry.load("format", "tsv", providers={"format": {"tsv": "TSV_B"}})
    assert sys.modules[picked.__module__].SIDE == b"b:"
    with pytest.raises(PluginError) as info:
        registry.load("format", "tsv", providers={"format": {"tsv": "tsv-c"}})
    assert str(info.value) == (
        "the providers setting picks 'tsv-c' for format 'tsv', but 'tsv-c' does not provide "
        "it; it is provided by 'tsv-a' 1.0 (tsv_a:Tsv), 'tsv-b' 2.0 (tsv_b:Tsv)"
    )
    # A session's settings pick it for saves inside the session.
    settings = DagliteSettings(providers={"format": {"tsv": "tsv-a"}})
    with session(settings=settings, dataset_store=str(tmp_path)):
        save_dataset("t.tsv", "row")
    assert (tmp_path / "t.tsv").read_bytes() == b"a:row"


def test_a_conflict_leaves_other_saves_alone_and_fails_a_save_that_needs_it(installed, tmp_path):
    _two_tsv(installed)
    with session(dataset_store=str(tmp_path)):
        save_dataset("fine.json", {"ok": 1})
        with pytest.raises(DatasetError, match=r"^format 'tsv' is provided by two distributions"):
            save_dataset("t.tsv", "row")
    assert (tmp_path / "fine.json").exists()
    assert not (tmp_path / "t.tsv").exists()


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


def test_failures_are_remembered_and_forgotten_by_clear_cache(installed):
    installed("flaky", "1.0", {"daglite.processors": {"flaky": "P"}}, "P = 1\n")
    first = registry.problem("processor", "flaky")
    assert first is registry.problem("processor", "flaky")  # checked once
    registry.clear_cache()
    assert registry.problem("processor", "flaky") is not first


def test_check_plugin_loads_an_installed_plugin_and_says_what_is_wrong(installed):
    installed("good", "1.0", {"daglite.processors": {"good": "P"}}, "P = print\n")
    assert check_plugin("processor", "good") is print
    with pytest.raises(PluginError, match=r"^unknown processor 'nope'; installed processors: "):
        check_plugin("processor", "nope")


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
