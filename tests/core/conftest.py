"""Fixtures of the core tests."""

from __future__ import annotations

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
