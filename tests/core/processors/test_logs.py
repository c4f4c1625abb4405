"""The `logging` processor: what it writes in real processes with standard error piped, and
each kind of line in process."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daglite import events as ev
from daglite.processors.logs import LoggingProcessor


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGLITE_")}
    env.update(extra)  # no DAGLITE_PLUGINS: the defaults, as a user gets them
    return env


def _run(code: str, tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(**env),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


BIG_MAP = """
from daglite import map_tasks, session, task

@task
def inc(x: int) -> int:
    return x + 1

with session(backend="{backend}"):
    assert map_tasks(inc, range(10_000)) == list(range(1, 10_001))
"""


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_ten_thousand_item_map_writes_a_handful_of_lines(tmp_path, backend):
    done = _run(BIG_MAP.format(backend=backend), tmp_path)
    lines = _lines(done.stderr)
    assert len(lines) <= 20
    events = [line["event"] for line in lines]
    assert events[:2] == ["session started", "map started"]
    assert events[-2:] == ["map finished", "session finished"]
    assert set(events[2:-2]) <= {"map progress"}
    ended = lines[-2]
    assert (ended["done"], ended["failed"], ended["total"]) == (10_000, 0, 10_000)
    assert lines[-1]["succeeded"] == 10_000


def test_line_counts_at_each_level(tmp_path):
    code = BIG_MAP.format(backend="thread")
    assert _run(code, tmp_path, DAGLITE_LOG_LEVEL="warning").stderr == ""
    debug = _lines(_run(code, tmp_path, DAGLITE_LOG_LEVEL="debug").stderr)
    started = [line for line in debug if line["event"] == "task started"]
    finished = [line for line in debug if line["event"] == "task finished"]
    assert len(started) == len(finished) == 10_000
    assert {line["level"] for line in started + finished} == {"debug"}


def test_failures_retries_and_timeouts_each_get_a_line(tmp_path):
    code = """
    from daglite import map_tasks, session, task, get_logger, save_dataset

    tries = {}

    @task(retries=1)
    def flaky(x: int) -> int:
        tries[x] = tries.get(x, 0) + 1
        if x == 2 and tries[x] == 1:
            raise OSError("try again")
        if x == 5:
            get_logger().warning("five is odd", x=x)
            raise ValueError("five")
        return x

    @task
    def report() -> None:
        save_dataset("report.json", {"ok": True})

    with session(backend="thread"):
        map_tasks(flaky, range(8), return_exceptions=True)
        for _ in range(50):  # successful direct calls are debug lines
            flaky(1)
        report()
    """
    lines = _lines(_run(code, tmp_path).stderr)
    by_event: dict[str, list[dict]] = {}
    for line in lines:
        by_event.setdefault(line["event"], []).append(line)
    retry, retry_five = sorted(by_event["task retrying"], key=lambda line: line["map_index"])
    assert (retry["task"], retry["map_index"], retry["level"]) == ("flaky[2]", 2, "warning")
    assert retry["error"] == "OSError: try again"
    assert retry_five["error"] == "ValueError: five"
    failed = by_event["task failed"]
    assert [(f["task"], f["map_index"]) for f in failed] == [("flaky[5]", 5)] * 1
    assert "ValueError: five" in failed[0]["error"]
    first, second = by_event["five is odd"]  # one record per attempt
    assert (first["level"], first["task"], first["x"]) == ("warning", "flaky[5]", 5)
    assert "attempt" not in first and second["attempt"] == 2
    (ended,) = by_event["map finished"]
    assert (ended["done"], ended["failed"], ended["retried"], ended["total"]) == (7, 1, 2, 8)
    assert ended["level"] == "warning"
    (saved,) = by_event["dataset saved"]
    assert saved["key"] == "report.json"
    (session_end,) = by_event["session finished"]
    assert session_end["succeeded"] == 7 + 50 + 1
    assert (session_end["failed"], session_end["retried"], session_end["saved"]) == (1, 2, 1)
    assert "task finished" not in by_event and "task started" not in by_event
    assert len(lines) == 10


INTERRUPTED = """
import time
from daglite import map_tasks, session, task
from daglite.processors.logs import LoggingProcessor
from daglite.settings import DagliteSettings

