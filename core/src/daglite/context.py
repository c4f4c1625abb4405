"""The execution context: which session is active, and which task or workflow call encloses us.

Two context variables carry it, so it follows threads started with a copied context and
asyncio tasks. A `Runtime` is what the run pipeline needs from a session: hooks, the event
sink, settings and stores. Outside any session a cheap bare runtime (no hooks, no events)
built from the global settings is used.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING
from typing import Any
from typing import NamedTuple
from typing import final

import attrs

from daglite.settings import DagliteSettings
from daglite.settings import get_global_settings
from daglite.settings import url_repr

if TYPE_CHECKING:
    from daglite.datasets import RelayedWrite
    from daglite.events import Event
    from daglite.session import SessionContext

# -- ids ----------------------------------------------------------------------------------

_prefix = os.urandom(4).hex() + "-"
_counter = itertools.count(1)


def _new_prefix() -> None:  # a forked child must not repeat its parent's ids
    global _prefix, _counter
    _prefix = os.urandom(4).hex() + "-"
    _counter = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_prefix)


def new_id() -> str:
    """A short id, unique across the processes of a run (random per-process prefix + counter)."""
    return _prefix + hex(next(_counter))[2:]  # twice as fast as an f-string with `:x`


# -- runtime ------------------------------------------------------------------------------


@attrs.frozen
class Runtime:
    """What the run pipeline needs from the session a call runs in.

    Attributes:
        session_id: Id of the session (`"bare"` outside any session).
        settings: The session's settings.
        backend: The session's default backend name.
        hook: pluggy's hook relay, or `None` when no hook plugin is registered.
        emit: The event sink, or `None` when nothing listens (then no event is even built).
        cache_store: The session's cache store (a URL or a store object).
        dataset_store: The session's dataset store (a URL or a store object).
        in_worker: True inside a worker process of a process-based backend.
        session: The session this runtime belongs to, on the coordinator (`None` for the
            bare runtime and in workers): its backends, hook plugins and worker spec.
        dataset_relay: In a worker, where dataset saves to a store only the coordinator
            can reach go (`daglite.backends.worker`); `None` elsewhere.
    """

    session_id: str
    settings: DagliteSettings
    backend: str
    hook: Any = None
    emit: Callable[[Event], None] | None = None
    cache_store: Any = attrs.field(default=None, repr=url_repr)
    dataset_store: Any = attrs.field(default=None, repr=url_repr)
    in_worker: bool = False
    session: SessionContext | None = attrs.field(default=None, eq=False, repr=False)
    dataset_relay: Callable[[RelayedWrite], None] | None = attrs.field(
        default=None, eq=False, repr=False
    )


_bare: Runtime | None = None


def bare_runtime() -> Runtime:
    """The runtime of calls made outside any session (built from the global settings)."""
    global _bare
    settings = get_global_settings()
    if _bare is None or _bare.settings is not settings:
        _bare = Runtime(
            session_id="bare",
            settings=settings,
            backend=settings.backend,
            cache_store=settings.cache_store,
            dataset_store=settings.dataset_store,
        )
    return _bare


# -- sessions and threads --------------------------------------------------------------

#: The sessions open in this process: session id -> name of the thread that opened it.
open_sessions: dict[str, str] = {}
_warned: set[str] = set()


class SessionNotInThreadWarning(RuntimeWarning):
    """A task was called in a thread that does not carry the open session's context."""


def warn_lost_session(what: str, depth: int = 3) -> None:
    """Say once per session that a task call ran outside it (called only when one is open).

    `what` says what was called (`"task 'f'"`, `"save_dataset"`); `depth` is the
    `stacklevel` that points the warning at the user's call.

    Context variables do not follow `threading.Thread`: a thread the user starts inside a
    session has no session of its own, so its task calls run as bare calls.
    """
    import threading
    import warnings

    _warned.intersection_update(open_sessions)  # forget sessions that ended
    for session_id, opener in list(open_sessions.items()):
        if session_id in _warned:
            continue
        _warned.add(session_id)
        here = threading.current_thread().name
        warnings.warn(
            f"{what} was called in thread '{here}', which is outside the daglite "
            f"session {session_id} open in thread '{opener}': it ran as a bare call (no "
            "events, hooks or session stores). Start the thread with "
            "session.run_in_thread(func, ...) (or run it in contextvars.copy_context()) to "
            "join the session; this is said once per session.",
            SessionNotInThreadWarning,
            stacklevel=depth,
        )


def outside_runtime(what: str) -> Runtime:
    """The bare runtime, for a call whose context has no session (warns if one is open).

    Call it from the public function the user called (`save_dataset`, `map_tasks`, ...).
    """
    if open_sessions:
        warn_lost_session(what, 4)
    return bare_runtime()


# -- frames -------------------------------------------------------------------------------


