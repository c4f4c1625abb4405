"""Events: the one stream through which everything observable in a run flows.

Events are small frozen value classes. They are emitted where a task runs and, for
worker processes, relayed to the coordinator, where an event dispatcher hands them to
the session's processors (any callable taking one event). They pickle, and
`Event.to_dict()` gives a JSON-ready mapping.
"""

from __future__ import annotations

import operator
import os
import threading
import time
from typing import Any

import attrs

from daglite.redaction import redacted_command
from daglite.redaction import summarize_arguments as summarize_arguments  # lifecycle reads it here


def _now() -> float:
    return time.time()


def _thread() -> str:
    return threading.current_thread().name


_hostname: str | None = None


def _host() -> str:
    """The name of the machine (looked up once per process)."""
    global _hostname
    name = _hostname
    if name is None:
        uname = getattr(os, "uname", None)  # POSIX; no `socket` import for one name
        name = uname().nodename if uname is not None else os.environ.get("COMPUTERNAME", "")
        _hostname = name
    return name


_process_id = os.getpid()


def _pid() -> int:
    """The id of this process: `os.getpid()`, a system call, made once per process."""
    return _process_id


def _forked() -> None:
    global _process_id
    _process_id = os.getpid()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere no process is forked
    os.register_at_fork(after_in_child=_forked)


@attrs.frozen(kw_only=True)
class Event:
    """Base class of every event.

    Attributes:
        session_id: The session the event belongs to.
        timestamp: Wall-clock time (seconds since the epoch) when the event was created.
    """

    session_id: str
    timestamp: float = attrs.field(factory=_now)

    @property
    def kind(self) -> str:
        """The event's class name, e.g. `"TaskStarted"`."""
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the event's fields plus its `event` kind."""
        cls = type(self)
        found = _fields_of.get(cls)
        if found is None:
            names = tuple(f.name for f in attrs.fields(cls))  # two at least: the base's
            found = _fields_of[cls] = (("event", *names), operator.attrgetter(*names))
        keys, values = found
        return dict(zip(keys, (cls.__name__, *values(self))))


# Per event class: the keys of `to_dict()` and a getter of the field values, in order.
_fields_of: dict[type, tuple[tuple[str, ...], operator.attrgetter[Any]]] = {}


# -- sessions and workflows ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SessionStarted(Event):
    """A session opened.

    Attributes:
        backend: The session's default backend.
        host: The coordinator's host name.
        pid: The coordinator's process id.
        command: The command line of the process (`sys.argv`) that opened the session.
    """

    backend: str
    host: str = attrs.field(factory=_host)
    pid: int = attrs.field(factory=_pid)
    command: list[str] = attrs.field(factory=redacted_command)


@attrs.frozen(kw_only=True)
class SessionEnded(Event):
    """A session closed (`status` is `"success"` or `"failure"`).

    The counts are of the session's task calls (map items included, wherever they ran):
    `succeeded` (cache hits not included), `cached`, `failed` (for good), `retried`
    (attempts retried), `timed_out` (attempts that overran), and `saved` (datasets written).
    """

    duration: float
    status: str
    error_type: str | None = None
    error_message: str | None = None
    succeeded: int = 0
    cached: int = 0
    failed: int = 0
    retried: int = 0
    timed_out: int = 0
    saved: int = 0


@attrs.frozen(kw_only=True)
class WorkflowStarted(Event):
    """A workflow began running."""

    workflow_id: str
    name: str
    parent_id: str | None = None


@attrs.frozen(kw_only=True)
class WorkflowEnded(Event):
    """A workflow returned (`status="success"`) or raised (`status="failure"`).

    The counts are those of `SessionEnded`, for the task calls that ended while the workflow
    ran.
    """

    workflow_id: str
    name: str
    duration: float
    status: str
    parent_id: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    succeeded: int = 0
    cached: int = 0
    failed: int = 0
    retried: int = 0
    timed_out: int = 0
    saved: int = 0


# -- task calls ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TaskEvent(Event):
    """Base class of events about one task call.

    Attributes:
        task_id: Unique id of this call.
        name: The resolved task name.
        parent_id: Id of the enclosing task or workflow call, if any.
        map_index: Index of the item when the call is part of a map, else `None`.
        map_id: Id of the map the call belongs to, else `None`.
        host: Name of the machine where the call ran.
        pid: Id of the process where the call ran (a worker's, for worker backends).
        thread: Name of the thread where the call ran.
    """

    task_id: str
    name: str
    parent_id: str | None = None
    map_index: int | None = None
    map_id: str | None = None
    host: str = attrs.field(factory=_host)
    pid: int = attrs.field(factory=_pid)
    thread: str = attrs.field(factory=_thread)


