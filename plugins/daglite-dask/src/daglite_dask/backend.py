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
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlsplit

from daglite.backends.base import Backend
from daglite.backends.base import MapJob
from daglite.backends.base import Outcome
from daglite.backends.base import collect
from daglite.errors import BackendError
from daglite.settings import DagliteSettings
from daglite_dask.worker import BatchSpec
from daglite_dask.worker import run_batch

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


def _describe_items(task_name: str, chunk: list[tuple[int, Any]]) -> str:
    first, last = chunk[0][0], chunk[-1][0]
    if first == last:
        return f"task '{task_name}' (map index {first})"
    return f"task '{task_name}' (map indices {first}-{last}, one batch)"


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
        self._batches = itertools.count()

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
        try:
            if client is not None and owns:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()

    # -- maps -----------------------------------------------------------------------------

    def _nthreads(self, client: Client) -> int:
        return max(1, sum(client.nthreads().values()))

    def _chunksize(self, job: MapJob, nthreads: int) -> int:
        if job.chunksize is not None:
            return job.chunksize
        if job.total is None:
            return 64
        return max(1, -(-job.total // (nthreads * 4)))

    def _spec(self, job: MapJob) -> bytes:
        runtime = job.runtime
        session = runtime.services.get("session")
        plugins = tuple(session.hook_plugins) if session is not None and runtime.hook else ()
        parent = job.parent
        spec = BatchSpec(
            task=job.task,
            settings=runtime.settings,
            session_id=runtime.session_id,
            session_backend=runtime.backend,
            map_id=job.map_id,
            backend=job.backend,
            parent=(parent.task_id, parent.name, parent.parent_id) if parent else None,
            hook_plugins=plugins,
            cache_store=_absolute(runtime.cache_store),
            dataset_store=_absolute(runtime.dataset_store),
            listening=runtime.emit is not None,
            return_exceptions=job.return_exceptions,
        )
        return _pickle_spec(spec)

    def map(self, job: MapJob) -> list[Any]:
        """Run the items on the cluster in batches; results in input order.

        Raises:
            TaskError: The first failed item (by index), unless exceptions are returned.
            BackendError: The cluster is unreachable, a worker died running a batch (after
                dask's own retries), or a batch could not be sent or received.
        """
        from distributed import as_completed

        client = self.client
        payload = self._spec(job)
        nthreads = self._nthreads(client)
        size = self._chunksize(job, nthreads)
        limit = max(4, nthreads * 4)  # batches in flight: input is consumed lazily
        indexed = enumerate(job.items)
        chunks: dict[str, list[tuple[int, Any]]] = {}
        outcomes: list[Outcome] = []
        emit = job.runtime.emit
        prefix = f"daglite-{job.task.name}-{job.map_id}"

        def submit() -> Future | None:
            chunk = list(itertools.islice(indexed, size))
            if not chunk:
                return None
            key = f"{prefix}-{next(self._batches)}"
            chunks[key] = chunk
            return client.submit(run_batch, job.map_id, payload, chunk, key=key, pure=False)

        pending = as_completed(loop=client.loop)
        try:
            for _ in range(limit):
                future = submit()
                if future is None:
                    break
                pending.add(future)
            for future in pending:
                batch, events = self._result(job, future, chunks[future.key])
                if events and emit is not None:
                    for event in events:
                        emit(event)
                outcomes.extend(batch)
                chunk = chunks[future.key]
                chunks[future.key] = [chunk[0], chunk[-1]]  # keep only what messages need
                if not job.return_exceptions and any(not o.ok for o in batch):
                    job.stop.set()
                    break
                if not job.stop.is_set():
                    future = submit()
                    if future is not None:
                        pending.add(future)
            self._report_retries(client, job, chunks)
        except BaseException:
            job.stop.set()
            raise
        finally:
            for future in list(pending.futures):
                future.cancel()
            pending.clear()
        return collect(job, outcomes)

    def _result(
        self, job: MapJob, future: Future, chunk: list[tuple[int, Any]]
    ) -> tuple[list[Outcome], Any]:
        from distributed import KilledWorker

        try:
            return future.result()
        except KilledWorker as exc:
            allowed = _allowed_failures(self.client)
            raise BackendError(
                f"dask lost the worker running {_describe_items(job.task.name, chunk)}: "
                f"{exc} Dask gives up on a batch once it has killed {allowed + 1} worker(s) "
                f"(distributed.scheduler.allowed-failures = {allowed} on the scheduler); check "
                "the worker logs for why that item kills its process (memory limit, crash, "
                "os._exit)"
            ) from exc
        except Exception as exc:
            raise BackendError(
                f"dask could not run {_describe_items(job.task.name, chunk)}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _report_retries(
        self, client: Client, job: MapJob, chunks: dict[str, list[tuple[int, Any]]]
    ) -> None:
        # Dask re-runs a batch whose worker died; its result is good, but the user should
        # know an item killed (or was killed with) a worker. One scheduler round trip a map.
        try:
            retried = client.run_on_scheduler(_suspicious, list(chunks))
        except Exception:  # pragma: no cover - an old or locked-down scheduler
            return
        for key, count in retried.items():
            log.warning(
                "dask lost a worker while it ran %s; dask re-ran the batch on another worker "
                "(%d lost worker%s) and it succeeded",
                _describe_items(job.task.name, chunks[key]),
                count,
                "s" if count > 1 else "",
            )


def _allowed_failures(client: Client) -> int:
    try:
        return client.run_on_scheduler(_scheduler_allowed_failures)
    except Exception:  # pragma: no cover - the scheduler went away too
        import dask

        return dask.config.get("distributed.scheduler.allowed-failures")


def _scheduler_allowed_failures(dask_scheduler: Any = None) -> int:
    """On the scheduler: how many worker deaths a task may cause before it is given up."""
    return dask_scheduler.allowed_failures


def _suspicious(keys: list[str], dask_scheduler: Any = None) -> dict[str, int]:
    """On the scheduler: how many workers died running each of `keys` (only the nonzero ones)."""
    found = {}
    tasks = dask_scheduler.tasks if dask_scheduler is not None else {}
    for key in keys:
        state = tasks.get(key)
        if state is not None and state.suspicious:
            found[key] = state.suspicious
    return found


def _absolute(store: Any) -> Any:
    # Workers do not share the coordinator's working directory: send local paths absolute.
    if isinstance(store, str) and "://" not in store:
        return os.path.abspath(store)
    return store


def _pickle_spec(spec: BatchSpec) -> bytes:
    import cloudpickle

    try:
        return cloudpickle.dumps(spec)
    except Exception as exc:
        culprit = _unpicklable_part(spec)
        raise BackendError(
            f"cannot send task '{spec.task.name}' to dask workers: {culprit} does not pickle "
            f"({type(exc).__name__}: {exc}). Everything a map needs on a worker (the task, "
            "its hook plugins, the stores) must be picklable with cloudpickle"
        ) from exc


def _unpicklable_part(spec: BatchSpec) -> str:
    import cloudpickle

    parts: list[tuple[str, Any]] = [("the task", spec.task)]
    parts += [(f"hook plugin {plugin!r}", plugin) for plugin in spec.hook_plugins]
    parts += [("the cache store", spec.cache_store), ("the dataset store", spec.dataset_store)]
    for label, obj in parts:
        try:
            cloudpickle.dumps(obj)
        except Exception:
            return label
    return "the map's settings"
