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

import contextlib
import os
import threading
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar
from urllib.parse import urlsplit

from daglite.errors import BackendError
from daglite.plugin import DagliteSettings
from daglite.plugin import MapJob
from daglite.plugin import TransportBackend
from daglite_dask.transport import DaskTransport

if TYPE_CHECKING:
    from distributed import Client
    from distributed import LocalCluster


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


class DaskBackend(TransportBackend):
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

    #: Its options (`[tool.daglite.options.dask]`, `DAGLITE_DASK_<OPTION>`, `--option dask.KEY=V`).
    known_options: ClassVar[dict[str, type]] = {
        "address": str,
        "connect_timeout": float,
        "n_workers": int,
        "threads_per_worker": int,
        "memory_limit": str,
    }

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

        from daglite_dask.mainguard import spawns_workers
        from daglite_dask.mainguard import unguarded_line

        unguarded = unguarded_line()
        if unguarded is not None and spawns_workers():
            path, line = unguarded
            raise BackendError(
                f"{Path(path).name} starts a local dask cluster from module-level code "
                f"(line {line}), and each of its worker processes imports the script again: "
                'put that code under `if __name__ == "__main__":`'
            )
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

    @contextlib.contextmanager
    def map_transport(self, job: MapJob) -> Iterator[DaskTransport]:
        """A transport for this map only (maps on one client may run side by side).

        Raises:
            BackendError: The cluster is unreachable, or the local cluster failed to start.
        """
        client: Any = self.client  # Any: distributed's sync/async methods confuse checkers
        self._watch_lost_workers(client)
        nthreads = max(1, sum(client.nthreads().values()))
        transport = DaskTransport(
            client,
            nthreads,
            job.task.name,
            job.map_id,
            self._rerun,
            timed=job.task.timeout is not None,
            listening=job.runtime.emit is not None,
        )
        try:
            yield transport
        finally:
            transport.close()

    def worker_store(self, store: Any) -> Any:
        """Local store paths go absolute: workers do not share the coordinator's directory."""
        if isinstance(store, str) and "://" not in store:
            return os.path.abspath(store)
        return store

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
