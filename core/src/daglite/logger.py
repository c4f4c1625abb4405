"""`get_logger()`: a structlog logger bound to the task call it is used in.

Records do not go to a handler where they are logged: each one becomes a `LogRecorded`
event handed to the session's event sink (`Runtime.emit`). That is the one path for every
backend: inline and thread calls reach the session's dispatcher directly, and a process
backend relays worker events to the coordinator, where the `logging` processor renders
them with the task's other lines. Outside any session (nobody listens), a record is
rendered at once by a `logging` processor built from the global settings (unless `logging`
is not among their processors).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from typing import Any

from daglite.context import attempt_of
from daglite.context import bare_runtime
from daglite.context import current_frame
from daglite.context import current_runtime

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

# The LoggingProcessor used when no session listens, with the settings it was built from.
_direct: tuple[Any, Any] = (None, None)


def get_logger(name: str | None = None, **initial_values: Any) -> FilteringBoundLogger:
    """A structlog logger bound to the current task call.

    Inside a task the logger carries the session id, task name, task id, map index and
    attempt number; a record logged with it reaches the session's processors (from worker
    processes too) and, with the default `logging` processor, is written with the task's
    other log lines.
    Records below the session's `log_level` are dropped where they are logged.

    Args:
        name: The logger's name (the current task's name by default).
        **initial_values: More key-value pairs to bind.

    Returns:
        A structlog bound logger (`info`, `warning`, `error`, `exception`, `bind`, ...).

    Examples:
        >>> from daglite import get_logger, task
        >>> @task
        ... def clean(rows: list[int]) -> list[int]:
        ...     log = get_logger()
        ...     kept = [r for r in rows if r >= 0]
        ...     log.info("cleaned", dropped=len(rows) - len(kept))
        ...     return kept
    """
    import structlog  # deferred: `import daglite` must not pay for it

    runtime = current_runtime.get() or bare_runtime()
    frame = current_frame.get()
    context: dict[str, Any] = {"session_id": runtime.session_id}
    if frame is not None:
        context["task"] = frame.name
        context["task_id"] = frame.task_id
        if frame.map_index is not None:
            context["map_index"] = frame.map_index
        if frame.is_task:
            context["attempt"] = attempt_of(frame)
    context["logger"] = name or (frame.name if frame is not None else "daglite")
    context.update(initial_values)
    return structlog.wrap_logger(
        _EventSink(),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(runtime.settings.log_level),
        context_class=dict,
        cache_logger_on_first_use=False,
    ).bind(**context)


def _jsonable(value: Any) -> Any:
    # Records cross process boundaries and end up in JSON: keep plain data, repr the rest.
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


class _EventSink:
    """The structlog "logger" at the end of the chain: turns a record into an event."""

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        return self._record

    def _record(self, **event_dict: Any) -> None:
        from daglite.events import LogRecorded

        level = str(event_dict.pop("level", "info"))
        if level in ("exception", "fatal"):
            level = "error" if level == "exception" else "critical"
        runtime = current_runtime.get()
        map_index = event_dict.pop("map_index", None)
        attempt = event_dict.pop("attempt", None)
        event = LogRecorded(
            session_id=str(event_dict.pop("session_id", "bare")),
            level=level,
            message=str(event_dict.pop("event", "")),
            logger=event_dict.pop("logger", None),
            task_id=event_dict.pop("task_id", None),
            name=event_dict.pop("task", None),
            map_index=map_index if isinstance(map_index, int) else None,
            attempt=attempt if isinstance(attempt, int) else None,
            fields={str(k): _jsonable(v) for k, v in event_dict.items()},
            timestamp=time.time(),
        )
        if runtime is not None and runtime.emit is not None:
            runtime.emit(event)
        else:
            _render_directly(event)


def _render_directly(event: Any) -> None:
    global _direct
    from daglite.processors.logs import LoggingProcessor
    from daglite.settings import get_global_settings

    settings = get_global_settings()
    if "logging" not in settings.processors:
        return  # logging was turned off
    if _direct[0] is not settings:
        _direct = (settings, LoggingProcessor.from_settings(settings))
    _direct[1](event)
