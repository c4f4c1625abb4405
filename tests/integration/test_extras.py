"""`daglite[loky,rich]` installed from this repository into a fresh venv, then used by name.

The core's extras name the plugin packages; `[tool.uv.sources]` in core/pyproject.toml maps
them to this workspace's members, so `uv pip install "./core[loky,rich]"` installs the
local plugins (plain pip needs their paths too: see the README).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
    import os

    from daglite import map_tasks
    from daglite import session
    from daglite import task


    @task
    def whoami(x: int) -> int:
        return os.getpid()


    with session(backend="loky", plugins=["rich"]):
        pids = map_tasks(whoami, range(4))
    print(len(pids), os.getpid() in pids)
"""


def _uv() -> str:
    found = shutil.which("uv", path=os.path.dirname(sys.executable)) or shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed")
    return found


@pytest.mark.slow
def test_extras_install_the_local_plugins_and_they_work_by_name(tmp_path):
    uv = _uv()
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
    env.pop("DAGLITE_PROCESSORS", None)
    subprocess.run([uv, "venv", "-q", str(venv), "-p", sys.executable], check=True, env=env)
    python = str(venv / "bin" / "python")
    installed = subprocess.run(
        [uv, "pip", "install", "--python", python, f"{ROOT / 'core'}[loky,rich]"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stderr
    for plugin in ("daglite-loky", "daglite-rich"):  # the workspace members, not an index's
        source = re.escape(f"(from file://{ROOT}/plugins/{plugin})")
        assert re.search(rf"{plugin}==\S+ {source}", installed.stderr), installed.stderr
    names = subprocess.run(
        [python, "-c", "from daglite import registry; print(sorted(registry.names('backend')))"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert "'loky'" in names.stdout, names.stderr

    (tmp_path / "run.py").write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run(
        [python, "run.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4", "False"], "four items ran in loky's workers"
    summary = done.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"✔ daglite session finished in .+: 4 tasks run, .*1 map", summary), (
        done.stderr
    )
