"""Fixtures shared by every test suite: a clean settings and registry state per test."""

from __future__ import annotations

import pytest

from daglite import settings as settings_module


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Run each test in its own working directory with default settings and no DAGLITE_* env."""
    import os

    for name in list(os.environ):
        if name.startswith("DAGLITE_"):
            monkeypatch.delenv(name)
    # Sessions log through the `logging` processor by default; tests (and the subprocesses
    # they start) stay quiet unless they ask for it. The CLI and processor tests set their own.
    monkeypatch.setenv("DAGLITE_PROCESSORS", "")
    monkeypatch.chdir(tmp_path)
    settings_module.set_global_settings(None)
    yield
    settings_module.set_global_settings(None)
