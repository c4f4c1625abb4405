"""`get_logger()`: a structlog-style logger bound to the task call it is used in.

Records do not go to a handler where they are logged: each one becomes a `LogRecorded`
event handed to the session's event sink (`Runtime.emit`). That is the one path for every
backend: inline and thread calls reach the session's dispatcher directly, and a process
backend relays worker events to the coordinator, where the `logging` processor renders
them with the task's other lines. Outside any session (nobody listens), a record is
rendered at once by a `logging` processor built from the global settings (unless `logging`
is not among their processors).

The logger has structlog's bound-logger interface (`info(event, **kw)`, `bind`, `new`,
`unbind`, `exception`, `ainfo`, ...) without importing structlog, whose import (with rich
and asyncio) costs a tenth of a second or more: getting a logger costs about as much as
building a dict. Like structlog's filtering bound logger, a method below the level is a
no-op: a filtered record costs no formatting and no record building.
"""

from __future__ import annotations

import time
from typing import Any

from daglite.context import attempt_of
from daglite.context import bare_runtime
from daglite.context import current_runtime
from daglite.context import running_frame
from daglite.interest import LEVELS
from daglite.interest import wants_of

# The LoggingProcessor used when no session listens, with the settings it was built from.
_direct: tuple[Any, Any] = (None, None)

#: Level names by number, for `log(level, ...)`.
_NAMES = {number: name for name, number in LEVELS.items()}
#: Above every level: a logger that writes nothing.
_OFF = LEVELS["critical"] + 10


def get_logger(name: str | None = None, **initial_values: Any) -> BoundLogger:
    """A structlog-style logger bound to the current task call.

    Inside a task the logger carries the session id, task name, task id, map index and
    attempt number; a record logged with it reaches the session's processors (from worker
    processes too) and, with the default `logging` processor, is written with the task's
    other log lines. Records below the session's `log_level` (or below what its processors
    want) are dropped where they are logged, at no cost.

    Args:
        name: The logger's name (the current task's name by default).
        **initial_values: More key-value pairs to bind.

    Returns:
        A bound logger (`debug`, `info`, `warning`, `error`, `exception`, `critical`, `log`,
        `bind`, `new`, `unbind`, and the `a`-prefixed async variants).

    Examples:
        >>> from daglite import get_logger, task
        >>> @task
        ... def clean(rows: list[int]) -> list[int]:
        ...     log = get_logger()
        ...     kept = [r for r in rows if r >= 0]
        ...     log.info("cleaned", dropped=len(rows) - len(kept))
        ...     return kept
    """
    runtime = current_runtime.get()
    if runtime is None or runtime.emit is None:  # rendered directly with the settings
        settings = (runtime or bare_runtime()).settings
        lowest = LEVELS[settings.log_level] if "logging" in settings.plugins else _OFF
        session_id = runtime.session_id if runtime is not None else "bare"
    else:
        settings = runtime.settings
        lowest = max(LEVELS[settings.log_level], wants_of(runtime.emit).log_level)
        if "LogRecorded" not in wants_of(runtime.emit):
            lowest = _OFF
        session_id = runtime.session_id
    frame = running_frame()
    context: dict[str, Any] = {"session_id": session_id}
    if frame is not None:
        context["task"] = frame.name
        context["task_id"] = frame.task_id
        if frame.map_index is not None:
            context["map_index"] = frame.map_index
        if frame.is_task:
            context["attempt"] = attempt_of(frame)
    context["logger"] = name or (frame.name if frame is not None else "daglite")
    context.update(initial_values)
    return _logger_class(lowest)(context)


def _nop(self: Any, event: Any = None, *args: Any, **kw: Any) -> None:
    return None


async def _anop(self: Any, event: Any = None, *args: Any, **kw: Any) -> None:
    return None


