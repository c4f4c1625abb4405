"""The public plugin API: the one module of the core a plugin imports.

Besides `daglite.events`, `daglite.errors` and `daglite.testing`, a plugin (ours or a
third party's) imports nothing of daglite but this module. It holds the contracts of the
four plugin kinds and the few facts a plugin needs at run time:

- backends (`daglite.backends`): subclass `Backend` and implement `map`, or, for workers
  in other processes, write a `Transport` and subclass `TransportBackend`, which owns the
  map loop (batching, relays, crash and timeout handling);
- stores (`daglite.stores`): a factory `(url, options) -> ByteStore`;
- formats (`daglite.formats`): an object of the `Format` shape;
- processors (`daglite.processors`): a callable over one event (`Processor`), which may
  declare the events it wants (`Interest`): nothing else is built for it.

`API_VERSION` is the version of this contract; a plugin built for another version is
refused at load with an error naming it. A plugin says which version it was built for
with `DAGLITE_API_VERSION = 1` (the literal number) in the top-level package of its entry
points.

Plugin options: a plugin object (backend class, processor class, store factory) may
declare `known_options = {"name": type, ...}`. The core then checks the plugin's options
(`[tool.daglite.options.<plugin>]`, `DAGLITE_<PLUGIN>_<OPTION>`, `daglite run --option
<plugin>.<key>=<value>`) before building it: an unknown option is an error naming the
known ones, and text from a variable or the command line becomes a `bool`, `int` or
`float` as declared. `plugin_options()` reads them the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol
from typing import runtime_checkable

from daglite.backends.base import Backend
from daglite.backends.base import MapJob
from daglite.backends.base import Outcome
from daglite.backends.lifeline import kill_group
from daglite.backends.lifeline import watch_coordinator
from daglite.backends.transport import BatchRequest
from daglite.backends.transport import EarlyEvents
from daglite.backends.transport import Transport
from daglite.backends.transport import TransportBackend
from daglite.backends.transport import WorkerLost
from daglite.backends.worker import run_batch
from daglite.formats import Format
from daglite.interest import EVERYTHING
from daglite.interest import Interest
from daglite.pluginoptions import plugin_options
from daglite.settings import DagliteSettings
from daglite.stores import ByteStore

if TYPE_CHECKING:
    from daglite.events import Event

#: The version of this contract (bumped on any incompatible change).
API_VERSION = 1

__all__ = [
    "API_VERSION",
    "EVERYTHING",
    "Backend",
    "BatchRequest",
    "ByteStore",
    "DagliteSettings",
    "EarlyEvents",
    "Format",
    "Interest",
    "MapJob",
    "Outcome",
    "Processor",
    "Transport",
    "TransportBackend",
    "WorkerLost",
    "current_settings",
    "emit",
    "in_worker",
    "kill_group",
    "plugin_options",
    "run_batch",
    "wanted",
    "watch_coordinator",
]


@runtime_checkable
class Processor(Protocol):
    """An event processor: a callable over one event.

    Optional members, found by name:

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

    def __call__(self, event: Event) -> Any:
        """Handle one event (called under the dispatcher's lock, one event at a time)."""
        ...


def in_worker() -> bool:
    """True inside a worker process of a process-style backend."""
    from daglite.context import current_runtime

    runtime = current_runtime.get()
    return runtime is not None and runtime.in_worker


def current_settings() -> DagliteSettings:
    """The settings of the session the caller runs in (the global settings outside one)."""
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


def emit(event: Any) -> None:
    """Hand `event` to the session's processors (relayed from workers like built-in events).

    Does nothing when no processor wants events of its kind.
    """
    from daglite.context import current_runtime
    from daglite.interest import wants_of

    runtime = current_runtime.get()
    sink = runtime.emit if runtime is not None else None
    if sink is not None and type(event).__name__ in wants_of(sink):
        sink(event)
