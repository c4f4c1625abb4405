"""Installing a plugin can never pull the unrelated `daglite` of a package index.

PyPI has a `daglite` (0.2.1 ... 0.8.0, no `workflow`) that is not this project. The core of
this clone is versioned with a local label (`0.1.0+clone`), which package indexes refuse to
host, and every plugin pins it exactly, so a resolver that only sees an index fails with a
clear error instead of installing the stranger. Here the "index" is a folder (`--find-links`)
holding a stand-in for that unrelated distribution.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from installs import CORE
from installs import ROOT
from installs import Venv
from installs import clean_env
from installs import distribution
from installs import uv

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PLUGINS = sorted(p for p in (ROOT / "plugins").glob("daglite-*") if (p / "pyproject.toml").exists())


def _project(folder) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]


def test_versions_pin_the_core_of_this_clone_exactly():
    core = _project(CORE)
    assert "+" in core["version"], "a local label: no index can host this version"
    for plugin in PLUGINS:
        project = _project(plugin)
        pins = [d for d in project["dependencies"] if re.match(r"daglite\b(?!-)", d)]
        assert pins == [f"daglite=={core['version']}"], plugin.name
        assert "+" in project["version"], plugin.name
        extra = project["name"].removeprefix("daglite-")
        assert core["optional-dependencies"].get(extra) == [
            f"{project['name']}=={project['version']}"
        ], f"core extra {extra!r}"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A folder index with the unrelated `daglite` 0.8.0 and two built plugin wheels."""
    root = tmp_path_factory.mktemp("index")
    wheels = root / "wheels"
    stranger = distribution(root / "src", "daglite", "0.8.0", {"__init__": "STRANGER = 1\n"}, {})
    # A plugin as this repository makes them, and one with the old floor pin.
    pinned = ROOT / "plugins" / "daglite-rich"
    floor = distribution(root / "src", "daglite-floor", "0.1.0", {"__init__": ""}, {})
    text = (floor / "pyproject.toml").read_text()
    (floor / "pyproject.toml").write_text(
        text.replace("dependencies = []", 'dependencies = ["daglite>=0.1"]')
    )
    for source in (stranger, pinned, floor):
        subprocess.run(
            [uv(), "build", "-q", "--wheel", "--out-dir", str(wheels), str(source)],
            check=True,
            env=clean_env(),
            capture_output=True,
        )
    return wheels


def _wheel(index, name: str) -> str:
    (found,) = index.glob(f"{name.replace('-', '_')}-*.whl")
    return str(found)


@pytest.mark.slow
def test_uv_refuses_the_unrelated_daglite(index, tmp_path):
    venv = Venv(tmp_path / "venv")
    done = venv.install(
        "--no-index", "--find-links", index, _wheel(index, "daglite-rich"), check=False
    )
    assert done.returncode != 0
    assert "daglite==0.1.0+clone" in done.stderr
    assert "requirements are unsatisfiable" in done.stderr
    # The same index with the old floor pin would have taken the stranger: the test can fail.
    done = venv.install("--no-index", "--find-links", index, _wheel(index, "daglite-floor"))
    assert "daglite==0.8.0" in done.stderr


@pytest.mark.slow
def test_pip_refuses_the_unrelated_daglite(index, tmp_path):
    venv = Venv(tmp_path / "venv", seed=True)
    done = venv.run(
        "python",
        "-m",
        "pip",
        "install",
        "--no-index",
        "--find-links",
        str(index),
        _wheel(index, "daglite-rich"),
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "ERROR: No matching distribution found for daglite==0.1.0+clone" in done.stderr, (
        done.stderr
    )
    assert "from versions: 0.8.0" in done.stderr


@pytest.mark.slow
def test_a_plugin_installs_with_the_core_of_the_clone(index, tmp_path):
    venv = Venv(tmp_path / "venv")
    venv.install(CORE, "--find-links", index, _wheel(index, "daglite-rich"))
    done = venv.run(
        "python", "-c", "import daglite, daglite.plugin; print(daglite.__version__)", cwd=tmp_path
    )
    assert done.stdout.strip() == "0.1.0+clone", done.stderr
