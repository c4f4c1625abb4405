"""The public plugin API: the one module of the core a plugin imports.

Besides `daglite` itself, `daglite.events`, `daglite.errors` and `daglite.testing`, a
plugin (ours or a third party's) imports nothing of daglite but this module. It holds the
contracts of the four plugin kinds, each registered in its entry-point group, and the few
facts a plugin needs at run time:

- backends (`daglite.backends`): a `Backend` subclass; for workers in other processes, a
  `TransportBackend` subclass, which only builds a `Transport` (the core's map loop does
  the rest);
- stores (`daglite.stores`, named by URL scheme): a `StoreFactory`,
  `(url, options, settings) -> ByteStore`;
- formats (`daglite.formats`): a `Format` (subclass `BaseFormat` for the defaults);
- processors (`daglite.processors`): a `Processor`, a callable over one event, which may
  declare the events it wants (`Interest`): nothing else is built for it.

`collect(job, outcomes)` is what a `Backend.map` returns: the values in input order, or
the first failure (by index) raised unless the map returns exceptions.

At run time: `in_worker()` tells whether the caller runs in a worker process,
`current_settings()` gives the settings of the session it runs in (in workers too), and
`emit(event)` hands an event to the session's processors, relayed from workers exactly
like the built-in events.

`API_VERSION` is the version of this contract; it is bumped on any incompatible change,
and a plugin built for another version is refused at load with an error naming it. A
plugin says which version it was built for with `DAGLITE_API_VERSION = 1` (the literal
number) in the top-level package of its entry points.

Plugin options: a plugin object (backend class, processor class, store factory) may
declare `known_options = {"name": type, ...}`. The core then checks the plugin's options
(`[tool.daglite.options.<plugin>]`, `DAGLITE_<PLUGIN>_<OPTION>`, `daglite run --option
<plugin>.<key>=<value>`) before building it: an unknown option is an error naming the
known ones, and text from a variable or the command line becomes a `bool`, `int` or
`float` as declared. `plugin_options()` reads them the same way.

See the plugin API page of the documentation for a worked example of each kind.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any
from typing import ClassVar
from typing import Protocol
from typing import TypeVar
from typing import runtime_checkable

from daglite.backends.base import Backend
from daglite.backends.base import MapJob
from daglite.backends.base import Outcome
from daglite.backends.base import collect
from daglite.backends.lifeline import kill_group
from daglite.backends.lifeline import watch_coordinator
from daglite.backends.transport import BatchRequest
from daglite.backends.transport import EarlyEvents
from daglite.backends.transport import Transport
from daglite.backends.transport import TransportBackend
from daglite.backends.transport import WorkerLost
from daglite.backends.transport import shared_loaded
from daglite.backends.worker import run_batch
from daglite.bytestore import ByteStore
from daglite.events import Event
from daglite.formats import Format
from daglite.interest import EVERYTHING
from daglite.interest import Interest
from daglite.pluginoptions import plugin_options
from daglite.settings import DagliteSettings

#: The version of this contract (bumped on any incompatible change).
API_VERSION = 1

__all__ = [
    "API_VERSION",
    "EVERYTHING",
    "Backend",
    "BaseFormat",
    "BatchRequest",
    "ByteStore",
    "DagliteSettings",
    "EarlyEvents",
    "Format",
    "Interest",
    "MapJob",
    "Outcome",
    "Processor",
    "StoreFactory",
    "Transport",
    "TransportBackend",
    "WorkerLost",
    "collect",
    "current_settings",
    "emit",
    "in_worker",
    "kill_group",
    "plugin_options",
    "run_batch",
    "shared_loaded",
    "wanted",
    "watch_coordinator",
]

E = TypeVar("E", bound=Event)


# -- stores -----------------------------------------------------------------------------------


class StoreFactory(Protocol):
    """What a `daglite.stores` entry point names: builds the byte store of one URL.

    The core calls it once per URL and options in a process (stores are reused), with the
    settings of the session that opens the store first (the global settings outside any
    session; in a worker, the session's). Plugin options live in `settings.options`, e.g.
    `settings.options.get("s3", {})` for `[tool.daglite.options.s3]`. The `ByteStore` it
    returns must pickle back to an equal store (its `__reduce__` reopens the URL with its
    `options`), since stores travel to worker processes.

    A factory of two parameters, `(url, options)`, is still called as before.
    """

    def __call__(
        self, url: str, options: dict[str, Any], settings: DagliteSettings
    ) -> ByteStore:  # pragma: no cover - a protocol
        """The store of `url` (with its scheme) built with the store's `options`.

        Raises:
            StoreError: The store cannot be opened (say why, and never show a secret).
        """
        ...


# -- formats ----------------------------------------------------------------------------------


class BaseFormat(abc.ABC):
    """A base for formats: set `name` (and `extensions`, `types`), write `dumps`, `loads`.

    Any object of the `Format` shape works as well; this base supplies the defaults of the
    optional parts: no extensions, no claimed types, no `cache_types` (the result cache
    keeps pickling values), no `cache_options`. A subclass missing `dumps` or `loads`
    cannot be instantiated (so the registry reports it when the format is loaded).

    Attributes:
        name: The format's name (its entry-point name).
        extensions: Key extensions that select it, without the dot (`("json",)`).
        types: Value types it claims when no format or extension says otherwise: classes,
            or `"module.QualName"` strings so that a heavy library need not be imported.
    """

    name: str = ""
    extensions: Sequence[str] = ()
    types: Sequence[type | str] = ()
    cache_types: Sequence[type | str] = ()
    cache_options: ClassVar[dict[str, Any]] = {}

    @abc.abstractmethod
    def dumps(self, value: Any, options: dict[str, Any]) -> bytes:
        """The bytes of `value` (a bytes-like object is fine too), saved with `options`."""

    @abc.abstractmethod
    def loads(self, data: bytes, return_type: Any, options: dict[str, Any]) -> Any:
        """The value stored in `data` (`return_type` is the type asked for, or `None`)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# -- processors -------------------------------------------------------------------------------


@runtime_checkable
class Processor(Protocol):
    """What a `daglite.processors` entry point builds: a callable over one event.

    It is called on the coordinator, one event at a time (never concurrently), with the
    events of the session it wants, also those relayed from workers. A processor that
    raises is reported once and disabled for the session. Optional members, found by name:

    - `interest`: an `Interest` (or a collection of event kind names) saying which events
      the processor wants, read once when the session opens. Events nobody wants are not
      built, buffered or shipped from workers; the processor receives exactly the kinds it
      names (and `LogRecorded` records at or above its `log_level`). Without it, the
      processor receives every event. To follow maps without an event per item, ask for
      `MapStarted`, `MapProgress` and `MapEnded`: workers then send counts per batch.
    - `replaces`: names of processors this one supersedes (they are left out of a session
      that has this one).
    - `close()`: called once when the session ends.
    - `from_settings(settings)` (a class method): how the registry builds it by name.
    """

    def __call__(self, event: Event) -> Any:  # pragma: no cover - a protocol
        """Handle one event (called under the dispatcher's lock, one event at a time)."""
        ...


# -- worker-side facts ------------------------------------------------------------------------


def in_worker() -> bool:
    """True inside a worker process of a process-style backend (`process`, `loky`, `dask`).

    True while a batch runs there (in its tasks, hooks, stores and formats), and in a
    worker's `on_worker_start` hook.
    """
    from daglite.context import current_runtime

    runtime = current_runtime.get()
    return runtime is not None and runtime.in_worker


def current_settings() -> DagliteSettings:
    """The settings of the session the caller runs in, also in a worker process.

    Outside any session: the global settings (environment, `pyproject.toml`, defaults).
    """
    from daglite.context import bare_runtime
    from daglite.context import current_runtime

    runtime = current_runtime.get() or bare_runtime()
    return runtime.settings


def wanted(kind: str) -> bool:
    """Whether a processor of the current session wants events of `kind` (build them only then).

    False outside a session, or when nobody listens.
    """
    from daglite.context import current_runtime
    from daglite.interest import wants_of

    runtime = current_runtime.get()
    return runtime is not None and runtime.emit is not None and kind in wants_of(runtime.emit)


def emit(event: Event | type[E], /, **fields: Any) -> bool:
    """Hand an event to the session's processors; relayed from workers like built-in events.

    Pass an event, or an event class and its fields: the class is then built (with the
    current session's `session_id`) only when some processor wants events of its kind.
    In a worker process the event travels to the coordinator with the batch's own events,
    in order, and reaches the same processors. Event classes of a plugin subclass
    `daglite.events.Event` (frozen attrs classes, `kw_only=True`) and must pickle.

    Returns:
        True if the event was handed on; False when no processor wants it (outside a
        session, in a session without processors, or none whose `interest` names its kind).

    Raises:
        TypeError: `fields` given with an event instance, or `event` is not an `Event`.
    """
    from daglite.context import current_runtime
    from daglite.interest import wants_of

    runtime = current_runtime.get()
    sink = runtime.emit if runtime is not None else None
    if isinstance(event, type):
        if not issubclass(event, Event):
            raise TypeError(f"emit() takes a daglite.events.Event, not the class {event!r}")
        if sink is None or event.__name__ not in wants_of(sink):
            return False
        assert runtime is not None
        sink(event(session_id=runtime.session_id, **fields))
        return True
    if not isinstance(event, Event):
        raise TypeError(
            f"emit() takes a daglite.events.Event (or an Event class and its fields), "
            f"not {type(event).__name__}"
        )
    if fields:
        raise TypeError("emit() takes fields only with an event class, not with an event")
    if sink is None or type(event).__name__ not in wants_of(sink):
        return False
    sink(event)
    return True
