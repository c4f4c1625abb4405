"""The `daglite` command, run for real in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import daglite
from daglite import registry

FLOWS = '''
"""Workflows for the command-line tests."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Literal

from daglite import get_logger
from daglite import map_tasks
from daglite import task
from daglite import workflow


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@task
def double(x: int) -> int:
    get_logger().info("doubling", x=x)
    return 2 * x


@task
def explode(x: int) -> int:
    if x == 2:
        raise ValueError(f"bad item {x}")
    return x


@workflow
def typed(
    n: int,
    scale: float = 1.5,
    name: str = "w",
    verbose: bool = False,
    out: Path = Path("out.txt"),
    color: Color = Color.RED,
    mode: Literal["a", "b"] = "a",
    tags: list[str] | None = None,
) -> dict:
    """Exercise every parameter type.

    Args:
        n: How many items to double.
        scale: A factor.
    """
    return {
        "n": n, "scale": scale, "name": name, "verbose": verbose, "out": str(out),
        "color": color.value, "mode": mode, "tags": tags,
        "doubled": map_tasks(double, range(n)),
    }


@workflow
def failing(n: int = 4) -> list[int]:
    """Fails on item 2."""
    return map_tasks(explode, range(n))


@workflow
def shadow(backend: str = "mine") -> str:
    """Has a parameter named like a session option."""
    return backend


@workflow
async def later(x: int = 2) -> int:
    """An async workflow."""
    return double(x)


@workflow
def odd_result() -> set:
    """Returns what JSON cannot hold."""
    return {3, 1, 2}


