"""The registry: entry-point lookup, install hints, overrides, and broken plugins."""

from __future__ import annotations

import sys

import pytest

from daglite import BackendError
from daglite import PluginError
from daglite import registry
from daglite import save_dataset
from daglite import session
from daglite.backends.inline import InlineBackend
from daglite.backends.thread import ThreadBackend
from daglite.errors import DatasetError
from daglite.settings import DagliteSettings


def test_builtin_backends_are_found_through_entry_points():
    assert {"inline", "thread"} <= set(registry.names("backend"))
    assert registry.load("backend", "inline") is InlineBackend
    assert registry.load("backend", "thread") is ThreadBackend
    info = {e.name: e for e in registry.entries("backend")}["thread"]
    assert (info.group, info.value) == ("daglite.backends", "daglite.backends.thread:ThreadBackend")
    assert info.distribution == "daglite"
    assert info.version


def test_unknown_name_lists_the_installed_names():
    with pytest.raises(PluginError) as info:
        registry.load("backend", "nope")
    installed = ", ".join(registry.names("backend"))
    assert str(info.value) == f"unknown backend 'nope'; installed backends: {installed}"


def test_unknown_name_in_an_empty_group_says_none(monkeypatch):
    monkeypatch.setattr(registry, "_entry_points", lambda kind: [])
    with pytest.raises(PluginError) as info:
        registry.load("format", "yaml")
    assert str(info.value) == "unknown format 'yaml'; installed formats: none"


@pytest.mark.parametrize(
    ("kind", "name", "dist"),
    [
        ("backend", "loky", "daglite-loky"),
        ("backend", "dask", "daglite-dask"),
        ("store", "s3", "daglite-s3"),
        ("processor", "rich", "daglite-rich"),
        ("format", "parquet", "daglite-arrow"),
    ],
)
def test_well_known_plugins_get_an_install_hint(kind, name, dist):
    if name in registry.names(kind):
        pytest.skip(f"{dist} is installed")
    with pytest.raises(PluginError) as info:
        registry.load(kind, name)
    installed = ", ".join(registry.names(kind)) or "none"
    assert str(info.value) == (
        f"{kind} '{name}' is not installed: install {dist} from a clone of daglite: uv pip "
        f"install ./plugins/{dist} (or pip install ./core ./plugins/{dist}) (installed {kind}s: "
        f"{installed})"
    )


def test_loky_hint_at_session_open():
    with (
        pytest.raises(
            BackendError, match=r"^backend 'loky' is not installed: install daglite-loky from a"
        ),
        session(backend="loky"),
    ):
        pass


def test_unknown_kind_is_a_value_error():
    with pytest.raises(ValueError) as info:
        registry.names("widget")
    assert str(info.value) == (
        "unknown plugin kind 'widget'; expected one of ['backend', 'format', 'processor', 'store']"
    )


def test_override_registers_a_name_for_the_block_and_restores_the_previous():
    class Fake(InlineBackend):
        pass

    class Faker(InlineBackend):
        pass

    with registry.override("backend", "fake", Fake):
        assert registry.load("backend", "fake") is Fake
        assert "fake" in registry.names("backend")
        (entry,) = [e for e in registry.entries("backend") if e.name == "fake"]
        assert entry.distribution == "daglite.testing"
        with registry.override("backend", "fake", Faker):
            assert registry.load("backend", "fake") is Faker
        assert registry.load("backend", "fake") is Fake
        with registry.override("backend", "inline", Faker):  # shadows a real entry point
            assert registry.load("backend", "inline") is Faker
        assert registry.load("backend", "inline") is InlineBackend
    assert "fake" not in registry.names("backend")
    with pytest.raises(PluginError, match="unknown backend 'fake'"):
        registry.load("backend", "fake")


def test_override_rejects_empty_names_and_unknown_kinds():
    with (
        pytest.raises(ValueError, match=r"^a plugin name must be a non-empty string, not ''$"),
        registry.override("backend", "", object()),
    ):
        pass
    with (
        pytest.raises(ValueError, match=r"^unknown plugin kind 'gadget'"),
        registry.override("gadget", "x", object()),
    ):
        pass


@pytest.fixture
def broken_distribution(tmp_path):
    """A real (tiny) installed distribution whose backend fails to import."""
    (tmp_path / "daglite_broken_backend.py").write_text(
        "raise RuntimeError('the broken backend cannot start')\n"
    )
    info = tmp_path / "daglite_broken-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: daglite-broken\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(
        "[daglite.backends]\nbroken = daglite_broken_backend:BrokenBackend\n"
    )
    sys.path.insert(0, str(tmp_path))
    registry.clear_cache()
    yield
    sys.path.remove(str(tmp_path))
    sys.modules.pop("daglite_broken_backend", None)
    registry.clear_cache()


def test_listing_does_not_import_plugins(broken_distribution):
    assert "broken" in registry.names("backend")
    (entry,) = [e for e in registry.entries("backend") if e.name == "broken"]
    assert (entry.distribution, entry.version) == ("daglite-broken", "1.2.3")
    assert "daglite_broken_backend" not in sys.modules


def test_plugin_failing_to_import_is_reported_with_distribution_and_cause(broken_distribution):
    with pytest.raises(PluginError) as info:
        registry.load("backend", "broken")
    assert str(info.value) == (
        "backend 'broken' is installed (distribution 'daglite-broken' 1.2.3, "
        "daglite_broken_backend:BrokenBackend) but failed to import: "
        "RuntimeError: the broken backend cannot start"
    )
    assert isinstance(info.value.__cause__, RuntimeError)


def test_broken_backend_fails_when_the_session_opens(broken_distribution):
    with pytest.raises(BackendError) as info, session(backend="broken"):
        pass
    assert "distribution 'daglite-broken' 1.2.3" in str(info.value)
    assert str(info.value).endswith("RuntimeError: the broken backend cannot start")
    assert isinstance(info.value.__cause__, PluginError)  # what `daglite run` looks for
    assert isinstance(info.value.__cause__.__cause__, RuntimeError)


def test_clear_cache_forgets_a_plugin_uninstalled_mid_run(broken_distribution, tmp_path):
    assert "broken" in registry.names("backend")
    sys.path.remove(str(tmp_path))
    registry.clear_cache()
    assert "broken" not in registry.names("backend")
    sys.path.insert(0, str(tmp_path))  # for the fixture's teardown


def test_loaded_objects_are_cached():
    registry.clear_cache()
    first = registry.load("backend", "thread")
    assert registry._loaded[("backend", "thread", "daglite.backends.thread:ThreadBackend")] is first
    assert registry.load("backend", "thread") is first


# -- conflicts, providers, remembered failures (installed distributions) --------------------


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


def test_failures_are_remembered_and_forgotten_by_clear_cache(installed):
    installed("flaky", "1.0", {"daglite.processors": {"flaky": "P"}}, "P = 1\n")
    first = registry.problem("processor", "flaky")
    assert first is registry.problem("processor", "flaky")  # checked once
    registry.clear_cache()
    assert registry.problem("processor", "flaky") is not first
