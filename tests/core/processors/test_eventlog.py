"""The `jsonl` event log: the bytes of each line, and when lines reach the file.

Lines are written in batches; these tests pin down what is on disk when: after a session
(also one ended by Ctrl-C in a real `daglite run`), after a failure, after a killed run.
"""

from __future__ import annotations

import enum
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time

import attrs
import pytest

from daglite import events as ev
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.errors import PluginError
from daglite.processors.eventlog import JsonlProcessor
from daglite.report.reader import EventLogReader
from daglite.settings import DagliteSettings


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    pass


class Opaque:
    def __repr__(self) -> str:
        return "<opaque ü>"


def started(**extra):
    return ev.TaskStarted(session_id="s-1", task_id="t-1", name="square", **extra)


def lines_of(path) -> list[str]:
    """The lines of `path` (only "\\n" ends one: U+2028 inside a string does not)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="\n") as file:
        return list(file)


def test_each_line_is_json_dumps_of_to_dict_byte_for_byte(tmp_path):
    odd = [
        started(),
        ev.TaskSucceeded(
            session_id=Name('ñ "quoted"\n\u2028 😀'),  # a str subclass, unicode, escapes
            task_id="t",
            name="日本",
            duration=math.nan,
            attempts=True,  # a bool where an int is declared
            map_index=Color.RED,  # an int subclass
            pid=None,  # None where it is not optional
            thread=Opaque(),  # JSON cannot hold it: its repr
            cached=1,
            timestamp=3,  # an int where a float is declared
        ),
        ev.TaskSucceeded(session_id="s", task_id="t", name="n", duration=math.inf, attempts=2**70),
        ev.TaskFailed(
            session_id="s",
            task_id="t",
            name="n%s%%",
            duration=-math.inf,
            attempts=1,
            error_type="E",
            error_message="100% {braces}",
            arguments={"a": "b", "c": [1, 2.5, None, {"d": Opaque()}]},
        ),
        ev.SessionEnded(session_id="s", status="success", duration=0.5),
    ]
    path = tmp_path / "odd.jsonl"
    processor = JsonlProcessor(path)
    for event in odd:
        processor(event)
    processor.close()
    expected = [json.dumps(e.to_dict(), default=repr, ensure_ascii=False) + "\n" for e in odd]
    assert path.read_bytes() == "".join(expected).encode("utf-8")
    second = json.loads(lines_of(path)[1])
    assert second["session_id"] == 'ñ "quoted"\n\u2028 😀' and second["name"] == "日本"
    assert second["thread"] == "<opaque ü>" and second["pid"] is None
    assert second["attempts"] is True and second["map_index"] == 1
    assert [e["event"] for e in EventLogReader(path)] == [e.kind for e in odd]


@attrs.frozen(kw_only=True)
class Custom(ev.Event):
    secret: str = "hidden"

    def to_dict(self):
        return {"event": "Custom", "session_id": self.session_id, "shown": "yes"}


def test_an_event_class_with_its_own_to_dict_is_written_by_it(tmp_path):
    path = tmp_path / "custom.jsonl"
    processor = JsonlProcessor(path)
    processor(Custom(session_id="s"))
    processor.close()
    assert json.loads(path.read_text()) == {"event": "Custom", "session_id": "s", "shown": "yes"}


def test_lines_wait_for_a_failure_to_reach_the_file(tmp_path):
    path = tmp_path / "batch.jsonl"
    processor = JsonlProcessor(path, flush_interval=3600)
    processor(
        ev.SessionStarted(session_id="s-1", backend="inline")
    )  # the first line is written at once
    assert len(lines_of(path)) == 1
    processor(started())
    processor(started())
    assert len(lines_of(path)) == 1  # kept in memory
    processor(
        ev.TaskFailed(
            session_id="s-1",
            task_id="t-1",
            name="square",
            duration=0.1,
            attempts=1,
            error_type="KeyError",
            error_message="'x'",
        )
    )
    kinds = [json.loads(line)["event"] for line in lines_of(path)]
    assert kinds == ["SessionStarted", "TaskStarted", "TaskStarted", "TaskFailed"]
    processor.close()


def test_a_thousand_lines_are_written_without_waiting(tmp_path):
    path = tmp_path / "many.jsonl"
    processor = JsonlProcessor(path, flush_interval=3600)
    for index in range(1001):
        processor(started(map_index=index))
    assert len(lines_of(path)) == 1001  # the first line, then a batch of 1,000
    processor(started())
    assert len(lines_of(path)) == 1001
    processor.close()
    assert len(lines_of(path)) == 1002


def test_flush_interval_zero_writes_every_line_at_once(tmp_path):
    path = tmp_path / "each.jsonl"
    processor = JsonlProcessor(path, flush_interval=0)
    for count in range(1, 4):
        processor(started(map_index=count))
        assert [json.loads(line)["map_index"] for line in lines_of(path)] == [*range(1, count + 1)]
    processor.close()


def test_the_flush_interval_survives_pickling(tmp_path):

    copy = pickle.loads(pickle.dumps(JsonlProcessor(tmp_path / "x.jsonl", flush_interval=0.25)))
    assert (copy.path, copy.flush_interval) == (tmp_path / "x.jsonl", 0.25)


SLOW = (
    "import time\n"
    "from pathlib import Path\n"
    "from daglite import map_tasks, task, workflow\n"
    "@task\ndef quick(x: int) -> int:\n    return x\n"
    "@task\ndef wait() -> None:\n"
    "    Path('started').touch()\n"
    "    while True:\n        time.sleep(0.05)\n"
    "@workflow\ndef slow() -> None:\n    map_tasks(quick, range(5))\n    wait()\n"
)


def run_until_started(tmp_path) -> subprocess.Popen[str]:
    (tmp_path / "slow.py").write_text(SLOW)
    proc = subprocess.Popen(
        [sys.executable, "-m", "daglite.cli", "run", "slow.py:slow", "--event-log", "ev.jsonl"],
        cwd=tmp_path,
        env={**os.environ, "DAGLITE_PROCESSORS": ""},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():  # the endless task is running
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return proc


def test_ctrl_c_on_daglite_run_leaves_a_complete_event_log(tmp_path):
    proc = run_until_started(tmp_path)
    try:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        proc.kill()
        proc.communicate()
    records = [json.loads(line) for line in lines_of(tmp_path / "ev.jsonl")]
    kinds = [r["event"] for r in records]
    assert kinds[0] == "SessionStarted" and kinds[-1] == "SessionEnded"
    assert kinds.count("TaskSucceeded") == 5 and "MapEnded" in kinds
    (failed,) = [r for r in records if r["event"] == "TaskFailed"]
    assert (failed["name"], failed["error_type"]) == ("wait", "KeyboardInterrupt")
    assert records[-1]["status"] == "failure"


def test_a_killed_run_leaves_a_log_the_report_reader_reads(tmp_path):
    proc = run_until_started(tmp_path)
    try:
        proc.kill()  # SIGKILL: no Python code runs any more
        proc.wait(timeout=60)
    finally:
        proc.communicate()
    events = list(EventLogReader(tmp_path / "ev.jsonl"))
    kinds = [e["event"] for e in events]
    # A map's end is a boundary: everything up to it is on disk; what came after (the
    # endless task's start) may have been in memory.
    assert kinds[0] == "SessionStarted" and "MapEnded" in kinds
    assert kinds.count("TaskSucceeded") == 5
    assert "SessionEnded" not in kinds


@pytest.mark.parametrize(
    ("interval", "error", "message"),
    [
        (-1, ValueError, r"flush_interval must be 0 or more seconds, not -1 \(0 writes each"),
        (math.nan, ValueError, "flush_interval must be 0 or more seconds, not nan"),
        ("1", TypeError, "flush_interval must be a number of seconds, not '1'"),
        (True, TypeError, "flush_interval must be a number of seconds, not True"),
    ],
)
def test_a_bad_flush_interval_is_refused_with_what_to_give(tmp_path, interval, error, message):
    with pytest.raises(error, match=message):
        JsonlProcessor(tmp_path / "x.jsonl", flush_interval=interval)
    assert not (tmp_path / "x.jsonl").exists()


# -- the processor in sessions -------------------------------------------------------------


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


def test_a_processor_instance_for_one_session(tmp_path):
    path = tmp_path / "one.jsonl"
    with session(plugins=[JsonlProcessor(path)]):
        square(3)
    kinds = [json.loads(line)["event"] for line in path.read_text().splitlines()]
    assert kinds == ["SessionStarted", "TaskStarted", "TaskSucceeded", "SessionEnded"]


def test_an_unwritable_event_log_fails_when_the_session_opens(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):  # root ignores permissions: use a path below a file
        folder = tmp_path / "a-file"
        folder.write_text("")
    path = folder / "events.jsonl"
    ran = []
    with (
        pytest.raises(PluginError) as info,
        session(settings=DagliteSettings(event_log=str(path))),
    ):
        ran.append(1)
    assert ran == []
    assert str(info.value).startswith(f"cannot write the event log '{path}': ")
    assert str(info.value).endswith(
        "; choose a writable path (daglite run --event-log PATH, DAGLITE_EVENT_LOG or "
        "event_log in [tool.daglite])"
    )
    assert not path.exists()
