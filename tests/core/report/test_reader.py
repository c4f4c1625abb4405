"""The event-log reader of `daglite report`: what a killed run, a newer daglite or a shared
log leave in the file, and files that are not event logs at all."""

from __future__ import annotations

import json

import pytest

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.report.reader import EventLogReader
from daglite.report.reader import NotAnEventLog
from daglite.report.reader import known_kinds
from daglite.settings import DagliteSettings


@task
def double(x: int) -> int:
    return 2 * x


def record(log, n: int = 3) -> str:
    """Run a real session writing its events to `log`; its session id."""
    with session(settings=DagliteSettings(event_log=str(log), processors=())) as ctx:
        map_tasks(double, range(n))
    return ctx.session_id


def test_reads_every_event_of_a_real_log_in_order(tmp_path):
    log = tmp_path / "run.jsonl"
    sid = record(log)
    reader = EventLogReader(log)
    events = list(reader)
    assert [e["event"] for e in events][0] == "SessionStarted"
    assert [e["event"] for e in events][-1] == "SessionEnded"
    assert {e["session_id"] for e in events} == {sid}
    assert sum(e["event"] == "TaskSucceeded" for e in events) == 3
    assert reader.notes() == []


def test_a_cut_last_line_is_skipped_and_noted(tmp_path):
    log = tmp_path / "run.jsonl"
    record(log)
    lines = log.read_text().splitlines(keepends=True)
    cut = "".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2]  # killed mid-write
    log.write_text(cut)
    reader = EventLogReader(log)
    events = list(reader)
    assert len(events) == len(lines) - 1
    assert reader.cut_last_line
    assert reader.bad_lines == [len(lines)]
    (note,) = reader.notes()
    assert note.startswith(f"The log ends in a cut line (line {len(lines)})")


def test_corrupt_lines_in_the_middle_are_skipped_and_counted(tmp_path):
    log = tmp_path / "run.jsonl"
    record(log)
    lines = log.read_text().splitlines(keepends=True)
    lines[2:2] = ["\x00\x00garbage\n", '{"event": "TaskStarted"}\n', "[1, 2]\n", "\n"]
    log.write_text("".join(lines))
    reader = EventLogReader(log)
    assert len(list(reader)) == len(lines) - 4
    assert reader.bad_lines == [3, 4, 5]  # the blank line is not an error
    assert reader.notes() == [
        "3 line(s) of the log are not events and were skipped (line 3, 4, 5)."
    ]


def test_events_of_unknown_kinds_are_skipped_and_named(tmp_path):
    log = tmp_path / "run.jsonl"
    sid = record(log)
    newer = {"event": "ShardMoved", "session_id": sid, "timestamp": 1.0, "shard": 3}
    with log.open("a") as file:
        file.write(json.dumps(newer) + "\n")
        file.write(json.dumps({**newer, "shard": 4}) + "\n")
    reader = EventLogReader(log)
    assert "ShardMoved" not in {e["event"] for e in reader}
    assert reader.unknown == {"ShardMoved": 2}
    (note,) = reader.notes()
    assert "does not know (written by a newer version?)" in note
    assert "ShardMoved (2)" in note


def test_known_fields_added_by_a_newer_version_are_kept(tmp_path):
    log = tmp_path / "run.jsonl"
    record(log)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    lines[1]["added_in_v9"] = {"x": 1}
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert list(EventLogReader(log))[1]["added_in_v9"] == {"x": 1}


def test_sessions_sharing_a_log_are_told_apart(tmp_path):
    log = tmp_path / "run.jsonl"
    first = record(log, 2)
    second = record(log, 4)
    # interleave them, as two processes appending to one file would
    lines = log.read_text().splitlines(keepends=True)
    a = [line for line in lines if first in line]
    b = [line for line in lines if second in line]
    mixed = [line for pair in zip(a, b) for line in pair] + b[len(a) :]
    log.write_text("".join(mixed))
    per_session: dict[str, int] = {}
    for event in EventLogReader(log):
        if event["event"] == "TaskSucceeded":
            per_session[event["session_id"]] = per_session.get(event["session_id"], 0) + 1
    assert per_session == {first: 2, second: 4}


def test_nan_and_infinity_become_null(tmp_path):
    log = tmp_path / "run.jsonl"
    sid = record(log)
    with log.open("a") as file:
        fields = {"a": 0, "b": 1}
        line = json.dumps(
            {"event": "LogRecorded", "session_id": sid, "timestamp": 2.0, "level": "info",
             "message": "m", "fields": fields}
        )  # fmt: skip
        file.write(line.replace('"a": 0', '"a": NaN').replace('"b": 1', '"b": Infinity') + "\n")
    last = list(EventLogReader(log))[-1]
    assert last["fields"] == {"a": None, "b": None}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty: there are no events to report"),
        ("\n\n", "is empty: there are no events to report"),
        ("name,value\na,1\n", "is not a daglite event log (no line is a JSON event)"),
        ('{"a": 1}\n{"b": 2}\n', "is not a daglite event log (no line is a JSON event)"),
        ("\x89PNG\r\n\x1a\n\x00\x00", "is not a daglite event log"),
    ],
)
def test_a_file_that_is_not_an_event_log_is_refused(tmp_path, content, message):
    path = tmp_path / "input.txt"
    path.write_text(content)
    with pytest.raises(NotAnEventLog) as info:
        list(EventLogReader(path))
    assert str(info.value).startswith(f"{path} ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_long_file_with_no_event_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "big.txt"
    with path.open("w") as file:
        for i in range(100_000):
            file.write(f"line {i}\n")
    reader = EventLogReader(path)
    with pytest.raises(NotAnEventLog, match="is not a daglite event log"):
        list(reader)
    assert reader.lines == 20  # gave up after the probe lines


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(NotAnEventLog, match="cannot read .*nope.jsonl: No such file"):
        list(EventLogReader(tmp_path / "nope.jsonl"))


def test_known_kinds_are_the_event_classes():
    kinds = known_kinds()
    assert {"SessionStarted", "TaskFailed", "MapEnded", "LogRecorded"} <= kinds
    assert "TaskEvent" not in kinds
