"""Docstrings are documentation too: every public name has one, and their examples run."""

from __future__ import annotations

import doctest
import importlib
import inspect
import os
import pkgutil

import pytest

import daglite
from daglite.settings import set_global_settings

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(daglite.__path__, "daglite.")
    if not info.name.rsplit(".", 1)[-1].startswith("_")
)


def public_members(module_name: str) -> list[tuple[str, object]]:
    """Public functions and classes defined in (not imported into) a module, with methods."""
    module = importlib.import_module(module_name)
    found = []
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
            continue
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        found.append((f"{module_name}.{name}", obj))
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and inspect.isfunction(member):
                    found.append((f"{module_name}.{name}.{attr}", member))
    return found


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_has_a_docstring(module_name):
    module = importlib.import_module(module_name)
    assert inspect.getdoc(module), f"{module_name} has no module docstring"
    missing = [name for name, obj in public_members(module_name) if not inspect.getdoc(obj)]
    assert missing == []


def test_every_name_exported_by_daglite_has_a_docstring():
    missing = [name for name in daglite.__all__ if name != "__version__"]
    missing = [name for name in missing if not inspect.getdoc(getattr(daglite, name))]
    assert missing == []


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name, tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("DAGLITE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    set_global_settings(None)
    try:
        module = importlib.import_module(module_name)
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    finally:
        set_global_settings(None)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {module_name} failed"


def test_the_examples_are_found():
    finder = doctest.DocTestFinder()
    examples = sum(
        len(test.examples)
        for name in MODULES
        for test in finder.find(importlib.import_module(name))
    )
    assert examples >= 20