class TaskMetadata(NamedTuple):
    """Who a running task call is: handed to hooks and available via `current_task()`.

    An immutable named tuple (cheaper to build than a frozen attrs class, and built on every
    call inside a session).

    Attributes:
        task_id: Unique id of this call.
        name: The resolved name (placeholders filled in).
        qualname: Module and qualified name of the task's function.
        description: The task's description.
        parent_id: Id of the enclosing task or workflow call, if any.
        session_id: Id of the session the call runs in.
        map_index: Index of the item inside `map_tasks`/`gather_tasks`, else `None`.
        map_id: Id of that map, else `None`.
        backend: Name of the backend the call runs on.
        inputs: The bound arguments of the call (defaults applied); empty on the fast path
            of a plain task (no option needing them, no hook plugin, no event processor).
        dataset_store: The task's own `dataset_store=` option (`None` if unset): the store
            `save_dataset` / `load_dataset` use inside this call before the session's.
    """

    task_id: str
    name: str
    qualname: str
    description: str
    parent_id: str | None
    session_id: str
    map_index: int | None = None
    map_id: str | None = None
    backend: str = "inline"
    inputs: dict[str, Any] = {}
    dataset_store: Any = None

    is_task = True


class WorkflowFrame(NamedTuple):
    """The frame of a running workflow: tasks called in it are its children."""

    task_id: str
    name: str
    parent_id: str | None
    inputs: dict[str, Any] = {}

    is_task = False
    map_index = None


Frame = TaskMetadata | WorkflowFrame

_new_tuple = tuple.__new__


@final
class ItemFrames:
    """The frames of a run of plain map items in one thread, each made when somebody looks.

    A worker runs thousands of trivial items a second; most of them never look at their
    metadata. So a run of plain items (`MapJob.run_chunk`) sets one `ItemFrames` as the
    current frame for the whole run and moves `index` from item to item (or lets it
    follow the run's list of values, `follow`); an item's `TaskMetadata` (with its
    unique id) is made the first time something asks for it
    (`running_frame()`: `current_task()`, a nested call's parent, a log record, a failure
    report) and stays the same for the rest of that item. The arguments are the fields of
    `TaskMetadata` that are the same for every item of the run.

    A thread started in an item with `SessionContext.run_in_thread` gets the item's
    metadata itself, not this object, so it keeps seeing its item after the run moves on.
    """

    __slots__ = ("_following", "_head", "_meta", "_store", "_tail", "index")

    def __init__(
        self,
        name: str,
        qualname: str,
        description: str,
        parent_id: str | None,
        session_id: str,
        map_id: str,
        backend: str,
        dataset_store: Any,
    ) -> None:
        self._head = (name, qualname, description, parent_id, session_id)
        self._tail = (map_id, backend)
        self._store = dataset_store
        self._meta: TaskMetadata | None = None
        #: Map index of the item running now (the loop sets it before each item).
        self.index = -1
        self._following: tuple[Sequence[int], list[Any]] | None = None

    def follow(self, indexes: Sequence[int], values: list[Any]) -> None:
        """Let the running item be `indexes[len(values)]` from now on.

        For a loop that appends each item's value to `values` as the item ends (a C-level
        `values.extend(map(func, args))`), so nothing is stored per item.
        """
        self._following = (indexes, values)

    def running(self) -> int:
        """The map index of the item running now."""
        following = self._following
        if following is None:
            return self.index
        return following[0][len(following[1])]

    def meta(self) -> TaskMetadata:
        """The metadata of the item running now (made once per item)."""
        meta = self._meta
        index = self.running()
        if meta is None or meta.map_index != index:
            # every field of `TaskMetadata`, in order (no inputs: a plain call is not bound)
            fields = (new_id(), *self._head, index, *self._tail, {}, self._store)
            meta = self._meta = _new_tuple(TaskMetadata, fields)
        return meta


current_runtime: ContextVar[Runtime | None] = ContextVar("daglite_runtime", default=None)
#: The frame of the running call; read it with `running_frame()` (it may be `ItemFrames`).
current_frame: ContextVar[Frame | ItemFrames | None] = ContextVar("daglite_frame", default=None)
#: `(task_id, attempt)` of a call past its first attempt (set only when a retry happens).
current_attempt: ContextVar[tuple[str, int] | None] = ContextVar("daglite_attempt", default=None)


def attempt_of(frame: Frame) -> int:
    """Which attempt of the call `frame` is running (1 unless it is being retried)."""
    retry = current_attempt.get()
    return retry[1] if retry is not None and retry[0] == frame.task_id else 1


def current_task() -> TaskMetadata | None:
    """The metadata of the task call running in this context, or `None` outside a task.

    Outside any session a task with nothing to manage runs as a plain call, without
    metadata; inside a session or workflow every task call has its metadata.

    Examples:
        >>> from daglite import current_task, session, task
        >>> @task(name="step-{n}")
        ... def step(n: int) -> str:
        ...     return current_task().name
        >>> with session():
        ...     step(3)
        'step-3'
    """
    frame = running_frame()
    return frame if isinstance(frame, TaskMetadata) else None


def running_frame() -> Frame | None:
    """The frame of the task or workflow call running in this context, if any.

    Every reader of the current frame goes through here: a run of plain map items keeps
    one `ItemFrames` in `current_frame`, whose item metadata is made on demand.
    """
    frame = current_frame.get()
    return frame.meta() if type(frame) is ItemFrames else frame  # type: ignore[return-value]
