"""The `logging` processor: what a person reads about a run, as log lines.

At the default level (`info`) it writes a line when a session or workflow starts and one
when it ends with the counts of its task calls; for each map a "map started" line, a
"map progress" line at most every `progress_every` seconds while it runs, and a "map
finished" line with its counts; every failure, retry and timeout (with the task name and
map index); every record logged with `daglite.get_logger()`; and each dataset saved
outside a map. Each successful task call and each map item's dataset are `debug` lines.

On a terminal each line is readable (`console` format, rendered by structlog); otherwise,
or when asked with `log_format="json"`, each line is one JSON object. The processor
declares the events its level needs (`interest`), so an event below the level is never
built, and a map's items cost no event at `info`: workers send counts per batch.
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

from daglite.interest import LEVELS
from daglite.interest import Interest

if TYPE_CHECKING:
    from daglite.events import Event
    from daglite.settings import DagliteSettings

FORMATS = ("auto", "console", "json")

#: The events that make a line at each level (and above it); `debug` gets every event.
_KINDS = {
    "error": frozenset({"TaskFailed", "WorkflowEnded", "SessionEnded", "LogRecorded"}),
    "warning": frozenset({"TaskRetried", "TaskTimedOut", "MapEnded"}),
    "info": frozenset(
        {"SessionStarted", "WorkflowStarted", "MapStarted", "MapProgress", "DatasetSaved"}
    ),
}


def interest_for(level: str) -> Interest:
    """The events the `logging` processor needs at `level`."""
    if level == "debug":
        return Interest(log_level="debug")
    kinds: set[str] = set()
    for name in ("error", "warning", "info"):
        if LEVELS[name] >= LEVELS[level]:
            kinds |= _KINDS[name]
    return Interest(kinds=kinds, log_level=level)


def _task(event: Any) -> str:
    index = getattr(event, "map_index", None)
    return event.name if index is None else f"{event.name}[{index}]"


def _task_fields(event: Any) -> dict[str, Any]:
    return {
        "task": _task(event),
        "task_id": event.task_id,
        "map_index": event.map_index,
    }


def _counts(e: Any) -> dict[str, Any]:
    """The counts of a session or workflow end, the zero ones left out (but `succeeded`)."""
    fields: dict[str, Any] = {"succeeded": e.succeeded}
    for name in ("cached", "failed", "retried", "timed_out", "saved"):
        value = getattr(e, name)
        if value:
            fields[name] = value
    return fields


def _rate(finished: int, elapsed: float) -> str:
    return f"{finished / elapsed:.1f}/s" if elapsed > 0 else "-"


def _map_counts(e: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"map": e.name, "done": e.done, "cached": e.cached}
    fields["failed"] = e.failures
    if e.retried:
        fields["retried"] = e.retried
    return fields


def describe(event: Event) -> tuple[str, str, dict[str, Any]] | None:
    """The level, message and fields of the log line for `event` (`None`: no line).

    Args:
        event: Any daglite event; kinds this module does not know are logged at debug level
            with all their fields.
    """
    kind = event.kind
    e: Any = event
    if kind == "TaskStarted":
        return "debug", "task started", {**_task_fields(e), "status": "running"}
    if kind == "TaskSucceeded":
        fields = {**_task_fields(e), "duration": e.duration, "status": "success"}
        if e.cached:
            fields["status"] = "cached"
        elif e.attempts > 1:
            fields["attempts"] = e.attempts
        return "debug", "task finished", fields
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
        return "debug", "cache hit", {**_task_fields(e), "status": "cached", "key": e.key}
    if kind == "CacheMissed":
        return "debug", "cache miss", {**_task_fields(e), "key": e.key, "reason": e.reason}
    if kind in ("WorkflowStarted", "WorkflowEnded"):
        return _workflow(e)
    if kind == "MapStarted":
        return "info", "map started", {"map": e.name, "backend": e.backend, "total": e.total}
    if kind == "MapProgress":
        finished = e.done + e.cached + e.failures
        fields = {**_map_counts(e), "progress": f"{finished}/{e.total}"}
        fields["rate"] = _rate(finished, e.elapsed)
        if finished and e.total and e.elapsed > 0:
            fields["eta"] = (e.total - finished) * e.elapsed / finished
        return "info", "map progress", fields
    if kind == "MapEnded":
        fields = {**_map_counts(e), "total": e.total}
        if e.skipped:
            fields["skipped"] = e.skipped
        fields["duration"] = e.duration
        return ("warning" if e.failures or e.skipped else "info"), "map finished", fields
    if kind in ("DatasetSaved", "DatasetLoaded"):
        verb = "saved" if kind == "DatasetSaved" else "loaded"
        # a map item's dataset is one of many: only those saved outside maps are news
        level = "info" if kind == "DatasetSaved" and e.map_index is None else "debug"
        fields = {"key": e.key, "store": e.store, "duration": e.duration}
        if e.map_index is not None:
            fields["map_index"] = e.map_index
        return level, f"dataset {verb}", fields
    if kind == "SessionStarted":
        return "info", "session started", {"session_id": e.session_id, "backend": e.backend}
    if kind == "SessionEnded":
        fields = {"session_id": e.session_id, **_counts(e), "duration": e.duration}
        if e.status != "success":
            fields["error"] = f"{e.error_type}: {e.error_message}"
            return "error", "session failed", fields
        return "info", "session finished", fields
    if kind == "LogRecorded":
        fields = _task_fields(e) if e.name is not None else {}
        if e.attempt is not None and e.attempt > 1:  # logged by a retry
            fields["attempt"] = e.attempt
        return e.level, e.message, {**fields, **e.fields}
    fields = event.to_dict()
    fields.pop("event", None)
    fields.pop("timestamp", None)
    return "debug", kind, fields


def _workflow(e: Any) -> tuple[str, str, dict[str, Any]]:
    if e.kind == "WorkflowStarted":
        return "info", "workflow started", {"workflow": e.name, "workflow_id": e.workflow_id}
    fields = {"workflow": e.name, **_counts(e), "duration": e.duration}
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
        progress_every: Seconds between two "map progress" lines of one map (on a terminal
            and off it, so a CI log shows that a long map is alive).

    Raises:
        ValueError: Unknown level or format.
    """

    def __init__(
        self,
        level: str = "info",
        format: str = "auto",
        stream: IO[str] | None = None,
        progress_every: float = 5.0,
    ) -> None:
        level = level.lower()
        if level not in LEVELS:
            raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")
        if format not in FORMATS:
            raise ValueError(f"unknown log format {format!r}; expected one of {', '.join(FORMATS)}")
        self.level = level
        self.format = format
        self.stream = stream
        self.progress_every = progress_every
        self.interest = interest_for(level)
        self._threshold = LEVELS[level]
        self._renderers: dict[bool, Any] = {}
        self._lock = threading.Lock()
        self._progress: dict[str, float] = {}  # map id -> elapsed time of its last line

    @classmethod
    def from_settings(cls, settings: DagliteSettings) -> LoggingProcessor:
        """The processor configured by `log_level` and `log_format`."""
        return cls(level=settings.log_level, format=settings.log_format)

    def __repr__(self) -> str:
        return f"LoggingProcessor(level={self.level!r}, format={self.format!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "format": self.format,
            "stream": self.stream,
            "progress_every": self.progress_every,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def __call__(self, event: Event) -> None:
        """Write the line for `event`, if it has one at or above the level."""
        kind = event.kind
        if kind == "MapProgress" and not self._progress_due(event):
            return
        if kind == "MapEnded":
            self._progress.pop(event.map_id, None)  # type: ignore[attr-defined]
        described = describe(event)
        if described is None:
            return
        level, message, fields = described
        if LEVELS.get(level, 20) < self._threshold:
            return
        self.write(level, message, fields, event.timestamp)

    def _progress_due(self, event: Any) -> bool:
        """At most one progress line per map every `progress_every` seconds."""
        last = self._progress.get(event.map_id, 0.0)
        if event.elapsed - last < self.progress_every:
            return False
        self._progress[event.map_id] = event.elapsed
        return True

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
    if key in ("duration", "delay", "timeout", "eta") and isinstance(value, float):
        return f"{value:.3f}s" if value < 60 else f"{value:.1f}s"
    return value