@attrs.frozen(kw_only=True)
class TaskStarted(TaskEvent):
    """A task call started (before its first attempt)."""

    backend: str = "inline"


@attrs.frozen(kw_only=True)
class TaskSucceeded(TaskEvent):
    """A task call returned a value."""

    duration: float
    attempts: int = 1
    cached: bool = False


@attrs.frozen(kw_only=True)
class TaskFailed(TaskEvent):
    """A task call failed for good (no retry left).

    `arguments` holds a short summary of the call's arguments (`summarize_arguments`).
    """

    duration: float
    attempts: int
    error_type: str
    error_message: str
    traceback: str = ""
    arguments: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class TaskRetried(TaskEvent):
    """An attempt failed and another one will be made after `delay` seconds."""

    attempt: int
    delay: float
    error_type: str
    error_message: str


@attrs.frozen(kw_only=True)
class TaskTimedOut(TaskEvent):
    """An attempt overran the task's timeout (it counts as a failed attempt)."""

    attempt: int
    timeout: float


@attrs.frozen(kw_only=True)
class CacheHit(TaskEvent):
    """A cached result was returned instead of running the task."""

    key: str


@attrs.frozen(kw_only=True)
class CacheMissed(TaskEvent):
    """No usable cache entry existed (`reason` says why, e.g. `"absent"`, `"expired"`)."""

    key: str
    reason: str = "absent"


@attrs.frozen(kw_only=True)
class DatasetSaved(Event):
    """A dataset was written (`size`: its bytes, when known)."""

    key: str
    store: str
    format: str | None
    duration: float
    task_id: str | None = None
    size: int | None = None
    map_index: int | None = None


@attrs.frozen(kw_only=True)
class DatasetLoaded(Event):
    """A dataset was read (`size`: its bytes, when known)."""

    key: str
    store: str
    format: str | None
    duration: float
    task_id: str | None = None
    size: int | None = None
    map_index: int | None = None


# -- fan-out ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class MapStarted(Event):
    """`map_tasks` or `gather_tasks` began (`total` is `None` when the input length is unknown).

    `parent_id` is the call the map runs in; `parent_map_id` the map of that call when it
    is a map item (the map is nested in another).
    """

    map_id: str
    name: str
    backend: str
    total: int | None
    parent_id: str | None = None
    parent_map_id: str | None = None


@attrs.frozen(kw_only=True)
class MapProgress(Event):
    """How far a running map is (sent at most a few times a second, as items finish).

    Workers send these counts per batch, so a processor that wants only a map's progress
    costs nothing per item. `done` counts items that succeeded (cache hits not included),
    `cached` cache hits, `failures` items that failed for good, `retried` retried attempts.
    """

    map_id: str
    name: str
    total: int | None
    done: int
    cached: int
    failures: int
    retried: int
    elapsed: float
    parent_id: str | None = None


@attrs.frozen(kw_only=True)
class MapEnded(Event):
    """A map finished (also after a failure or Ctrl-C).

    `total` is the number of items in the map; `done + cached + failures + skipped ==
    total`, where `skipped` items did not finish: they were not started after a failure
    (unless exceptions are returned) or were cut short by Ctrl-C. `retried` counts retried
    attempts and `timed_out` attempts that overran the task's timeout.

    `batches` counts the batches the backend used by their size (`{size: count}`; empty
    when the backend ran items one by one).
    """

    map_id: str
    name: str
    total: int
    failures: int
    duration: float
    parent_id: str | None = None
    batches: dict[int, int] = attrs.field(factory=dict)
    done: int = 0
    cached: int = 0
    retried: int = 0
    timed_out: int = 0
    skipped: int = 0


# -- logs ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LogRecorded(Event):
    """A record logged with `daglite.get_logger()`, wherever the task ran.

    Records logged in a worker process travel to the coordinator like every other event,
    and the `logging` processor renders them there.

    Attributes:
        level: `"debug"`, `"info"`, `"warning"`, `"error"` or `"critical"`.
        message: The log message.
        logger: The logger's name.
        task_id: Id of the task call that logged it, if any.
        name: Name of that task, if any.
        map_index: Its map index, if any.
        fields: The other key-value pairs of the record (JSON-ready: other values are
            replaced by their `repr`).
        attempt: Which attempt of the task call logged it (1 unless it was retried).
    """

    level: str
    message: str
    logger: str | None = None
    task_id: str | None = None
    name: str | None = None
    map_index: int | None = None
    fields: dict[str, Any] = attrs.field(factory=dict)
    attempt: int | None = None
