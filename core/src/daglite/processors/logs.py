"""The `logging` processor: events rendered as log lines.

On a terminal each line is readable (`console` format, rendered by structlog); otherwise,
or when asked with `log_format="json"`, each line is one JSON object. Which events make a
line, and at which level, is decided by `describe()`; the level setting filters them
before anything is rendered.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from datetime import datetime
from typing import IO
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from daglite.events import Event
    from daglite.settings import DagliteSettings

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
FORMATS = ("auto", "console", "json")


def _task(event: Any) -> str:
    index = getattr(event, "map_index", None)
    return event.name if index is None else f"{event.name}[{index}]"


def _task_fields(event: Any) -> dict[str, Any]:
    return {
        "task": _task(event),
        "task_id": event.task_id,
        "map_index": event.map_index,
    }


def describe(event: Event) -> tuple[str, str, dict[str, Any]] | None:
    """The level, message and fields of the log line for `event` (`None`: no line).

    Args:
        event: Any daglite event; kinds this module does not know are logged at debug level
            with all their fields.
    """
    kind = event.kind
    e: Any = event
    if kind == "TaskStarted":
        return "info", "task started", {**_task_fields(e), "status": "running"}
    if kind == "TaskSucceeded":
        fields = {**_task_fields(e), "duration": e.duration, "status": "success"}
        if e.cached:  # the CacheHit line already said it
            return "debug", "task finished", {**fields, "status": "cached"}
        if e.attempts > 1:
            fields["attempts"] = e.attempts
        return "info", "task finished", fields
    if kind == "TaskFailed":
        return (
            "error",
            "task failed",
            {
                **_task_fields(e),
                "duration": e.duration,
                "status": "failure",
                "attempts": e.attempts,
                "error": f"{e.error_type}: {e.error_message}",
            },
        )
    if kind == "TaskRetried":
        return (
            "warning",
            "task retrying",
            {
                **_task_fields(e),
                "status": "retry",
                "attempt": e.attempt,
                "delay": e.delay,
                "error": f"{e.error_type}: {e.error_message}",
            },
        )
    if kind == "TaskTimedOut":
        return (
            "warning",
            "task timed out",
            {**_task_fields(e), "status": "timeout", "attempt": e.attempt, "timeout": e.timeout},
        )
    if kind == "CacheHit":
        return "info", "cache hit", {**_task_fields(e), "status": "cached", "key": e.key}
    if kind == "CacheMissed":
        return "debug", "cache miss", {**_task_fields(e), "key": e.key, "reason": e.reason}
    if kind in ("WorkflowStarted", "WorkflowEnded"):
        return _workflow(e)
    if kind == "MapStarted":
        return "info", "map started", {"map": e.name, "backend": e.backend, "total": e.total}
    if kind == "MapEnded":
        level = "warning" if e.failures else "info"
        return (
            level,
            "map finished",
            {"map": e.name, "total": e.total, "failures": e.failures, "duration": e.duration},
        )
    if kind in ("DatasetSaved", "DatasetLoaded"):
        verb = "saved" if kind == "DatasetSaved" else "loaded"
        level = "info" if kind == "DatasetSaved" else "debug"
        return level, f"dataset {verb}", {"key": e.key, "store": e.store, "duration": e.duration}
    if kind == "SessionStarted":
        return "debug", "session started", {"session_id": e.session_id, "backend": e.backend}
    if kind == "SessionEnded":
        fields = {"session_id": e.session_id, "duration": e.duration, "status": e.status}
        if e.error_type:
            fields["error"] = f"{e.error_type}: {e.error_message}"
        return "debug", "session finished", fields
    if kind == "LogRecorded":
        fields = _task_fields(e) if e.name is not None else {}
        return e.level, e.message, {**fields, **e.fields}
    fields = event.to_dict()
    fields.pop("event", None)
    fields.pop("timestamp", None)
    return "debug", kind, fields


def _workflow(e: Any) -> tuple[str, str, dict[str, Any]]:
    if e.kind == "WorkflowStarted":
        return "info", "workflow started", {"workflow": e.name, "workflow_id": e.workflow_id}
    fields = {"workflow": e.name, "duration": e.duration, "status": e.status}
    if e.status != "success":
        fields["error"] = f"{e.error_type}: {e.error_message}"
        return "error", "workflow failed", fields
    return "info", "workflow finished", fields


class LoggingProcessor:
    """Renders events as log lines on a stream (standard error by default).

    Args:
        level: The lowest level written: `"debug"`, `"info"`, `"warning"` or `"error"`.
        format: `"console"` (readable, coloured on a terminal), `"json"` (one JSON object a
            line) or `"auto"` (console on a terminal, JSON otherwise).
        stream: Where lines go; `None` means `sys.stderr` as it is when a line is written.

    Raises:
        ValueError: Unknown level or format.
    """

    def __init__(
        self, level: str = "info", format: str = "auto", stream: IO[str] | None = None
    ) -> None:
        level = level.lower()
        if level not in LEVELS:
            raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")
        if format not in FORMATS:
            raise ValueError(f"unknown log format {format!r}; expected one of {', '.join(FORMATS)}")
        self.level = level
        self.format = format
        self.stream = stream
        self._threshold = LEVELS[level]
        self._renderers: dict[bool, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: DagliteSettings) -> LoggingProcessor:
        """The processor configured by `log_level` and `log_format`."""
        return cls(level=settings.log_level, format=settings.log_format)

    def __repr__(self) -> str:
        return f"LoggingProcessor(level={self.level!r}, format={self.format!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"level": self.level, "format": self.format, "stream": self.stream}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def __call__(self, event: Event) -> None:
        """Write the line for `event`, if it has one at or above the level."""
        described = describe(event)
        if described is None:
            return
        level, message, fields = described
        if LEVELS.get(level, 20) < self._threshold:
            return
        self.write(level, message, fields, event.timestamp)

    def write(self, level: str, message: str, fields: dict[str, Any], timestamp: float) -> None:
        """Render one line and write it (used for events and for direct log records)."""
        stream = self.stream if self.stream is not None else sys.stderr
        as_json = self._is_json(stream)
        renderer = self._renderer(as_json, stream)
        fields = {k: v for k, v in fields.items() if v is not None}
        when = datetime.fromtimestamp(timestamp).astimezone()
        if as_json:
            stamp = when.isoformat(timespec="milliseconds")
        else:
            stamp = when.strftime("%H:%M:%S.%f")[:-3]
            fields = {k: _short(k, v) for k, v in fields.items() if k not in _IDS}
        record = {"timestamp": stamp, "level": level, "event": message, **fields}
        line = renderer(None, level, record)
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    def _is_json(self, stream: IO[str]) -> bool:
        if self.format != "auto":
            return self.format == "json"
        isatty = getattr(stream, "isatty", None)
        return not (isatty is not None and isatty())

    def _renderer(self, as_json: bool, stream: IO[str]) -> Any:
        renderer = self._renderers.get(as_json)
        if renderer is None:
            if as_json:
                # What structlog's JSONRenderer(default=repr) does, without importing
                # structlog (which imports rich and asyncio: tens of ms) for JSON lines.
                renderer = _json_line
            else:
                import structlog  # deferred: `import daglite` must not pay for it

                isatty = getattr(stream, "isatty", None)
                colors = bool(isatty and isatty()) and "NO_COLOR" not in os.environ
                renderer = structlog.dev.ConsoleRenderer(
                    colors=colors,
                    sort_keys=False,
                    exception_formatter=structlog.dev.plain_traceback,
                )
            self._renderers[as_json] = renderer
        return renderer


def _json_line(_logger: Any, _level: str, record: dict[str, Any]) -> str:
    return json.dumps(record, default=repr)


# Ids make terminal lines long and are rarely read there; JSON lines keep them.
_IDS = frozenset({"task_id", "map_index", "session_id", "workflow_id"})


_HEX = frozenset("0123456789abcdef")


def _short(key: str, value: Any) -> Any:
    # Durations and delays read better rounded on a terminal; JSON keeps full precision.
    if key == "key" and isinstance(value, str) and len(value) > 16 and _HEX.issuperset(value):
        return value[:12] + "..."  # a cache key's hash: enough to tell entries apart
    if key in ("duration", "delay", "timeout") and isinstance(value, float):
        return f"{value:.3f}s" if value < 60 else f"{value:.1f}s"
    return value
