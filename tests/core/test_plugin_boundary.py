"""First-party plugins use only the public plugin API: the examples third parties copy.

Every `.py` file of each plugin under `plugins/*/src`, and of the package `daglite
new-plugin` scaffolds, may import `daglite` (its top-level names), `daglite.plugin`,
`daglite.events`, `daglite.errors` and `daglite.testing`, and nothing else of the core.
The check reads the files' syntax trees, so it covers imports inside functions and
`TYPE_CHECKING` blocks too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import daglite

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"

#: The modules of the core a plugin may import.
PUBLIC = frozenset(
    {"daglite", "daglite.plugin", "daglite.events", "daglite.errors", "daglite.testing"}
)


def plugin_dirs() -> list[Path]:
    """Every plugin folder under `plugins/` (whatever exists now)."""
    return sorted(p for p in PLUGINS.iterdir() if p.is_dir() and (p / "pyproject.toml").exists())


def sources(plugin: Path) -> list[Path]:
    """The Python files of a plugin's package (its `src` tree, or the whole folder)."""
    base = plugin / "src" if (plugin / "src").is_dir() else plugin
    return sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)


def violations(source: str, filename: str = "<source>") -> list[str]:
    """The imports of core modules outside the public API in `source`, one line each."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "daglite":
                # `from daglite import X`: a top-level name, or the submodule daglite.X
                modules = [
                    f"daglite.{alias.name}"
                    for alias in node.names
                    if alias.name not in daglite.__all__
                ]
            else:
                modules = [node.module]
        elif isinstance(node, ast.Call) and _imports_by_name(node):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                modules = [arg.value]
        for module in modules:
            if module.split(".", 1)[0] == "daglite" and module not in PUBLIC:
                found.append(f"{filename}:{node.lineno}: imports {module}")
    return found


def _imports_by_name(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in ("import_module", "__import__") and bool(node.args)


def test_there_are_plugins_to_check():
    names = {p.name for p in plugin_dirs()}
    assert {"daglite-loky", "daglite-dask", "daglite-otel", "daglite-s3"} <= names
    assert {"daglite-rich", "daglite-arrow"} <= names
    for plugin in plugin_dirs():
        assert sources(plugin), f"no Python file found in {plugin}"


@pytest.mark.parametrize("plugin", plugin_dirs(), ids=lambda p: p.name)
def test_plugin_imports_only_the_public_api(plugin):
    found = []
    for path in sources(plugin):
        found += violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == [], (
        "plugins import only daglite, daglite.plugin, daglite.events, daglite.errors and "
        "daglite.testing; use (or add) a name of daglite.plugin instead of:\n" + "\n".join(found)
    )


def test_the_scaffolded_plugin_imports_only_the_public_api(tmp_path):
    from daglite.cli.scaffold import new_plugin

    plugin = new_plugin("probe", tmp_path)
    found = []
    for path in sources(plugin) + sorted((plugin / "tests").rglob("*.py")):
        found += violations(path.read_text(encoding="utf-8"), str(path.relative_to(tmp_path)))
    assert sources(plugin) and found == []


@pytest.mark.parametrize(
    "source",
    [
        "import daglite.context",
        "from daglite.backends.batches import run_map",
        "from daglite import context",
        "from daglite.settings import DagliteSettings",
        "def f():\n    from daglite.stores import ByteStore",
        "import importlib\nimportlib.import_module('daglite.registry')",
        "from daglite.pluginx import thing",
    ],
)
def test_the_check_catches_private_imports(source):
    assert len(violations(source)) == 1


@pytest.mark.parametrize(
    "source",
    [
        "import daglite",
        "from daglite import task, hookimpl, TaskMetadata, DagliteSettings",
        "from daglite import events as ev",
        "from daglite.plugin import TransportBackend",
        "from daglite.events import Event",
        "from daglite.errors import BackendError",
        "from daglite.testing import capture_events",
        "import daglite.plugin",
        "from daglite_loky.backend import LokyBackend",
        "from . import sibling",
    ],
)
def test_the_check_allows_the_public_api(source):
    assert violations(source) == []