@task
def slow(x: int) -> int:
    time.sleep(0.05)
    return x

logs = LoggingProcessor(format="json", progress_every=0.0)  # every progress update a line
with session(backend="{backend}", settings=DagliteSettings(plugins=()), plugins=[logs]):
    map_tasks(slow, range(2_000))
"""


@pytest.mark.parametrize("backend", ["inline", "thread", "process"])
def test_ctrl_c_still_ends_the_map_with_counts_that_add_up(tmp_path, backend):
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED.format(backend=backend))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_env(),
    )
    try:
        lines = []
        for raw in proc.stderr:  # wait until the map shows progress (bounded by the timeout)
            if raw.startswith("{"):
                lines.append(json.loads(raw))
                if lines[-1]["event"] == "map progress" and lines[-1]["done"] > 0:
                    break
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    lines += [json.loads(raw) for raw in rest.splitlines() if raw.startswith("{")]
    (ended,) = [line for line in lines if line["event"] == "map finished"]
    assert ended["total"] == 2_000
    assert ended["done"] > 0
    counted = ended["done"] + ended["cached"] + ended["failed"] + ended.get("skipped", 0)
    assert counted == ended["total"]
    assert ended["skipped"] > 0
    progress = [line for line in lines if line["event"] == "map progress"]
    assert all(p["done"] <= ended["done"] for p in progress)
    (session_end,) = [line for line in lines if line["event"] == "session failed"]
    assert session_end["error"].startswith("KeyboardInterrupt")
    assert session_end["succeeded"] >= ended["done"]  # thread items in flight finish later


# -- the processor alone ------------------------------------------------------------------


def _progress(elapsed: float, done: int) -> ev.MapProgress:
    return ev.MapProgress(
        session_id="s",
        map_id="m",
        name="sq",
        total=100,
        done=done,
        cached=0,
        failures=0,
        retried=0,
        elapsed=elapsed,
    )


def test_progress_lines_are_spaced_by_progress_every():
    out = io.StringIO()
    logs = LoggingProcessor(format="json", stream=out, progress_every=5.0)
    for elapsed, done in ((1.0, 2), (4.0, 8), (5.5, 11), (7.0, 14), (11.0, 22)):
        logs(_progress(elapsed, done))
    lines = _lines(out.getvalue())
    assert [line["progress"] for line in lines] == ["11/100", "22/100"]
    assert lines[0]["rate"] == "2.0/s"
    assert lines[0]["eta"] == pytest.approx(89 * 5.5 / 11)


def test_datasets_saved_in_maps_are_debug_lines():
    out = io.StringIO()
    logs = LoggingProcessor(format="json", stream=out)
    fields = {"session_id": "s", "store": "/d", "format": "json", "duration": 0.1}
    logs(ev.DatasetSaved(key="in-map.json", map_index=3, **fields))
    logs(ev.DatasetSaved(key="alone.json", **fields))
    assert [line["key"] for line in _lines(out.getvalue())] == ["alone.json"]


@pytest.mark.parametrize(
    ("level", "kinds"),
    [
        ("error", {"TaskFailed", "WorkflowEnded", "SessionEnded", "LogRecorded"}),
        ("warning", {"TaskFailed", "TaskRetried", "TaskTimedOut", "MapEnded"}),
        ("info", {"SessionStarted", "MapStarted", "MapProgress", "DatasetSaved", "MapEnded"}),
    ],
)
def test_the_processor_asks_only_for_what_its_level_writes(level, kinds):
    interest = LoggingProcessor(level=level).interest
    assert kinds <= interest.kinds
    assert "TaskStarted" not in interest.kinds and "TaskSucceeded" not in interest.kinds
    assert interest.log_level == level
    assert LoggingProcessor(level="debug").interest.kinds is None


# -- lines and their fields, in process ----------------------------------------------------


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
