"""The `jsonl` processor: every event of a session, one JSON object a line, in a file.

The file is opened in append mode on the first event, so several sessions (or runs) can
share one log; every line carries its session id. A line is the JSON of the event's
`to_dict()` (`json.dumps(..., default=repr, ensure_ascii=False)`, byte for byte).

Lines are kept in memory and written in batches: when a session, workflow or map ends,
when a task fails or times out, when a second has passed since the last write (checked
as events arrive), every 1,000 lines, and when the processor is closed. So the file is
complete when the session returns (also after Ctrl-C, which ends the session), and a
killed process loses at most its last second of events.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO
from typing import TYPE_CHECKING
from typing import Any

import attrs

from daglite.errors import PluginError
from daglite.events import Event

if TYPE_CHECKING:
    from daglite.settings import DagliteSettings

# Kinds after which the batch is written at once: what a report of a killed run needs.
_BOUNDARIES = frozenset({"SessionEnded", "WorkflowEnded", "MapEnded", "TaskFailed", "TaskTimedOut"})
_MAX_LINES = 1000


def _encoder() -> Callable[[Any], str]:
    """`json.dumps(obj, default=repr, ensure_ascii=False)`, without its per-call set-up.

    `json.dumps` builds an encoder for every call, which costs more than encoding a small
    event; the C encoder is built once here (the pure-Python one where it is missing).
    """
    encoder = json.JSONEncoder(default=repr, ensure_ascii=False, check_circular=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return encoder.encode
    try:
        iterencode = make(
            None, repr, json.encoder.encode_basestring, None, ": ", ", ", False, False, True
        )
    except TypeError:  # pragma: no cover - another signature: use the public way
        return encoder.encode

    def encode(obj: Any) -> str:
        return "".join(iterencode(obj, 0))

    return encode


_encode = _encoder()

# How one value is written, by the field's declared type: a fast path guarded by the
# value's exact type, and the general encoder for anything else (None, subclasses,
# non-finite floats, containers, values JSON cannot hold).
_BY_TYPE = {
    "str": "_str({v}) if type({v}) is str else _any({v})",
    "int": "_int({v}) if type({v}) is int else _any({v})",
    "float": "_float({v}) if type({v}) is float and _finite({v}) else _any({v})",
    "bool": "(_true if {v} else _false) if type({v}) is bool else _any({v})",
}
_NAMESPACE = {
    "_str": json.encoder.encode_basestring,
    "_int": int.__repr__,
    "_float": float.__repr__,
    "_finite": math.isfinite,
    "_true": "true",
    "_false": "false",
    "_any": _encode,
}


def _line_writer(cls: type[Event]) -> Callable[[Event], str]:
    """A function giving the JSON line (with its newline) of an event of class `cls`.

    It is the line `_encode(event.to_dict())` gives, built from a template of the
    class's fields instead of a dict: keys are encoded once, and each value by the
    cheapest way its declared type allows. The function's source is generated once per
    class (as attrs generates `__init__`): a loop over the fields would cost more than
    the encoding itself.
    """
    if cls.to_dict is not Event.to_dict:  # a class with its own mapping: honour it
        return lambda event: _encode(event.to_dict()) + "\n"
    parts = [f'"event": {_encode(cls.__name__)}']
    values = []
    for field in attrs.fields(cls):
        parts.append(f"{_encode(field.name)}: %s")
        declared = (
            field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
        )
        expression = _BY_TYPE.get(declared.removesuffix(" | None"), "_any({v})")
        if declared.endswith(" | None"):
            expression = "'null' if {v} is None else " + expression
        values.append("(" + expression.format(v=f"e.{field.name}") + ")")
    template = "{" + ", ".join(parts) + "}\n"
    source = f"def line(e):\n    return {template!r} % ({', '.join(values)},)\n"
    namespace = dict(_NAMESPACE)
    exec(compile(source, f"<jsonl line of {cls.__name__}>", "exec"), namespace)
    return namespace["line"]


# Per event class: its line writer, and whether the batch is written after it.
_writers: dict[type, tuple[Callable[[Event], str], bool]] = {}


class JsonlProcessor:
    """Appends each event's `to_dict()` as one JSON line to `path`.

    Values JSON cannot hold are written as their `repr`. Lines are written in batches
    (see the module's docstring); `flush_interval` is the most seconds a line waits in
    memory while events keep coming (`0` writes every line at once).

    Args:
        path: The file to append to (parent folders are created).
        flush_interval: Seconds between writes of the batch, at most.

    Raises:
        TypeError: `flush_interval` is not a number.
        ValueError: `flush_interval` is negative (or NaN).
    """

    def __init__(self, path: str | os.PathLike[str], flush_interval: float = 1.0) -> None:
        if isinstance(flush_interval, bool) or not isinstance(flush_interval, (int, float)):
            raise TypeError(f"flush_interval must be a number of seconds, not {flush_interval!r}")
        if not flush_interval >= 0:
            raise ValueError(
                f"flush_interval must be 0 or more seconds, not {flush_interval!r} "
                "(0 writes each line at once)"
            )
        self.path = Path(path)
        self.flush_interval = flush_interval
        self._file: IO[str] | None = None
        self._lines: list[str] = []
        self._due = 0.0  # monotonic time by which the batch is written

    @classmethod
    def from_settings(cls, settings: DagliteSettings) -> JsonlProcessor:
        """The processor writing to the `event_log` setting.

        Raises:
            PluginError: `event_log` is not set.
        """
        if not settings.event_log:
            raise PluginError(
                "the 'jsonl' processor needs a file to write to: set the event_log setting "
                "(DAGLITE_EVENT_LOG=path, event_log = 'path' in [tool.daglite], or "
                "daglite run --event-log path)"
            )
        processor = cls(settings.event_log)
        processor._open()  # an unwritable path fails now, when the session opens
        return processor

    def __repr__(self) -> str:
        return f"JsonlProcessor({str(self.path)!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "flush_interval": self.flush_interval}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state.get("flush_interval", 1.0))  # type: ignore[misc]

    def _open(self) -> IO[str]:
        """The log file, opened for appending (parent folders are made).

        Raises:
            PluginError: The file cannot be created or written (the message says which path
                and what to do).
        """
        if self._file is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            except OSError as exc:
                raise PluginError(
                    f"cannot write the event log '{self.path}': {type(exc).__name__}: "
                    f"{exc.strerror or exc}; choose a writable path (daglite run --event-log "
                    "PATH, DAGLITE_EVENT_LOG or event_log in [tool.daglite])"
                ) from None
        return self._file

    def __call__(self, event: Event) -> None:
        """Add `event` as one line (written with its batch; see the module's docstring)."""
        cls = type(event)
        found = _writers.get(cls)
        if found is None:
            found = _writers[cls] = (_line_writer(cls), cls.__name__ in _BOUNDARIES)
        line, boundary = found
        lines = self._lines
        lines.append(line(event))
        if boundary or len(lines) >= _MAX_LINES or time.monotonic() >= self._due:
            self.flush()

    def flush(self) -> None:
        """Write the lines kept in memory to the file, and the file to the system."""
        file = self._open()
        lines, self._lines = self._lines, []
        file.write("".join(lines))
        file.flush()
        self._due = time.monotonic() + self.flush_interval

    def close(self) -> None:
        """Write what is left and close the file (the session calls this when it ends)."""
        if self._lines:
            self.flush()
        file, self._file = self._file, None
        if file is not None:
            file.close()
