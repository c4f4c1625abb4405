"""Fresh virtual environments with real distributions installed by uv, for install tests.

Nothing here fakes an entry point: each plugin is a source tree with its own
`pyproject.toml`, built and installed by `uv pip install` next to the core of this clone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core"


def uv() -> str:
    found = shutil.which("uv", path=os.path.dirname(sys.executable)) or shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without DAGLITE_*, VIRTUAL_ENV and UV_* variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DAGLITE_", "VIRTUAL_ENV", "UV_", "PYTHONPATH"))
    }
    env.update(extra)
    return env


class Venv:
    """A fresh venv (`uv venv`) in `path`."""

    def __init__(self, path: Path, *, seed: bool = False) -> None:
        self.path = path
        args = [uv(), "venv", "-q", str(path), "-p", sys.executable]
        subprocess.run([*args, "--seed"] if seed else args, check=True, env=clean_env())
        self.python = str(path / "bin" / "python")
        self.bin = path / "bin"

    def install(self, *specs: str | Path, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [uv(), "pip", "install", "--python", self.python, *map(str, specs)],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def run(self, *args: str, cwd: Path, timeout: float = 120, **env: str):
        """Run `args` (a console script of the venv, or `python`) in `cwd`."""
        program = self.python if args[0] == "python" else str(self.bin / args[0])
        return subprocess.run(
            [program, *args[1:]],
            cwd=cwd,
            env=clean_env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def script(self, source: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
        """Run Python `source` (dedented) as a script in `cwd`."""
        path = cwd / "script.py"
        path.write_text(textwrap.dedent(source))
        return self.run("python", str(path), cwd=cwd, **env)


def distribution(
    root: Path,
    dist: str,
    version: str,
    modules: dict[str, str],
    entry_points: dict[str, dict[str, str]],
) -> Path:
    """Write a source tree of distribution `dist` (built by hatchling); returns its folder."""
    folder = root / dist
    package = dist.replace("-", "_")
    (folder / package).mkdir(parents=True)
    for name, source in modules.items():
        (folder / package / f"{name}.py").write_text(textwrap.dedent(source))
    groups = "".join(
        f'\n[project.entry-points."{group}"]\n'
        + "".join(f'{name} = "{value}"\n' for name, value in names.items())
        for group, names in entry_points.items()
    )
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["hatchling>=1.24"]
            build-backend = "hatchling.build"

            [project]
            name = "{dist}"
            version = "{version}"
            requires-python = ">=3.10"
            dependencies = []

            [tool.hatch.build.targets.wheel]
            packages = ["{package}"]
            """
        )
        + groups
    )
    return folder
