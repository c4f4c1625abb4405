"""Helpers for testing code that uses daglite (public API, like `structlog.testing`).

`capture_events()` gives an event processor that records every event of the sessions it
is passed to; `override_plugin()` makes a fake backend, store, format or processor
available under a name without installing a distribution.

Example:
    >>> from daglite import session, task
    >>> from daglite.testing import capture_events
    >>> @task
    ... def double(x: int) -> int:
    ...     return 2 * x
    >>> with capture_events() as events, session(plugins=[events]):
    ...     double(2)
    4
    >>> events.kinds()
    ['SessionStarted', 'TaskStarted', 'TaskSucceeded', 'SessionEnded']
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import contextmanager
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

from daglite import registry
from daglite.interest import Interest

if TYPE_CHECKING:
    from daglite.bytestore import ByteStore
    from daglite.cachestore import CacheStore
    from daglite.datasets import DatasetStore
    from daglite.events import Event

E = TypeVar("E", bound="Event")

__all__ = [
    "CallLog",
    "EventCapture",
    "ManualClock",
    "capture_events",
    "check_plugin",
    "memory_cache_store",
    "memory_dataset_store",
    "memory_store",
    "override_plugin",
]


class EventCapture:
    """An event processor that keeps every event it receives, in order.

    Pass it to `session(plugins=[capture])`. It may be shared by several sessions; the
    events of all of them end up in `events`.

    Args:
        kinds: The event kinds to ask for (its `interest`); `None` (the default) takes
            every event, as a processor that declares nothing does.

    Attributes:
        events: The events received so far.
    """

    def __init__(self, kinds: Iterable[str] | None = None) -> None:
        self.events: list[Event] = []
        self.interest = Interest(kinds=kinds) if kinds is not None else None
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def __repr__(self) -> str:
        return f"<EventCapture {len(self.events)} events>"

    def __getstate__(self) -> dict[str, Any]:  # processors pickle; a lock does not
        return {"events": list(self.events), "interest": self.interest}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.events = state["events"]
        self.interest = state.get("interest")
        self._lock = threading.Lock()

    def of_type(self, cls: type[E]) -> list[E]:
        """The events that are instances of `cls` (e.g. `daglite.events.TaskFailed`)."""
        return [event for event in self.events if isinstance(event, cls)]

    def kinds(self) -> list[str]:
        """The class names of the events, in order (e.g. `["SessionStarted", ...]`)."""
        return [event.kind for event in self.events]

    def clear(self) -> None:
        """Forget the events received so far."""
        with self._lock:
            self.events.clear()


class CallLog(list):  # type: ignore[type-arg]
    """A list to record the calls of a cached task in, left out of the task's cache key.

    A cache key covers what the task reads besides its arguments (closure variables,
    globals), so a plain list the task appends to would change its key at every call
    (every call a miss). A `CallLog` declares it is no part of the computation: its
    `__cache_key__()` is constant.

    Example:
        >>> from daglite import task
        >>> from daglite.testing import CallLog, memory_cache_store
        >>> calls = CallLog()
        >>> @task(cache=memory_cache_store())
        ... def double(x: int) -> int:
        ...     calls.append(x)
        ...     return 2 * x
        >>> double(2), double(2), calls
        (4, 4, [2])
    """

    def __cache_key__(self) -> str:
        return "daglite.testing.CallLog"


@contextmanager
def capture_events() -> Iterator[EventCapture]:
    """Give a fresh `EventCapture` to pass to `session(plugins=[...])`.

    It opens no session itself, so it combines with any session, workflow or backend.
    """
    yield EventCapture()


def override_plugin(kind: str, name: str, obj: Any) -> AbstractContextManager[None]:
    """Register `obj` as the plugin `name` of `kind` for the duration of a `with` block.

    Args:
        kind: `"backend"`, `"store"`, `"format"` or `"processor"`.
        name: The name sessions and tasks look it up by (e.g. `backend="fake"`).
        obj: What an entry point of that name would load (a `Backend` class, a processor
            class, ...).

    Returns:
        A context manager; the previous registration (if any) is restored on exit. Only
        this process sees the override: worker processes of a backend do not.

    Raises:
        ValueError: `kind` is unknown or `name` is empty.
    """
    return registry.override(kind, name, obj)


def check_plugin(kind: str, name: str) -> Any:
    """The installed plugin `name` of `kind`, loaded and checked as a session would.

    For a plugin's own test suite: it proves the distribution is installed, its entry point
    imports, the object fits the contract of its kind and the plugin declares the plugin API
    version of this daglite (`DAGLITE_API_VERSION`).

    Returns:
        The object of the entry point (a `Backend` class, a store factory, ...).

    Raises:
        PluginError: It is not installed, or cannot be used (the message says why).
    """
    registry.clear_cache()  # see a distribution installed after this process started
    return registry.load(kind, name)


# -- in-memory stores ----------------------------------------------------------------------


def memory_store(name: str | None = None) -> ByteStore:
    """A byte store in this process's memory, under a fresh root (or `memory://<name>`)."""
    import uuid

    from daglite.stores import open_store

    return open_store(f"memory://{name or 'daglite-test-' + uuid.uuid4().hex}")


def memory_cache_store(
    *, ttl: float | None = None, clock: Callable[[], float] | None = None
) -> CacheStore:
    """A `CacheStore` in memory, empty, with an optional TTL and injectable clock."""
    from daglite.cachestore import CacheStore

    return CacheStore(memory_store(), ttl=ttl, clock=clock)


def memory_dataset_store() -> DatasetStore:
    """A `DatasetStore` in memory, empty."""
    from daglite.datasets import DatasetStore

    return DatasetStore(memory_store())


class ManualClock:
    """A clock for TTL tests: call it for the time, `advance(seconds)` to move it."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`."""
        self.now += seconds
