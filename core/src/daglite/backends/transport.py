"""The transport contract of process-style backends, and the messages that travel on it.

A backend whose workers live in other processes (`process` in the core, `loky`, `dask`
and `ray` in plugins) is a `TransportBackend`: it only provides a `Transport`, which
hands a `BatchRequest` to a worker (where `daglite.backends.worker.run_batch` runs it),
gets the bytes of the `BatchResult` back, and reports a dead worker (`WorkerLost`) or
events a worker sent before its batch ended (`EarlyEvents`). Everything else is the
core's map loop (`daglite.backends.maploop.run_map`).

What travels:

- a `WorkerSpec`, built once per session and backend on the coordinator
  (`daglite.backends.packing.worker_spec`): what a worker needs to rebuild its side of the
  session (settings, hook plugins, stores, ids, `sys.path`, environment);
- a job blob: the cloudpickled `JobInfo` of a map (its task and ids), sent once per map;
- items: the cloudpickled `(indexes, args)` of a batch: the items' map indexes (a `range`
  when consecutive) and their argument tuples, side by side; or `(indexes, args, budget,
  single)`, for a batch whose worker stops once `budget` seconds are spent (sized before
  the cost per item was known) or whose `args` are bare values (a map of one iterable).
  Transports pass them on as they are;
- shared arguments: a large argument repeated across a map's items (the same object) is
  pickled once per map (`daglite.backends.packing.SharedArgs`) and travels beside the
  items (`BatchRequest.shared`), which refer to it by key; a worker loads each once;
- back: a cloudpickled `BatchResult` (outcomes, events, log records, dataset writes;
  compact when every item succeeded: the values alone, `BatchResult.compact`).

Workers import this module, so it imports little.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import threading
from collections.abc import Hashable
from collections.abc import Iterator
from collections.abc import Sequence
from itertools import repeat
from typing import Any
from typing import ClassVar
from typing import Protocol

import attrs

from daglite.backends.base import Backend
from daglite.backends.base import MapJob
from daglite.backends.base import Outcome
from daglite.backends.environ import describe
from daglite.settings import DagliteSettings


@attrs.frozen
class WorkerSpec:
    """What a worker needs to rebuild its side of a session (picklable with plain pickle).

    Attributes:
        key: Identifies the spec; a worker rebuilds its runtime once per key.
        session_id: The coordinator's session id (in every event a worker emits).
        settings: The session's settings.
        backend: The name of the backend the items run on (in their metadata).
        emit: Whether the coordinator listens to events (else none is even built).
        wants: Which events it wants (`daglite.interest.Wants`; `None`: every event when
            `emit` is true): the others are not built here.
        sys_path: The coordinator's `sys.path`, so tasks importable there import here.
        payload: Cloudpickled `(hook_plugins, cache_store, dataset_store)`, unpickled only
            after `sys_path` is applied (plugins may live in the user's modules).
        environ: The session's environment variables when the spec was built: only
            those workers need (`daglite.backends.environ.session_environ`: `DAGLITE_*`,
            `AWS_*`, `OTEL_*`, `FSSPEC_*` and the `worker_env` setting's). Workers that
            outlive a session (loky's, dask's) apply them, so a variable set between two
            sessions (credentials, endpoints) reaches them like a freshly started worker.
            The repr shows their names, never their values.
        clean_env: The backend started these workers on this machine for the coordinator
            (`TransportBackend.local_workers`): they drop every other variable they
            inherited but the system ones (`PATH`, `HOME`, ...).
    """

    key: str
    session_id: str
    settings: DagliteSettings
    backend: str
    emit: bool
    sys_path: tuple[str, ...]
    payload: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")  # may hold secrets
    environ: dict[str, str] = attrs.field(factory=dict, repr=describe)
    clean_env: bool = False
    wants: Any = None


@attrs.frozen
class JobInfo:
    """The per-map part of a batch: the task and the ids its items' metadata carry."""

    task: Any
    map_id: str
    parent_id: str | None
    return_exceptions: bool


@attrs.frozen
class BatchRequest:
    """One batch of items for a worker.

    `spec` and `job` may be `None` when the coordinator knows this worker already has them
    (its own pool does); plugins simply always send them (the worker still unpickles each
    only once). `stream` asks a worker that can talk back before the batch ends to send
    each event at once (a batch of slow items: so `TaskStarted` is seen while it runs).

    `shared` holds the map's large arguments repeated across items, as `(key, pickled
    value)` pairs, pickled once per map; the items refer to them by key. A worker loads
    each once. A transport may ship each once (Ray puts it in its object store) and give
    `None` in place of the bytes where the worker already has it (`shared_loaded(key)`).
    """

    spec_key: str
    spec: WorkerSpec | None
    job_key: str
    job: bytes | None
    items: bytes
    stream: bool = False
    shared: tuple[tuple[str, bytes | None], ...] = ()


# -- shared arguments ---------------------------------------------------------------------

#: Worker side: the shared arguments loaded here, by key (newest last).
_shared: dict[str, Any] = {}
_MAX_SHARED = 8


class SharedArg:
    """Stands for a shared argument in a batch's pickled items (see `BatchRequest.shared`)."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return shared_value, (self.key,)


def shared_value(key: str) -> Any:
    """The shared argument `key`, loaded in this worker (what a `SharedArg` unpickles to)."""
    return _shared[key]


def shared_loaded(key: str) -> bool:
    """Whether this worker has loaded the shared argument `key` (its bytes are not needed)."""
    return key in _shared


def load_shared(entries: tuple[tuple[str, bytes | None], ...]) -> None:
    """Load the shared arguments of a batch that this worker does not have yet."""
    import pickle

    needed = {key for key, _ in entries}
    for key, data in entries:
        if key not in _shared:
            if data is None:
                raise RuntimeError(f"worker {os.getpid()} has no value of shared argument {key}")
            old = [k for k in _shared if k not in needed][: len(_shared) + 1 - _MAX_SHARED]
            for stale in old:  # the oldest ones this batch does not use
                del _shared[stale]
            _shared[key] = pickle.loads(data)


@attrs.define
class BatchResult:
    """What a worker sends back for one batch (cloudpickled by `run_batch`).

    When every item that ran succeeded (the common case), the batch travels compact: the
    items' `indexes` and `values` side by side instead of one `(index, ok, value)` tuple
    per item, which halves the pickling on both sides. `outcomes` is made from them when
    read; the map loop reads the values directly.

    Attributes:
        outcomes: One `Outcome` `(index, ok, value)` per item that ran, in order.
        events: The events the items emitted, in order.
        logs: Log records emitted while the items ran (ready for `Logger.handle`).
        writes: Dataset writes to apply on the coordinator, in order
            (`daglite.datasets.RelayedWrite`s, relayed by the worker's `dataset_relay`).
        duration: Seconds the items took in the worker (sizes the next batches).
        tainted: A timed-out attempt is still running in this worker: replace it.
        error: Why the batch could not run at all (its task or items failed to load).
        pid: The worker's process id.
        counts: The counts of the session's task calls that ended in this worker since its
            last batch (`daglite.tallies.COUNTS` order), if any.
        map_counts: The counts of this batch's map items, if any.
        indexes: The map indexes of the items that ran (a `range` when consecutive), when
            the batch is compact; else `None`.
        values: Their values, when the batch is compact (every item succeeded); else `None`.
    """

    _outcomes: list[Outcome] | None = attrs.field(factory=list, alias="outcomes")
    events: list[Any] = attrs.field(factory=list)
    logs: list[logging.LogRecord] = attrs.field(factory=list)
    writes: list[Any] = attrs.field(factory=list)
    duration: float = 0.0
    tainted: bool = False
    error: str | None = None
    pid: int = attrs.field(factory=os.getpid)
    counts: list[int] | None = None
    map_counts: list[int] | None = None
    indexes: Sequence[int] | None = None
    values: list[Any] | None = None

    @property
    def outcomes(self) -> list[Outcome]:
        """One `(index, ok, value)` per item that ran, in order (made once if compact)."""
        if self._outcomes is None:
            self._outcomes = list(zip(self.indexes or (), repeat(True), self.values or ()))
        return self._outcomes

    @outcomes.setter
    def outcomes(self, outcomes: list[Outcome]) -> None:
        self._outcomes = outcomes
        self.indexes = self.values = None

    @property
    def size(self) -> int:
        """How many items ran."""
        return len(self.values or ()) if self._outcomes is None else len(self._outcomes)

    def succeeded(self, indexes: Sequence[int], values: list[Any]) -> None:
        """Hold the `values` of items that all succeeded: those of the first `indexes`."""
        self.indexes, self.values = indexes[: len(values)], values
        self._outcomes = None

    def compact(self, indexes: Sequence[int]) -> bool:
        """Keep the values alone if every item succeeded; returns whether it did.

        `indexes` are those of the batch's items, in the order they were to run: the
        outcomes are of its first items (a chunk runs in order until it stops).
        """
        outcomes = self.outcomes
        count = len(outcomes)
        if not count or count > len(indexes) or not all(map(_ok, outcomes)):
            return False
        if outcomes[0][0] != indexes[0] or outcomes[-1][0] != indexes[count - 1]:
            return False
        self.succeeded(indexes, list(map(_value, outcomes)))
        return True


_ok = operator.itemgetter(1)  # of an outcome (C-level getters: no Python call per item)
_value = operator.itemgetter(2)


@attrs.frozen
class WorkerLost:
    """A transport's report that the worker running a batch died.

    Attributes:
        exitcode: The worker's exit code (negative: killed by that signal), if known.
        pid: The worker's process id, if known.
        index: Map index of the item it was running, if the transport can tell.
        started: False if the batch never started (it was queued behind the one that
            killed the worker): then it simply runs again.
        certain: False if the transport cannot tell whose worker died (a pool that breaks
            as a whole fails every batch in flight): then the batch's items run again one
            at a time, with nothing else in flight, to find the one that kills workers.
        detail: What else the transport knows (appended to the error message).
    """

    exitcode: int | None = None
    pid: int | None = None
    index: int | None = None
    started: bool = True
    certain: bool = True
    detail: str | None = None


@attrs.frozen
class EarlyEvents:
    """A transport's report of events a worker sent before its batch ended.

    Attributes:
        data: The cloudpickled list of `(is_write, event_or_dataset_write)` pairs.
    """

    data: bytes


class Transport(Protocol):
    """How a backend runs batches on its workers (the only part a backend plugin writes).

    Attributes:
        workers: How many batches can run at once.

    Optional: a `depth` attribute (batches kept in flight per worker, 1 by default), a
    `started(ticket) -> float | None` method (when the batch's item started, on the
    `time.monotonic()` clock) that times items against their `timeout` from their real
    start rather than from their submission, and a `close()` method (called when the
    backend closes).
    """

    workers: int

    def submit(self, request: BatchRequest) -> Hashable:
        """Start `request` on a worker (which calls `run_batch`); returns a ticket."""
        ...

    def wait(
        self, timeout: float | None
    ) -> list[tuple[Hashable, bytes | WorkerLost | EarlyEvents]]:
        """Block up to `timeout` s for finished tickets: their `run_batch` bytes, or a loss.

        A transport whose workers can talk back during a batch may also report the events
        of a batch still running (`EarlyEvents`; asked for by `BatchRequest.stream`).
        """
        ...

    def kill(self, ticket: Hashable) -> None:
        """Stop the worker holding `ticket` now and replace it (it is not reported again)."""
        ...

    def abort(self) -> None:
        """Stop every worker now (Ctrl-C, or the loop failed); the next submit starts anew."""
        ...


class TransportBackend(Backend):
    """A backend whose workers live in other processes: it only provides a `Transport`.

    Subclasses implement `make_transport`; the core's map loop does the rest (packing,
    batch sizing, relays of events, logs and dataset writes, crash and timeout handling).
    Maps on one instance run one at a time. A map started inside a worker runs inline.

    Two optional hooks: `map_transport(job)` gives the transport of one map (by default
    the backend's one transport, held for the map's length), and `worker_store(store)`
    says how the session's cache and dataset stores are described to workers (by default
    as they are).

    Set `local_workers = True` when the backend starts its workers itself, on this machine,
    for this coordinator (a pool, not a cluster someone else runs): they then drop the
    environment variables they inherited that the session does not ship
    (`WorkerSpec.clean_env`), so a task sees the same variables on every backend.
    """

    local_workers: ClassVar[bool] = False

    def __init__(self, settings: DagliteSettings) -> None:
        super().__init__(settings)
        self._transport: Transport | None = None
        self._lock = threading.Lock()

    def make_transport(self) -> Transport:
        """Build the transport (called once, at the first map)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement make_transport()")

    @property
    def transport(self) -> Transport:
        """The transport (built at the first use)."""
        if self._transport is None:
            self._transport = self.make_transport()
        return self._transport

    @contextlib.contextmanager
    def map_transport(self, job: MapJob) -> Iterator[Transport]:
        """The transport `job` runs on, for the length of the map.

        The default holds the backend's lock and yields its one transport, so maps on one
        instance run one at a time. A backend that builds a transport per map (knowing the
        map, e.g. to name its tasks) overrides this and closes it at the end.
        """
        with self._lock:
            yield self.transport

    def worker_store(self, store: Any) -> Any:
        """How a store (a URL or a store object) of the session is described to workers.

        The default sends it as it is. A backend whose workers run elsewhere (another
        working directory, another machine) overrides this, e.g. to make local paths
        absolute.
        """
        return store

    def map(self, job: MapJob) -> list[Any]:
        """Run the items through the transport's workers; results in input order.

        Never called inside a worker: a map there runs inline (`map_tasks` picks `inline`).
        """
        from daglite.backends.maploop import run_map
        from daglite.backends.packing import worker_spec

        spec = worker_spec(job.runtime, job.backend, self.worker_store)
        if self.local_workers and not spec.clean_env:
            spec = attrs.evolve(spec, clean_env=True)
        with self.map_transport(job) as transport:
            return run_map(job, transport, spec)

    def close(self) -> None:
        """Close the transport, if it was built and has a `close`."""
        transport, self._transport = self._transport, None
        close = getattr(transport, "close", None)
        if close is not None:
            close()