@workflow
def interrupted() -> None:
    """Gets Ctrl-C."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGINT)
    import time

    time.sleep(5)


not_a_workflow = double


@workflow
def doubles(n: int = 2) -> list[int]:
    return map_tasks(double, range(n))
'''


def _command() -> list[str]:
    script = Path(sys.executable).with_name("daglite")
    return [str(script)] if script.exists() else [sys.executable, "-m", "daglite.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGLITE_")}
    env["DAGLITE_LOG_FORMAT"] = "json"  # what a pipe gets anyway; explicit for clarity
    env.update(extra)
    return env


def daglite_cmd(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [*_command(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or _env(),
        timeout=timeout,
    )


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    return tmp_path


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
        "core = ('daglite.tasks', 'daglite.pipeline', 'daglite.session', 'daglite.workflows')\n"
        "loaded = [m for m in core if m in sys.modules]\n"
        "assert not loaded, f'--help loaded {loaded}'\n"
    )
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(daglite.__version__ + "\n")


def test_run_help_shows_workflow_parameters_defaults_and_session_options(flows):
    done = daglite_cmd("run", "flows.py:typed", "--help", cwd=flows)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Exercise every parameter type." in out
    assert "How many items to double." in out
    assert "[default: 1.5]" in out
    assert "[choices: red, blue]" in out
    assert "[choices: a, b]" in out
    assert "--verbose" in out
    for option in ("--backend", "--cache-store", "--dataset-store", "--log-format", "--plugin"):
        assert option in out
    assert "--event-log" in out and "--traceback" in out


# -- run ----------------------------------------------------------------------------------


def test_run_parses_every_annotation_and_prints_the_result(flows):
    done = daglite_cmd(
        "run", "flows.py:typed", "3", "--scale", "2", "--verbose", "--out", "r.csv",
        "--color", "blue", "--mode", "b", "--tags", "x", "--tags", "y",
        "--backend", "thread", cwd=flows,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "n": 3,
        "scale": 2.0,
        "name": "w",
        "verbose": True,
        "out": "r.csv",
        "color": "blue",
        "mode": "b",
        "tags": ["x", "y"],
        "doubled": [0, 2, 4],
    }


def test_run_logs_json_lines_with_task_records(flows):
    done = daglite_cmd("run", "--log-format", "json", "flows.py:typed", "2", cwd=flows)
    assert done.returncode == 0, done.stderr
    lines = _json_lines(done.stderr)
    assert not [r for r in lines if r["event"] == "task finished"]  # debug lines
    (ended,) = [r for r in lines if r["event"] == "map finished"]
    assert (ended["map"], ended["done"], ended["failed"], ended["total"]) == ("double", 2, 0, 2)
    logged = [r for r in lines if r["event"] == "doubling"]
    assert sorted(r["x"] for r in logged) == [0, 1]
    assert {r["task"] for r in logged} == {"double[0]", "double[1]"}
    (workflow,) = [r for r in lines if r["event"] == "workflow finished"]
    assert workflow["succeeded"] == 2


def test_verbose_run_logs_each_task_call(flows):
    done = daglite_cmd("run", "-v", "--log-format", "json", "flows.py:doubles", cwd=flows)
    assert done.returncode == 0, done.stderr
    lines = _json_lines(done.stderr)
    finished = [r for r in lines if r["event"] == "task finished"]
    assert sorted(r["task"] for r in finished) == ["double[0]", "double[1]"]
    assert all(r["status"] == "success" and r["duration"] >= 0 for r in finished)
    assert {r["level"] for r in finished} == {"debug"}


def test_quiet_run_logs_warnings_only(flows):
    done = daglite_cmd("run", "--quiet", "flows.py:doubles", cwd=flows)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # the task's records are info: nothing is at warning or above


def test_quiet_verbose_and_log_level_are_exclusive(flows):
    done = daglite_cmd("run", "-q", "-v", "flows.py:doubles", cwd=flows)
    assert done.returncode == 2
    assert "choose one of -q/--quiet, -v/--verbose and --log-level" in done.stderr
    done = daglite_cmd("run", "-q", "--log-level", "debug", "flows.py:doubles", cwd=flows)
    assert "choose one of -q/--quiet, -v/--verbose and --log-level" in done.stderr


def test_run_console_logs_are_readable(flows):
    done = daglite_cmd(
        "run", "--log-level", "debug", "flows.py:typed", "1", "--log-format", "console", cwd=flows
    )
    assert done.returncode == 0, done.stderr
    line = [ln for ln in done.stderr.splitlines() if "task finished" in ln][0]
    assert "task=double[0]" in line and "status=success" in line and "duration=" in line
    assert not line.lstrip().startswith("{")


def test_log_level_option_quiets_the_run(flows):
    done = daglite_cmd("run", "flows.py:typed", "2", "--log-level", "error", cwd=flows)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_event_log_option_writes_a_complete_account(flows):
    done = daglite_cmd(
        "run", "flows.py:typed", "2", "--backend", "thread", "--event-log", "run/events.jsonl",
        cwd=flows,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = _json_lines((flows / "run" / "events.jsonl").read_text())
    kinds = [r["event"] for r in records]
    assert kinds[0] == "SessionStarted" and kinds[-1] == "SessionEnded"
    # the workflow joined the session the command opened (with its backend)
    assert kinds.count("SessionStarted") == 1
    assert records[0]["backend"] == "thread"
    assert {r["session_id"] for r in records} == {records[0]["session_id"]}
    for kind in ("WorkflowStarted", "MapStarted", "TaskStarted", "TaskSucceeded", "LogRecorded"):
        assert kind in kinds
    workflow = next(r for r in records if r["event"] == "WorkflowStarted")
    mapped = next(r for r in records if r["event"] == "MapStarted")
    assert mapped["parent_id"] == workflow["workflow_id"]
    tasks = [r for r in records if r["event"] == "TaskSucceeded"]
    assert {r["parent_id"] for r in tasks} == {workflow["workflow_id"]}
    assert records[-1]["status"] == "success"


def test_failed_workflow_exits_1_naming_the_task(flows):
    log = flows / "events.jsonl"
    done = daglite_cmd(
        "run", "flows.py:failing", "--log-level", "error", "--event-log", str(log), cwd=flows
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "daglite: workflow 'failing' failed: task 'explode' (map index 2) failed: "
        "ValueError: bad item 2 (run again with --traceback for the full traceback)"
    )
    assert "Traceback" not in done.stderr
    failed = [r for r in _json_lines(log.read_text()) if r["event"] == "TaskFailed"]
    assert [(r["name"], r["map_index"], r["error_type"], r["error_message"]) for r in failed] == [
        ("explode", 2, "ValueError", "bad item 2")
    ]
    ended = _json_lines(log.read_text())[-1]
    assert (ended["event"], ended["status"], ended["error_type"]) == (
        "SessionEnded",
        "failure",
        "TaskError",
    )


def test_traceback_option_prints_the_full_traceback(flows):
    done = daglite_cmd("run", "flows.py:failing", "--traceback", "--log-level", "error", cwd=flows)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert 'raise ValueError(f"bad item {x}")' in done.stderr


def test_workflow_parameter_shadows_a_session_option(flows):
    done = daglite_cmd("run", "flows.py:shadow", "--backend", "theirs", cwd=flows)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "theirs"


def test_async_workflow_and_default_target(flows):
    done = daglite_cmd("run", "flows.py:later", "--x", "5", cwd=flows)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "10"


def test_results_json_cannot_hold_are_pretty_printed(flows):
    done = daglite_cmd("run", "flows.py:odd_result", cwd=flows)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "{1, 2, 3}\n"


def test_ctrl_c_ends_the_run_with_130(flows):
    done = daglite_cmd("run", "flows.py:interrupted", "--event-log", "ev.jsonl", cwd=flows)
    assert done.returncode == 130
    assert done.stderr.strip().endswith("daglite: interrupted")
    ended = _json_lines((flows / "ev.jsonl").read_text())[-1]
    assert (ended["event"], ended["status"], ended["error_type"]) == (
        "SessionEnded",
        "failure",
        "KeyboardInterrupt",
    )


def test_module_target_from_the_working_directory(flows):
    done = daglite_cmd("run", "flows:typed", "1", "--log-level", "error", cwd=flows)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["doubled"] == [0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["flows.py:typed", "--n", "abc"], 'Invalid value for --n: unable to convert "abc"'),
        (["flows.py:typed", "1", "--mode", "c"], 'Invalid value "c" for --mode'),
        (["flows.py:typed"], "requires an argument"),
        (["flows.py:nope"], "'flows.py' has no workflow 'nope'; its workflows: typed, failing"),
        (["flows.py:not_a_workflow"], "'flows.py:not_a_workflow' is a @task, not a @workflow"),
        (["flows.py"], "'flows.py' defines several workflows (typed, failing, shadow, later, "),
        (["missing.py:wf"], "no such file: missing.py"),
        (["nosuch.module:wf"], "cannot find module 'nosuch.module'"),
        (["flows.py:typed", "1", "--backend", "zzz"], "unknown backend 'zzz'; installed backends:"),
        (["flows.py:typed", "1", "--backend", "loky"], "install daglite-loky from a clone"),
        (["flows.py:typed", "1", "--plugin", "nope"], "unknown processor 'nope'"),
        (["flows.py:typed", "1", "--log-format", "xml"], 'Invalid value "xml" for --log-format'),
        # found when the session opens, before any task runs
        (
            ["flows.py:typed", "1", "--dataset-store", "gs://bucket/data"],
            "cannot use 'gs://bucket/data' as the dataset store: unknown store 'gs'; installed "
            "stores: file, memory",
        ),
        (
            ["flows.py:typed", "1", "--cache-store", "s3://bucket/cache"],
            "store 's3' is not installed: install daglite-s3 from a clone",
        ),
        (
            ["flows.py:typed", "1", "--event-log", "flows.py/events.jsonl"],
            "cannot write the event log 'flows.py/events.jsonl': FileExistsError: File exists; "
            "choose a writable path (daglite run --event-log PATH, DAGLITE_EVENT_LOG or "
            "event_log in [tool.daglite])",
        ),
        (["flows.py:typed", "1", "--backend", ""], "backend must name a backend (e.g. 'inline'"),
    ],
)
def test_usage_errors_exit_2_and_say_what_to_do(flows, args, message):
    done = daglite_cmd("run", *args, cwd=flows)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in " ".join(done.stderr.split()), done.stderr
    assert "daglite: error:" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "dataset_format='nope'",
            "dataset_format='nope': unknown format 'nope'; installed formats",
        ),
        ("timeout=float('inf')", "timeout must be a finite number of seconds > 0 and <= 2592000"),
        ("name='{x!q}'", "Name template '{x!q}' has an unknown conversion '!q' in {x!q}"),
    ],
)
def test_a_bad_task_option_in_the_target_exits_2_before_anything_runs(tmp_path, option, message):
    (tmp_path / "bad.py").write_text(
        "from daglite import task, workflow\n"
        f"@task({option})\n"
        "def f(x):\n"
        "    return x\n"
        "@workflow\n"
        "def flow():\n"
        "    return f(1)\n"
    )
    done = daglite_cmd("run", "bad.py:flow", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("daglite: error: cannot import ")
    assert message in done.stderr
    assert done.stdout == ""


def test_unknown_command_exits_2(tmp_path):
    done = daglite_cmd("frobnicate", cwd=tmp_path)
    assert done.returncode == 2
    assert 'Unknown command "frobnicate"' in done.stderr
    assert "see: daglite --help" in done.stderr


def test_bad_setting_in_the_environment_exits_2(flows):
    done = daglite_cmd("run", "flows.py:typed", "1", cwd=flows, env=_env(DAGLITE_LOG_LEVEL="loud"))
    assert done.returncode == 2
    assert "invalid value 'loud' for 'log_level'" in done.stderr


@pytest.mark.skipif("process" not in registry.names("backend"), reason="process backend missing")
def test_records_from_process_workers_reach_the_output(flows):
    done = daglite_cmd(
        "run", "flows.py:typed", "3", "--backend", "process", "--event-log", "ev.jsonl",
        cwd=flows,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    logged = [r for r in _json_lines(done.stderr) if r["event"] == "doubling"]
    assert sorted(r["x"] for r in logged) == [0, 1, 2]
    events = _json_lines((flows / "ev.jsonl").read_text())
    records = [r for r in events if r["event"] == "LogRecorded"]
    assert sorted(r["map_index"] for r in records) == [0, 1, 2]
    starts = {r["task_id"] for r in events if r["event"] == "TaskStarted"}
    assert {r["task_id"] for r in records} == starts


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


# -- cache --------------------------------------------------------------------------------


def _cache_cmd(tmp_path: Path, *args: str):
    return daglite_cmd(*args, cwd=tmp_path)


def test_cache_info_of_an_unknown_store_exits_2(tmp_path):
    done = _cache_cmd(tmp_path, "cache", "info", "--store", "nope://bucket/cache")
    assert done.returncode == 2
    assert "cannot open the cache store 'nope://bucket/cache'" in done.stderr
    assert "unknown store 'nope'" in done.stderr


def test_cache_clear_rejects_a_bad_duration(tmp_path):
    done = _cache_cmd(tmp_path, "cache", "clear", "--older-than", "soon")
    assert done.returncode == 2
    assert "invalid duration 'soon': use a number of seconds or parts like 30s" in done.stderr


# -- the demo -----------------------------------------------------------------------------


def test_demo_runs_and_its_second_run_hits_the_cache(tmp_path):
    demo = Path(__file__).resolve().parents[3] / "examples" / "demo.py"
    args = ("run", f"{demo}:sales_report", "--records", "400", "--batches", "4")
    args += ("--backend", "thread")
    first = daglite_cmd(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["records"] == 400
    assert sum(r["records"] for r in report["regions"].values()) == 400
    assert (tmp_path / ".daglite" / "datasets" / "reports" / "sales-400-7-fast.json").is_file()
    (ended,) = [r for r in _json_lines(first.stderr) if r["event"] == "session finished"]
    assert (ended["succeeded"], ended.get("cached", 0), ended.get("failed", 0)) == (6, 0, 0)
    second = daglite_cmd(args[0], "-v", *args[1:], cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == report
    (ended,) = [r for r in _json_lines(second.stderr) if r["event"] == "session finished"]
    assert (ended["succeeded"], ended["cached"]) == (0, 6)
    hits = [r["task"] for r in _json_lines(second.stderr) if r["event"] == "cache hit"]
    assert sorted(hits) == ["aggregate", "generate"] + [f"summarize[{i}]" for i in range(4)]
    assert not [r for r in _json_lines(second.stderr) if r["event"] == "task started"]


CACHED = """
from daglite import task, workflow


