"""`daglite new-plugin`: the package it writes is installed outside this repository, next to
the core of this clone, in a fresh venv; its own test suite passes, and one session uses its
backend, store, format and processor by name.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from installs import CORE
from installs import ROOT
from installs import Venv

pytestmark = pytest.mark.slow

SESSION = """
    import os

    from daglite import load_dataset, map_tasks, save_dataset, session, task


    @task
    def label(x: int) -> str:
        return f"{x}:{os.getpid()}"


    with session(backend="shelf", plugins=["shelf"], dataset_store="shelf://runs") as ctx:
        rows = map_tasks(label, range(4))
        save_dataset("labels.shelf", rows)
        assert load_dataset("labels.shelf") == rows
    assert {row.split(":")[1] for row in rows} != {str(os.getpid())}, "ran in other processes"
    print(sorted(os.listdir("shelf-data/runs")))
"""


def test_new_plugin_package_passes_its_suite_and_runs_by_name(tmp_path):
    assert not tmp_path.is_relative_to(ROOT)
    made = subprocess.run(
        [sys.executable, "-m", "daglite.cli", "new-plugin", "shelf", "--directory", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    package = tmp_path / "daglite-shelf"
    assert made.stdout.splitlines()[0] == f"created {package}"

    venv = Venv(tmp_path / "venv")
    venv.install(CORE, f"{package}[test]")
    suite = venv.run(
        "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package, timeout=300
    )
    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert "9 passed" in suite.stdout.splitlines()[-1]

    work = tmp_path / "work"
    work.mkdir()
    (work / "pyproject.toml").write_text('[tool.daglite.options.shelf]\nroot = "shelf-data"\n')
    done = venv.script(SESSION, work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['labels.shelf']"
    assert "shelf: 4 tasks, 0 failed" in done.stderr  # the processor, by name
    assert (work / "shelf-data" / "runs" / "labels.shelf").read_text().count("\n") == 4


def test_new_plugin_refuses_a_bad_name_and_an_existing_folder(tmp_path):
    def new(name: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "daglite.cli", "new-plugin", name, "--directory", str(tmp_path)],
            capture_output=True,
            text=True,
        )

    done = new("My-Plugin")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "daglite: error: a plugin name is one lowercase word of letters and digits (it names "
        "the entry points, the scheme and DAGLITE_<NAME>_* variables), not 'My-Plugin'"
    )
    assert new("shelf").returncode == 0
    done = new("shelf")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"daglite: error: {tmp_path / 'daglite-shelf'} already exists; choose another name or "
        "folder"
    )