class BoundLogger:
    """A logger carrying key-value pairs; each record becomes a `LogRecorded` event.

    Get one with `get_logger()`. `bind` returns a new logger with more pairs; the logger
    itself never changes. Positional arguments are %-formatted into the message, as with
    the standard library and structlog.
    """

    __slots__ = ("_context",)
    _lowest = LEVELS["debug"]

    def __init__(self, context: dict[str, Any]) -> None:
        self._context = context

    def __repr__(self) -> str:
        return f"<BoundLogger(context={self._context!r})>"

    def bind(self, **new_values: Any) -> BoundLogger:
        """A logger with `new_values` added to the context."""
        return type(self)({**self._context, **new_values})

    def new(self, **new_values: Any) -> BoundLogger:
        """A logger whose context is `new_values` only."""
        return type(self)(dict(new_values))

    def unbind(self, *keys: str) -> BoundLogger:
        """A logger without `keys` (`KeyError` if one is not bound)."""
        context = dict(self._context)
        for key in keys:
            del context[key]
        return type(self)(context)

    def try_unbind(self, *keys: str) -> BoundLogger:
        """Like `unbind`, but keys that are not bound are ignored."""
        context = dict(self._context)
        for key in keys:
            context.pop(key, None)
        return type(self)(context)

    def is_enabled_for(self, level: int) -> bool:
        """Whether a record of `level` (a number, as in `logging`) would be kept."""
        return level >= self._lowest

    def get_effective_level(self) -> int:
        """The lowest level kept (a number, as in `logging`)."""
        return self._lowest

    def debug(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log a record at debug level."""
        _record(self._context, "debug", event, args, kw)

    def info(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log a record at info level."""
        _record(self._context, "info", event, args, kw)

    def warning(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log a record at warning level."""
        _record(self._context, "warning", event, args, kw)

    def error(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log a record at error level."""
        _record(self._context, "error", event, args, kw)

    def critical(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log a record at critical level."""
        _record(self._context, "critical", event, args, kw)

    def exception(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log a record at error level with the exception being handled."""
        kw.setdefault("exc_info", True)
        _record(self._context, "error", event, args, kw)

    def log(self, level: int, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log a record at `level` (a number, as in `logging`)."""
        if level >= self._lowest:
            _record(self._context, _NAMES.get(level, "info"), event, args, kw)

    warn = warning
    msg = info
    fatal = critical
    err = error

    async def adebug(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """`debug`, awaitable."""
        self.debug(event, *args, **kw)

    async def ainfo(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """`info`, awaitable."""
        self.info(event, *args, **kw)

    async def awarning(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """`warning`, awaitable."""
        self.warning(event, *args, **kw)

    async def aerror(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """`error`, awaitable."""
        self.error(event, *args, **kw)

    async def acritical(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """`critical`, awaitable."""
        self.critical(event, *args, **kw)

    async def aexception(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """`exception`, awaitable."""
        self.exception(event, *args, **kw)

    async def alog(self, level: int, event: str | None = None, *args: Any, **kw: Any) -> None:
        """`log`, awaitable."""
        self.log(level, event, *args, **kw)


_METHODS = {
    "debug": ("debug",),
    "info": ("info", "msg"),
    "warning": ("warning", "warn"),
    "error": ("error", "err", "exception"),
    "critical": ("critical", "fatal"),
}
_classes: dict[int, type[BoundLogger]] = {LEVELS["debug"]: BoundLogger}


def _logger_class(lowest: int) -> type[BoundLogger]:
    """The `BoundLogger` subclass whose methods below `lowest` do nothing (made once)."""
    cls = _classes.get(lowest)
    if cls is None:
        namespace: dict[str, Any] = {"__slots__": (), "_lowest": lowest}
        for level, names in _METHODS.items():
            if LEVELS[level] < lowest:
                for name in names:
                    namespace[name] = _nop
                    namespace["a" + name] = _anop
        cls = _classes[lowest] = type("BoundLogger", (BoundLogger,), namespace)
    return cls


def _jsonable(value: Any) -> Any:
    # Records cross process boundaries and end up in JSON: keep plain data, repr the rest.
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def _exception_text(exc_info: Any) -> str | None:
    import sys
    import traceback

    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    elif not isinstance(exc_info, tuple):
        exc_info = sys.exc_info()
    if exc_info[0] is None:
        return None
    return "".join(traceback.format_exception(*exc_info)).rstrip()


def _record(
    context: dict[str, Any], level: str, event: Any, args: tuple[Any, ...], kw: dict[str, Any]
) -> None:
    """Turn one record into a `LogRecorded` event and hand it on."""
    from daglite.events import LogRecorded

    values = {**context, **kw}
    message = "" if event is None else str(event)
    if args:
        message = message % args
    exc_info = values.pop("exc_info", None)
    if exc_info:
        text = _exception_text(exc_info)
        if text is not None:
            values["exception"] = text
    map_index = values.pop("map_index", None)
    attempt = values.pop("attempt", None)
    record = LogRecorded(
        session_id=str(values.pop("session_id", "bare")),
        level=level,
        message=message,
        logger=values.pop("logger", None),
        task_id=values.pop("task_id", None),
        name=values.pop("task", None),
        map_index=map_index if isinstance(map_index, int) else None,
        attempt=attempt if isinstance(attempt, int) else None,
        fields={str(k): _jsonable(v) for k, v in values.items()},
        timestamp=time.time(),
    )
    runtime = current_runtime.get()
    if runtime is not None and runtime.emit is not None:
        runtime.emit(record)
    else:
        _render_directly(record)


def _render_directly(event: Any) -> None:
    global _direct
    from daglite.processors.logs import LoggingProcessor
    from daglite.settings import get_global_settings

    settings = get_global_settings()
    if "logging" not in settings.plugins:
        return  # logging was turned off
    if _direct[0] is not settings:
        _direct = (settings, LoggingProcessor.from_settings(settings))
    _direct[1](event)