@task(cache=True)
def slow_square(x: int) -> int:
    return x * x


@workflow
def squares(n: int = 3) -> list[int]:
    return [slow_square(i) for i in range(n)]
"""


def test_cache_commands_on_a_real_store(tmp_path):
    (tmp_path / "cached.py").write_text(CACHED)
    done = daglite_cmd("run", "cached.py:squares", "--n", "3", "--log-level", "error", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    info = daglite_cmd("cache", "info", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "entries: 3" in info.stdout
    cleared = daglite_cmd("cache", "clear", cwd=tmp_path)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.startswith("removed 3 cache entries from ")
    assert "entries: 0" in daglite_cmd("cache", "info", cwd=tmp_path).stdout


def test_cache_clear_older_than_on_a_real_store(tmp_path):
    (tmp_path / "cached.py").write_text(CACHED)
    done = daglite_cmd("run", "cached.py:squares", "--n", "2", "--log-level", "error", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    kept = daglite_cmd("cache", "clear", "--older-than", "1h", cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.startswith("removed 0 cache entries older than 1h from ")
    assert "entries: 2" in daglite_cmd("cache", "info", cwd=tmp_path).stdout
    gone = daglite_cmd("cache", "clear", "--older-than", "0", cwd=tmp_path)
    assert gone.stdout.startswith("removed 2 cache entries older than 0 from ")


# -- pieces of the command line, in process -----------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "index"),
    [
        (["flows.py:wf"], 0),
        (["--backend", "thread", "flows.py:wf", "--n", "1"], 2),
        (["--backend=thread", "--traceback", "flows.py:wf"], 2),
        (["--plugin", "a", "--plugin", "b", "mod:wf"], 4),
        (["--", "-odd-name.py:wf"], 1),
        (["--backend", "thread"], None),
        ([], None),
    ],
)
def test_find_target(tokens, index):
    from daglite.cli.running import find_target

    assert find_target(tokens) == index


def test_split_target():
    from daglite.cli.targets import split_target

    assert split_target("pkg.mod:wf") == ("pkg.mod", "wf")
    assert split_target("path/to/file.py:wf") == ("path/to/file.py", "wf")
    assert split_target("pkg.mod") == ("pkg.mod", None)
    assert split_target("C:/x/file.py") == ("C:/x/file.py", None)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("1.5", 1.5), ("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800),
     ("1w", 604800), ("1h30m", 5400), (" 2H ", 7200)],
)  # fmt: skip
def test_parse_duration(text, seconds):
    from daglite.cli.cache import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [("-5", "--older-than must not be negative"), ("2x", "invalid duration '2x'"),
     ("1h 30m", "invalid duration '1h 30m'"), ("", "invalid duration ''")],
)  # fmt: skip
def test_parse_duration_rejects(text, message):
    from daglite.cli.cache import parse_duration
    from daglite.cli.targets import UsageError

    with pytest.raises(UsageError, match=message):
        parse_duration(text)
