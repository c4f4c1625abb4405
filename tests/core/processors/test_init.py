"""The `logging` and `jsonl` processors, in process (the command-line tests run them for real)."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from daglite import events as ev
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.errors import PluginError
from daglite.processors.eventlog import JsonlProcessor
from daglite.processors.logs import LoggingProcessor
from daglite.session import make_processor
from daglite.settings import DagliteSettings
from daglite.settings import load_settings


def _succeeded(**extra):
    fields = {
        "session_id": "s-1",
        "task_id": "t-1",
        "name": "square",
        "map_index": 3,
        "duration": 0.25,
    }
    return ev.TaskSucceeded(**{**fields, **extra})


def test_console_line_names_task_map_index_duration_and_status():
    out = io.StringIO()
    LoggingProcessor(level="debug", format="console", stream=out)(_succeeded())
    line = out.getvalue()
    assert line.count("\n") == 1
    assert "task finished" in line
    assert "task=square[3]" in line
    assert "duration=0.250s" in line
    assert "status=success" in line
    assert "task_id" not in line  # ids are for JSON lines


def test_json_line_keeps_ids_and_full_precision():
    out = io.StringIO()
    LoggingProcessor(level="debug", format="json", stream=out)(_succeeded(duration=0.123456))
    record = json.loads(out.getvalue())
    assert record["event"] == "task finished"
    assert record["level"] == "debug"
    assert record["task"] == "square[3]"
    assert record["map_index"] == 3
    assert record["task_id"] == "t-1"
    assert record["duration"] == 0.123456
    assert record["status"] == "success"
    assert record["timestamp"].startswith("20")


def test_json_lines_are_what_structlogs_json_renderer_writes():
    import structlog

    from daglite.processors.logs import _json_line

    record = {
        "timestamp": "2026-01-01T00:00:00.000+00:00",
        "level": "info",
        "event": "task finished",
        "path": Path("a/b"),
        "items": {1},
        "text": 'caf\u00e9 "q"\n',
        "nested": {"n": [1.5, None, True]},
    }
    expected = structlog.processors.JSONRenderer(default=repr)(None, "info", dict(record))
    assert _json_line(None, "info", record) == expected


def test_json_lines_do_not_import_structlog():
    code = (
        "import sys\n"
        "from daglite import session, task\n"
        "from daglite.settings import DagliteSettings\n"
        "@task\n"
        "def f(x):\n"
        "    return x\n"
        "with session(settings=DagliteSettings(log_format='json')):\n"
        "    f(1)\n"
        "print('structlog' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "False\n"
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["session started", "session finished"]
    assert lines[1]["succeeded"] == 1


def test_auto_format_is_json_off_a_terminal():
    out = io.StringIO()
    LoggingProcessor(stream=out)(ev.SessionStarted(session_id="s", backend="inline"))
    json.loads(out.getvalue())


@pytest.mark.parametrize(
    ("event", "level", "message", "expect"),
    [
        (
            ev.TaskStarted(session_id="s", task_id="t", name="load"),
            "debug",
            "task started",
            {"task": "load", "status": "running"},
        ),
        (
            ev.TaskFailed(
                session_id="s",
                task_id="t",
                name="load",
                map_index=1,
                duration=0.5,
                attempts=2,
                error_type="ValueError",
                error_message="boom",
            ),
            "error",
            "task failed",
            {"task": "load[1]", "status": "failure", "error": "ValueError: boom", "attempts": 2},
        ),
        (
            ev.TaskRetried(
                session_id="s",
                task_id="t",
                name="load",
                attempt=1,
                delay=0.5,
                error_type="OSError",
                error_message="flaky",
            ),
            "warning",
            "task retrying",
            {"status": "retry", "attempt": 1, "error": "OSError: flaky"},
        ),
        (
            ev.CacheHit(session_id="s", task_id="t", name="load", key="abc"),
            "debug",
            "cache hit",
            {"status": "cached", "key": "abc"},
        ),
        (
            ev.TaskTimedOut(session_id="s", task_id="t", name="load", attempt=1, timeout=2.0),
            "warning",
            "task timed out",
            {"status": "timeout", "timeout": 2.0},
        ),
        (
            ev.LogRecorded(
                session_id="s", level="warning", message="odd row", name="clean", fields={"row": 7}
            ),
            "warning",
            "odd row",
            {"task": "clean", "row": 7},
        ),
    ],
)
def test_each_kind_of_line(event, level, message, expect):
    out = io.StringIO()
    LoggingProcessor(level="debug", format="json", stream=out)(event)
    record = json.loads(out.getvalue())
    assert record["level"] == level
    assert record["event"] == message
    for key, value in expect.items():
        assert record[key] == value


def test_level_filters_lines_and_cached_successes_are_debug():
    out = io.StringIO()
    processor = LoggingProcessor(level="warning", format="json", stream=out)
    processor(_succeeded())
    processor(ev.CacheMissed(session_id="s", task_id="t", name="x", key="k"))
    assert out.getvalue() == ""
    out = io.StringIO()
    LoggingProcessor(level="info", format="json", stream=out)(_succeeded(cached=True))
    assert out.getvalue() == ""  # each successful call is a debug line
    LoggingProcessor(level="debug", format="json", stream=out)(_succeeded(cached=True))
    assert json.loads(out.getvalue())["status"] == "cached"


def test_unknown_event_kinds_are_logged_at_debug_with_their_fields():
    out = io.StringIO()
    LoggingProcessor(level="debug", format="json", stream=out)(
        ev.MapStarted(session_id="s", map_id="m", name="sq", backend="thread", total=4)
    )
    record = json.loads(out.getvalue())
    assert (record["event"], record["map"], record["total"]) == ("map started", "sq", 4)


def test_bad_level_and_format_are_rejected_with_choices():
    with pytest.raises(ValueError, match="unknown log level 'loud'; expected one of debug"):
        LoggingProcessor(level="loud")
    with pytest.raises(ValueError, match="unknown log format 'xml'; expected one of auto"):
        LoggingProcessor(format="xml")


def test_processors_pickle():
    out = LoggingProcessor(level="debug", format="console")
    out(_succeeded())  # builds (unpicklable) renderer state
    copy = pickle.loads(pickle.dumps(out))
    assert (copy.level, copy.format) == ("debug", "console")
    jsonl = pickle.loads(pickle.dumps(JsonlProcessor("x/events.jsonl")))
    assert str(jsonl.path) == "x/events.jsonl"


def test_logging_is_the_default_processor(monkeypatch):
    assert DagliteSettings().processors == ("logging",)
    monkeypatch.setenv("DAGLITE_PROCESSORS", "")
    assert load_settings().processors == ()


def test_processors_come_from_entry_points_with_their_settings(tmp_path):
    log = str(tmp_path / "ev.jsonl")
    settings = DagliteSettings(log_level="error", log_format="json", event_log=log)
    logging = make_processor("logging", settings)
    assert isinstance(logging, LoggingProcessor)
    assert (logging.level, logging.format) == ("error", "json")
    jsonl = make_processor("jsonl", settings)
    assert isinstance(jsonl, JsonlProcessor)
    assert jsonl.path.name == "ev.jsonl"
    jsonl.close()


def test_jsonl_needs_a_file():
    with pytest.raises(PluginError, match="'jsonl' processor needs a file to write to"):
        JsonlProcessor.from_settings(DagliteSettings())


@task
def square(x: int) -> int:
    return x * x


@task
def broken(x: int) -> int:
    raise KeyError(f"no {x}")


def test_event_log_is_complete_when_the_session_returns(tmp_path):
    path = tmp_path / "logs" / "events.jsonl"
    settings = DagliteSettings(processors=(), event_log=str(path))  # jsonl joins on its own
    with session(settings=settings, backend="thread") as ctx:
        assert map_tasks(square, [1, 2, 3]) == [1, 4, 9]
        with pytest.raises(Exception, match="no 5"):
            broken(5)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    kinds = [r["event"] for r in records]
    assert kinds[0] == "SessionStarted" and kinds[-1] == "SessionEnded"
    assert kinds.count("TaskSucceeded") == 3
    assert {r["session_id"] for r in records} == {ctx.session_id}
    started = [r for r in records if r["event"] == "MapStarted"][0]
    items = [r for r in records if r["event"] == "TaskSucceeded"]
    assert sorted(r["map_index"] for r in items) == [0, 1, 2]
    assert {r["map_id"] for r in items} == {started["map_id"]}
    assert all(r["duration"] >= 0 for r in items)
    failed = [r for r in records if r["event"] == "TaskFailed"][0]
    assert failed["error_type"] == "KeyError"
    assert failed["error_message"] == "'no 5'"
    assert "Traceback" in failed["traceback"]


def test_event_log_appends_across_sessions(tmp_path):
    path = tmp_path / "events.jsonl"
    settings = DagliteSettings(processors=("jsonl",), event_log=str(path))
    for _ in range(2):
        with session(settings=settings):
            square(2)
    sessions = {json.loads(line)["session_id"] for line in path.read_text().splitlines()}
    assert len(sessions) == 2


def test_processors_package_exports_both_lazily():
    import daglite.processors as package

    assert package.JsonlProcessor is JsonlProcessor
    assert package.LoggingProcessor is LoggingProcessor
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        package.Nope  # noqa: B018


def test_a_processor_instance_for_one_session(tmp_path):
    path = tmp_path / "one.jsonl"
    with session(plugins=[JsonlProcessor(path)]):
        square(3)
    kinds = [json.loads(line)["event"] for line in path.read_text().splitlines()]
    assert kinds == ["SessionStarted", "TaskStarted", "TaskSucceeded", "SessionEnded"]


def test_console_shortens_cache_hashes_but_not_dataset_keys():
    out = io.StringIO()
    processor = LoggingProcessor(level="debug", format="console", stream=out)
    processor(ev.CacheHit(session_id="s", task_id="t", name="x", key="0123456789abcdef0123"))
    processor(
        ev.DatasetSaved(
            session_id="s", key="reports/sales-5000-7.json", store="/d", format=None, duration=0.1
        )
    )
    hit, saved = out.getvalue().splitlines()
    assert "key=0123456789ab..." in hit
    assert "key=reports/sales-5000-7.json" in saved
