"""Fixtures of the core tests."""

from __future__ import annotations

import sys
import textwrap

import pytest

from daglite import hooks
from daglite import registry
from daglite import settings
from daglite.testing import EventCapture


@pytest.fixture
def events() -> EventCapture:
    """A fresh event-capturing processor to pass to `session(plugins=[events])`."""
    return EventCapture()


@pytest.fixture(autouse=True)
def _no_default_processors(monkeypatch):
    """Sessions start with no event processor unless a test asks for one.

    The defaults may name processors (such as logging); the core tests observe sessions
    through their own processors. Subprocesses started by a test inherit this too.
    """
    monkeypatch.setenv("DAGLITE_PROCESSORS", "")
    settings.set_global_settings(None)


@pytest.fixture(autouse=True)
def _clean_plugins():
    """No test leaks a global hook plugin or a loaded plugin into the next one."""
    yield
    for plugin in hooks.global_plugins():
        hooks.unregister_plugin(plugin)
    registry._loaded.clear()


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
