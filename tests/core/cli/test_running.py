"""`daglite run TARGET`: a command built from the workflow's signature, run in subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daglite import registry

from .conftest import _env
from .conftest import _json_lines
from .conftest import daglite_cmd


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


@pytest.mark.parametrize("backend", ["inline", "process"])
def test_a_task_asking_for_a_missing_plugin_exits_2_on_every_backend(tmp_path, backend):
    (tmp_path / "asks.py").write_text(
        "from daglite import map_tasks, session, task, workflow\n"
        "@task\n"
        "def inner(x):\n"
        "    with session(backend='nosuchbackend'):\n"
        "        return x\n"
        "@workflow\n"
        "def flow():\n"
        "    return map_tasks(inner, range(2))\n"
    )
    done = daglite_cmd("run", "asks.py:flow", "--backend", backend, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "daglite: error: unknown backend 'nosuchbackend'; installed backends: inline, process, "
        "thread; see: daglite plugins"
    )
    assert done.stdout == ""
