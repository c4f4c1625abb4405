"""Reading a JSON-lines event log one line at a time, tolerating what a killed run leaves.

The log is never loaded whole: `EventLogReader` yields one event (a dict) per line. A line
that is not a JSON object with an `event` kind and a `session_id` (a line cut short by a
killed run, garbage from another writer) is skipped and counted; so are events of kinds
this daglite version does not know (written by a newer one). What was skipped is kept in
`notes` for the report to show. A file in which none of the first lines is an event is
not an event log at all: `NotAnEventLog`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from daglite.errors import DagliteError

#: How many leading non-empty lines may fail to parse before the file is rejected.
PROBE_LINES = 20


class ReportError(DagliteError, ValueError):
    """A report cannot be built from what it was given (the message says why)."""


class NotAnEventLog(ReportError):
    """The file given to `daglite report` is not a daglite event log."""


def known_kinds() -> frozenset[str]:
    """The event kinds this daglite version defines (`daglite.events` classes)."""
    from daglite import events

    found: set[str] = set()
    pending = [events.Event]
    while pending:
        cls = pending.pop()
        found.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    found.discard("TaskEvent")  # an abstract base, never written on its own
    return frozenset(found)


class EventLogReader:
    """Iterates over the events of a JSON-lines event log, one dict per event.

    Args:
        path: The event log (as written by the `jsonl` processor).

    Attributes:
        lines: Non-empty lines read so far.
        bad_lines: Line numbers (1-based) of lines that are not events.
        cut_last_line: True if the last line has no line end and is not an event (the
            writer was stopped in the middle of it).
        unknown: Count of skipped events per unknown kind.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.lines = 0
        self.bad_lines: list[int] = []
        self.cut_last_line = False
        self.unknown: dict[str, int] = {}
        self._kinds = known_kinds()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            file = open(self.path, encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as exc:
            raise NotAnEventLog(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        with file:
            good = 0
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                self.lines += 1
                event = _parse(line)
                if event is None:
                    self.bad_lines.append(number)
                    if not line.endswith("\n"):
                        self.cut_last_line = True
                    if good == 0 and self.lines >= PROBE_LINES:
                        raise self._rejected()
                    continue
                good += 1
                kind = event["event"]
                if kind not in self._kinds:
                    self.unknown[kind] = self.unknown.get(kind, 0) + 1
                    continue
                yield event
            if good == 0:
                raise self._rejected()

    def _rejected(self) -> NotAnEventLog:
        if self.lines == 0:
            return NotAnEventLog(f"{self.path} is empty: there are no events to report")
        return NotAnEventLog(
            f"{self.path} is not a daglite event log (no line is a JSON event); write one "
            "with daglite run --event-log PATH or DAGLITE_EVENT_LOG=PATH"
        )

    def notes(self) -> list[str]:
        """What was skipped, in sentences for the report (empty when nothing was)."""
        notes = []
        bad = self.bad_lines
        if self.cut_last_line:
            notes.append(
                f"The log ends in a cut line (line {bad[-1]}): the run was probably stopped "
                "while writing it. This report shows the events before it."
            )
            bad = bad[:-1]
        if bad:
            shown = ", ".join(str(n) for n in bad[:5]) + (" ..." if len(bad) > 5 else "")
            notes.append(
                f"{len(bad)} line(s) of the log are not events and were skipped (line {shown})."
            )
        if self.unknown:
            kinds = ", ".join(f"{k} ({n})" for k, n in sorted(self.unknown.items()))
            notes.append(
                "Events of kinds this daglite version does not know (written by a newer "
                f"version?) were skipped: {kinds}."
            )
        return notes


def _no_constant(name: str) -> None:
    return None  # NaN and Infinity: a browser's JSON cannot hold them


_decode = json.JSONDecoder(parse_constant=_no_constant).decode  # one decoder for every line


def _parse(line: str) -> dict[str, Any] | None:
    try:
        event = _decode(line)
    except ValueError:
        return None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("event"), str)
        or not isinstance(event.get("session_id"), str)
        or not isinstance(event.get("timestamp"), (int, float))
    ):
        return None
    return event
