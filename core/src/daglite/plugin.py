"""The public plugin API: the one module of the core a plugin imports.

Besides `daglite.events`, `daglite.errors` and `daglite.testing`, a plugin (ours or a
third party's) imports nothing of daglite but this module. It holds the contracts of the
four plugin kinds and the few facts a plugin needs at run time:

- backends (`daglite.backends`): subclass `Backend` and implement `map`, or, for workers
  in other processes, write a `Transport` and subclass `TransportBackend`, which owns the
  map loop (batching, relays, crash and timeout handling);
- stores (`daglite.stores`): a factory `(url, options) -> ByteStore`;
- formats (`daglite.formats`): an object of the `Format` shape;
- processors (`daglite.processors`): a callable over one event (`Processor`).

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

from typing import Any

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
from daglite.pluginoptions import plugin_options
from daglite.settings import DagliteSettings
from daglite.stores import ByteStore

#: The version of this contract (bumped on any incompatible change).
API_VERSION = 1

__all__ = [
    "API_VERSION",
    "Backend",
    "BatchRequest",
    "ByteStore",
    "DagliteSettings",
    "EarlyEvents",
    "Format",
    "MapJob",
    "Outcome",
    "Transport",
    "TransportBackend",
    "WorkerLost",
    "current_settings",
    "emit",
    "in_worker",
    "kill_group",
    "plugin_options",
    "run_batch",
    "watch_coordinator",
]


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


def emit(event: Any) -> None:
    """Hand `event` to the session's processors (relayed from workers like built-in events).

    Does nothing when no processor listens.
    """
    from daglite.context import current_runtime

    runtime = current_runtime.get()
    if runtime is not None and runtime.emit is not None:
        runtime.emit(event)
