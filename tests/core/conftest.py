"""Fixtures of the core tests."""

from __future__ import annotations

import pytest

from daglite import hooks
from daglite import registry
from daglite.testing import EventCapture


@pytest.fixture
def events() -> EventCapture:
    """A fresh event-capturing processor to pass to `session(plugins=[events])`."""
    return EventCapture()


@pytest.fixture(autouse=True)
def _clean_plugins():
    """No test leaks a global hook plugin or a loaded plugin into the next one."""
    yield
    for plugin in hooks.global_plugins():
        hooks.unregister_plugin(plugin)
    registry._loaded.clear()
