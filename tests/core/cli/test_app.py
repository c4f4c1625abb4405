"""The `daglite` command, run for real in subprocesses."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import daglite
from daglite import registry

from .conftest import _env
from .conftest import daglite_cmd

# -- help and version ---------------------------------------------------------------------


def test_version(tmp_path):
    done = daglite_cmd("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == daglite.__version__


def test_help_lists_every_command(tmp_path):
    done = daglite_cmd("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for command in ("run", "list", "describe", "plugins", "cache"):
        assert f"  {command}:" in done.stdout
    text = " ".join(done.stdout.split())
    assert "Exit status: 0 success, 1 the workflow failed, 2 usage error" in text


def test_help_and_version_stay_lean(tmp_path):
    code = (
        "import sys\n"
        "from daglite.cli import main\n"
        "main(['--version'])\n"
        "assert 'cyclopts' not in sys.modules, 'cyclopts loaded for --version'\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('daglite'))\n"
        "assert loaded == ['daglite', 'daglite.cli'], loaded\n"
        "main(['--help'])\n"
        "lazy = ('structlog', 'stevedore', 'fsspec', 'cloudpickle')\n"
        "heavy = [m for m in lazy if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "core = ('daglite.tasks', 'daglite.pipeline', 'daglite.drivers', 'daglite.session',"
        " 'daglite.workflows')\n"
        "loaded = [m for m in core if m in sys.modules]\n"
        "assert not loaded, f'--help loaded {loaded}'\n"
    )
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(daglite.__version__ + "\n")


def test_unknown_command_exits_2(tmp_path):
    done = daglite_cmd("frobnicate", cwd=tmp_path)
    assert done.returncode == 2
    assert 'Unknown command "frobnicate"' in done.stderr
    assert "see: daglite --help" in done.stderr


# -- list, describe -----------------------------------------------------------------------


def test_list_shows_each_workflow_with_its_summary(flows):
    done = daglite_cmd("list", "flows.py", cwd=flows)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == [
        "flows.py:typed",
        "flows.py:failing",
        "flows.py:shadow",
        "flows.py:later",
        "flows.py:odd_result",
        "flows.py:interrupted",
        "flows.py:doubles",
    ]
    assert lines[0].endswith("Exercise every parameter type.")


def test_describe_shows_parameters_types_defaults_and_description(flows):
    done = daglite_cmd("describe", "flows.py:typed", cwd=flows)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("workflow typed  (flows.py:typed)")
    assert "Exercise every parameter type." in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  --")}
    assert rows["--n"].split()[1:4] == ["int", "required", "How"]
    assert "default: 1.5" in rows["--scale"] and "A factor." in rows["--scale"]
    assert "red|blue" in rows["--color"] and "default: red" in rows["--color"]
    assert "a|b" in rows["--mode"]
    assert "default: out.txt" in rows["--out"]


def test_describe_unknown_target_exits_2(flows):
    done = daglite_cmd("describe", "flows.py:nope", cwd=flows)
    assert done.returncode == 2
    assert "has no workflow 'nope'" in done.stderr


# -- plugins ------------------------------------------------------------------------------


def _fake_distribution(root: Path) -> None:
    """A real installed-looking distribution with one good and one broken processor."""
    (root / "fakeplug").mkdir()
    (root / "fakeplug" / "__init__.py").write_text(
        "DAGLITE_API_VERSION = 1\n\nclass Good:\n    def __call__(self, e): pass\n"
    )
    dist = root / "fakeplug-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [daglite.processors]
            good = fakeplug:Good
            broken = fakeplug.missing:Thing
            """
        )
    )


def test_plugins_lists_groups_and_reports_a_broken_plugin(tmp_path):
    _fake_distribution(tmp_path)
    env = _env(PYTHONPATH=str(tmp_path))
    done = daglite_cmd("plugins", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for group in registry.GROUPS.values():
        assert group in out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ")}
    version = daglite.__version__
    assert lines["inline"].split() == ["inline", "daglite", version, "ok"]
    assert lines["logging"].split() == ["logging", "daglite", version, "ok"]
    assert lines["good"].split() == ["good", "fakeplug", "1.2.3", "ok"]
    assert "fakeplug 1.2.3  error: processor 'broken' is installed" in lines["broken"]
    assert "No module named 'fakeplug.missing'" in lines["broken"]
    assert "1 plugin(s) cannot be used" in done.stderr


def test_plugins_check_exits_0_when_every_plugin_can_be_used_and_1_otherwise(tmp_path):
    done = daglite_cmd("plugins", "--check", cwd=tmp_path, env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    _fake_distribution(tmp_path)
    done = daglite_cmd("plugins", "--check", cwd=tmp_path, env=_env(PYTHONPATH=str(tmp_path)))
    assert done.returncode == 1
    assert done.stderr.strip() == "1 plugin(s) cannot be used"


def test_a_plugin_processor_from_a_distribution_joins_the_run(tmp_path, flows):
    _fake_distribution(tmp_path)
    env = _env(PYTHONPATH=str(tmp_path))
    done = daglite_cmd("run", "flows.py:typed", "1", "--plugin", "good", cwd=flows, env=env)
    assert done.returncode == 0, done.stderr
    done = daglite_cmd(
        "run", "flows.py:typed", "1", "--plugin", "broken", cwd=flows,
        env=_env(PYTHONPATH=str(tmp_path)),
    )  # fmt: skip
    assert done.returncode == 2
    assert "processor 'broken' is installed (distribution 'fakeplug' 1.2.3" in done.stderr
