"""The `dask` backend: runs map items in batches on a dask.distributed cluster.

Where it runs, first match wins:

1. a scheduler address: `DAGLITE_DASK_ADDRESS`, else `address` in the plugin options
   (`[tool.daglite.options.dask]` or `DagliteSettings(options={"dask": {...}})`);
2. the application's own running `distributed.Client` (`Client.current()`);
3. a `LocalCluster` of worker processes on 127.0.0.1 started on the first map and closed
   with the session.

`dask.distributed` is imported on the first map only; a session opening with
`backend="dask"` just checks that a configured scheduler address accepts connections.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
from collections.abc import Hashable
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlsplit

import attrs

from daglite.backends.base import Backend
from daglite.backends.base import MapJob
from daglite.backends.base import collect
from daglite.backends.batches import WorkerLost
from daglite.backends.batches import run_map
from daglite.backends.batches import worker_spec
from daglite.backends.worker import BatchRequest
from daglite.backends.worker import run_batch
from daglite.errors import BackendError
from daglite.settings import DagliteSettings

if TYPE_CHECKING:
    from distributed import Client
    from distributed import Future
    from distributed import LocalCluster

log = logging.getLogger("daglite")

ADDRESS_ENV = "DAGLITE_DASK_ADDRESS"
_OPTIONS = frozenset(
    {"address", "connect_timeout", "n_workers", "threads_per_worker", "memory_limit"}
)
_HINT = (
    "check that `dask scheduler` is running there and that the address (DAGLITE_DASK_ADDRESS, "
    "or `address` in [tool.daglite.options.dask]) and its port are right; unset it to run on "
    "a local cluster instead"
)


def dask_options(settings: DagliteSettings) -> dict[str, Any]:
    """The plugin options of `settings` (`settings.options["dask"]`), validated.

    Raises:
        BackendError: The options are not a table, or name an unknown option.
    """
    options = settings.options.get("dask", {})
    if not isinstance(options, Mapping):
        raise BackendError(
            f"daglite options for 'dask' must be a table of settings, not {options!r}"
        )
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise BackendError(
            f"unknown option(s) {unknown} for the dask backend; known options: {sorted(_OPTIONS)}"
        )
    return dict(options)


def scheduler_address(settings: DagliteSettings) -> str | None:
    """The configured scheduler address: `DAGLITE_DASK_ADDRESS`, else the `address` option."""
    return os.environ.get(ADDRESS_ENV) or dask_options(settings).get("address") or None


def _probe(address: str, timeout: float) -> None:
    """Open and close a TCP connection to `address` (a `tcp://` or `tls://` URL, or host:port).

    Raises:
        BackendError: Nothing accepts connections there within `timeout` seconds.
    """
    import socket

    if "://" not in address:
        address = "tcp://" + address
    parts = urlsplit(address)
    if parts.scheme not in ("tcp", "tls"):
        return  # other transports (inproc, ucx, ws) are checked when the client connects
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise BackendError(
            f"dask scheduler address {address!r} has no host and port; "
            "expected e.g. tcp://10.0.0.5:8786"
        )
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        raise BackendError(
            f"cannot reach the dask scheduler at {address} "
            f"({type(exc).__name__}: {exc}, timeout {timeout:g} s): {_HINT}"
        ) from exc


class DaskBackend(Backend):
    """Runs map items on dask.distributed workers, in batches, through the daglite pipeline.

    Items travel in batches (one dask task per batch, so trivial items are not dominated by
    scheduler overhead); each worker runs its batch through the same run pipeline as a
    direct call (retries, timeouts, caching, dataset auto-save, hooks) and sends back the
    outcomes with the events it emitted, which are replayed into the session's processors.
    A map started inside a mapped task runs inline on its worker.

    Args:
        settings: The session's settings; plugin options come from `settings.options["dask"]`:
            `address`, `connect_timeout` (seconds, default 5), and for the local cluster
            `n_workers` (default `settings.max_workers` or up to 2), `threads_per_worker`
            (default 1) and `memory_limit` (default "auto").

    Raises:
        BackendError: An option is unknown.
    """

    shares_memory = False

    def __init__(self, settings: DagliteSettings) -> None:
        super().__init__(settings)
        options = dask_options(settings)
        self.address = scheduler_address(settings)
        self.connect_timeout = float(options.get("connect_timeout", 5))
        self.n_workers = int(
            options.get("n_workers") or settings.max_workers or min(2, os.cpu_count() or 1)
        )
        self.threads_per_worker = int(options.get("threads_per_worker", 1))
        self.memory_limit = options.get("memory_limit", "auto")
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._owns_client = False
        self._lock = threading.Lock()
        self._rerun: dict[str, int] = {}
        self._watching: Client | None = None

    @classmethod
    def check(cls, settings: DagliteSettings) -> None:
        """Fail at session open when a configured scheduler address is unreachable.

        Raises:
            BackendError: The options are invalid, or the scheduler does not accept
                connections (the message names the address and what to check).
        """
        options = dask_options(settings)
        address = scheduler_address(settings)
        if address is not None:
            _probe(address, float(options.get("connect_timeout", 5)))

    # -- the cluster ----------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The client maps run on (connecting, or starting the local cluster, on first use).

        Raises:
            BackendError: The scheduler is unreachable, or the local cluster failed to start.
        """
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Client:
        from distributed import Client

        if self.address is not None:
            try:
                client = Client(self.address, timeout=self.connect_timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise BackendError(
                    f"cannot connect to the dask scheduler at {self.address} "
                    f"({type(exc).__name__}: {exc}): {_HINT}"
                ) from exc
            self._owns_client = True
            return client
        try:
            current = Client.current()
        except ValueError:
            current = None
        if current is not None and current.status == "running":
            return current  # the application's client: used, never closed by us
        return self._start_local_cluster()

    def _start_local_cluster(self) -> Client:
        from distributed import Client
        from distributed import LocalCluster

        try:
            cluster = LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=self.threads_per_worker,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",  # None would still bind :8787
                memory_limit=self.memory_limit,
            )
        except Exception as exc:
            raise BackendError(
                f"could not start a local dask cluster ({self.n_workers} workers on 127.0.0.1): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        self._cluster = cluster
        self._owns_client = True
        return Client(cluster, set_as_default=False)

    def close(self) -> None:
        """Close the client and the local cluster this backend started (never the app's own)."""
        with self._lock:
            client, self._client = self._client, None
            cluster, self._cluster = self._cluster, None
            owns, self._owns_client = self._owns_client, False
            watching, self._watching = self._watching, None
        if watching is not None and watching.status == "running":
            # Also before closing our own client: the scheduler would announce its removal
            # to it on that topic, over the connection being closed.
            watching.unsubscribe_topic("all")
        try:
            if client is not None and owns:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()

    # -- maps -----------------------------------------------------------------------------

    def map(self, job: MapJob) -> list[Any]:
        """Run the items on the cluster in batches; results in input order.

        Raises:
            TaskError: The first failed item (by index), unless exceptions are returned.
            BackendError: The cluster is unreachable, a worker died running an item (after
                dask's own retries), or something cannot be sent to the workers.
        """
        if job.runtime.in_worker:
            return collect(job, job.run_chunk(enumerate(job.items)))
        runtime = job.runtime
        # Workers do not share the coordinator's working directory: local paths go absolute.
        shipped = attrs.evolve(
            runtime,
            cache_store=_absolute(runtime.cache_store),
            dataset_store=_absolute(runtime.dataset_store),
        )
        spec = worker_spec(shipped, job.backend)
        client: Any = self.client  # Any: distributed's sync/async methods confuse checkers
        self._watch_lost_workers(client)
        nthreads = max(1, sum(client.nthreads().values()))
        transport = DaskTransport(client, nthreads, job.task.name, self._rerun)
        return run_map(job, transport, spec)

    def _watch_lost_workers(self, client: Client) -> None:
        # The scheduler announces each removed worker with the tasks it was processing on
        # its "all" topic; a batch among them that still succeeds was re-run by dask.
        if self._watching is client:
            return
        handlers = getattr(client, "_event_handlers", {})
        if "all" in handlers:  # the application listens there itself: leave it alone
            return
        client.subscribe_topic("all", self._on_cluster_event)
        self._watching = client

    def _on_cluster_event(self, event: tuple[float, Any]) -> None:
        message = event[1] if isinstance(event, tuple) and len(event) == 2 else event
        if isinstance(message, dict) and message.get("action") == "remove-worker":
            for key in message.get("processing-tasks") or ():
                if isinstance(key, str) and key.startswith("daglite-"):
                    self._rerun[key] = self._rerun.get(key, 0) + 1


class DaskTransport:
    """The `Transport` of one map over a dask client (see `daglite.backends.batches`).

    Each batch is one dask task calling `daglite.backends.worker.run_batch` on a worker;
    `depth` batches per worker thread are kept in flight to hide the scheduler's round
    trip. A batch whose worker died is re-run by dask elsewhere (up to the scheduler's
    `allowed-failures`). When dask gives up, every batch that was on the dying worker
    fails with it, also those only queued behind the culprit: a loss is reported as
    certain only when the batch was the map's only one in flight, otherwise the map loop
    runs those items again alone to find the one that kills workers.

    Args:
        client: The client to submit to.
        workers: How many worker threads the cluster has.
        name: The task's name (in the dask keys, so the dashboard tells maps apart).
        rerun: Shared counts of workers lost per key (filled from scheduler events).
    """

    depth = 2

    def __init__(self, client: Client, workers: int, name: str, rerun: dict[str, int]) -> None:
        self.client: Any = client  # Any: distributed's sync/async methods confuse checkers
        self.workers = workers
        self.name = name
        self._rerun = rerun
        self._futures: dict[str, Future] = {}  # dask key (the ticket) -> future in flight
        self._recent: dict[str, Future] = {}
        self._done: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._count = itertools.count()

    def submit(self, request: BatchRequest) -> Hashable:
        """Submit `request` as one dask task; its key is the ticket."""
        key = f"daglite-{self.name}-{request.job_key}-{next(self._count)}"
        future = self.client.submit(run_batch, request, key=key, pure=False)
        self._futures[key] = future
        future.add_done_callback(lambda done: self._done.put(done.key))
        return key

    def wait(self, timeout: float | None) -> list[tuple[Hashable, bytes | WorkerLost]]:
        """Finished batches: the bytes `run_batch` returned, or a `WorkerLost`.

        Raises:
            BackendError: Dask cancelled a batch or could not run it for another reason.
        """
        try:
            keys = [self._done.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                keys.append(self._done.get_nowait())
            except queue.Empty:
                break
        answers: list[tuple[Hashable, bytes | WorkerLost]] = []
        finished: dict[str, Future] = {}
        failed: list[tuple[str, Future]] = []
        for key in keys:
            future = self._futures.pop(key, None)
            if future is None:  # killed or aborted meanwhile
                continue
            if future.status == "finished":
                finished[key] = future
            else:
                failed.append((key, future))
        certain = len(failed) == 1 and not self._futures  # nothing else was in flight
        for key, future in failed:
            answers.append((key, self._failure(key, future, certain)))
        if finished:
            for key, data in zip(finished, self.client.gather(list(finished.values()))):
                answers.append((key, data))
                lost = self._rerun.pop(key, 0)
                if lost:
                    log.warning(
                        "dask lost %d worker%s while running a batch of task '%s' (dask key "
                        "%s); dask re-ran the batch on another worker and it succeeded",
                        lost,
                        "s" if lost > 1 else "",
                        self.name,
                        key,
                    )
        self._recent = finished  # kept until the next wait, for `kill` of a tainted worker
        return answers

    def _failure(self, key: str, future: Future, certain: bool) -> WorkerLost:
        from distributed import KilledWorker

        self._rerun.pop(key, None)
        error: Any = future.exception() if future.status == "error" else None
        if isinstance(error, KilledWorker):
            worker = getattr(error, "last_worker", None)
            allowed = getattr(error, "allowed_failures", None)
            tries = f" after {allowed + 1} lost worker(s)" if allowed is not None else ""
            where = f" at {worker.address}" if worker is not None else ""
            return WorkerLost(
                pid=getattr(worker, "pid", None),
                certain=certain,
                detail=(
                    f"the dask worker{where} died and dask gave up on the batch{tries} "
                    "(distributed.scheduler.allowed-failures); see that worker's log"
                ),
            )
        if error is None:
            raise BackendError(
                f"dask cancelled a batch of task '{self.name}' (key {key}): the scheduler "
                "restarted, or this client lost its connection to it"
            )
        raise BackendError(
            f"dask could not run a batch of task '{self.name}' (key {key}): "
            f"{type(error).__name__}: {error}"
        ) from error

    def kill(self, ticket: Hashable) -> None:
        """Restart the worker process running (or that just ran) batch `ticket`."""
        key = str(ticket)
        future = self._futures.pop(key, None)
        address = None
        try:
            if future is not None:
                address = self.client.run_on_scheduler(_processing_on, key)
                future.cancel()
            elif key in self._recent:
                done = self._recent.pop(key)
                holders = self.client.who_has(done).get(key) or ()
                address = next(iter(holders), None)
                done.release()  # else dask would recompute the batch the restart loses
            if address is not None:
                self.client.restart_workers([address], raise_for_error=True)
        except Exception as exc:
            log.warning(
                "could not restart dask worker %s, which still runs an abandoned timed-out "
                "attempt of task '%s': %s: %s",
                address,
                self.name,
                type(exc).__name__,
                exc,
            )

    def abort(self) -> None:
        """Release every batch in flight (dask cannot stop a running one; it finishes)."""
        futures = list(self._futures.values())
        self._futures.clear()
        if futures:
            self.client.cancel(futures)


def _processing_on(key: str, dask_scheduler: Any = None) -> str | None:
    """On the scheduler: the address of the worker processing `key`, if any."""
    state = dask_scheduler.tasks.get(key) if dask_scheduler is not None else None
    worker = state.processing_on if state is not None else None
    return worker.address if worker is not None else None


def _absolute(store: Any) -> Any:
    if isinstance(store, str) and "://" not in store:
        return os.path.abspath(store)
    return store
