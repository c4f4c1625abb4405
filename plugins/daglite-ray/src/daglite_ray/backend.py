"""The `ray` backend: map items run in batches as Ray tasks or calls of warm Ray actors.

Where it runs, first match wins:

1. a cluster address: `RAY_ADDRESS`, else `address` in the plugin options
   (`[tool.daglite.options.ray]` or `DagliteSettings(options={"ray": {...}})`); the
   backend connects at the first map and disconnects when the session ends;
2. the application's own Ray (`ray.init()` already called): used, never shut down;
3. a local Ray started at the first map of the session, on 127.0.0.1, with one CPU per
   worker (`max_workers`, else the CPU count), no dashboard and no usage reporting, and
   shut down when the session ends.

Ray is imported at the first map only; a session opening with `backend="ray"` just checks
its options and that a configured address accepts connections.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from typing import ClassVar

from daglite.errors import BackendError
from daglite.errors import SettingsError
from daglite.plugin import DagliteSettings
from daglite.plugin import MapJob
from daglite.plugin import Transport
from daglite.plugin import TransportBackend
from daglite_ray import pool

ADDRESS_ENV = "RAY_ADDRESS"
#: Ray's own default for re-running a task whose worker died.
DEFAULT_MAX_RETRIES = 3
DEFAULT_CONNECT_TIMEOUT = 5.0
_OPTIONS = (
    "actors",
    "address",
    "connect_timeout",
    "idle_timeout",
    "max_retries",
    "num_cpus",
    "object_store_memory",
)
_HINT = (
    "check that Ray runs there (`ray status --address ADDRESS` on that machine), that the "
    "address and port are those `ray start --head` printed, and that no firewall is in the "
    "way; it comes from RAY_ADDRESS or `address` in [tool.daglite.options.ray]: unset both "
    "to run on a local Ray instead"
)
# Set while a local Ray starts, unless the user set them: no usage reporting, and Ray binds
# its node to 127.0.0.1 rather than to the machine's network address.
_LOCAL_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def ray_options(settings: DagliteSettings) -> dict[str, Any]:
    """The plugin options of `settings` (`settings.options["ray"]`), checked.

    Raises:
        SettingsError: The options are not a table, name an unknown option, or have a value
            of the wrong kind.
    """
    options = settings.options.get("ray", {})
    where = "[tool.daglite.options.ray]"
    if not isinstance(options, Mapping):
        raise SettingsError(f"{where} must be a table of settings, not {options!r}")
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise SettingsError(
            f"unknown option(s) {unknown} in {where}; known options: {list(_OPTIONS)}"
        )
    checked = dict(options)
    for name, kind, low in (
        ("connect_timeout", float, 0.0),
        ("idle_timeout", float, 0.0),
        ("max_retries", int, -1),
        ("num_cpus", int, 0),
        ("object_store_memory", int, 0),
    ):
        if name in checked:
            value = checked[name]
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok or value <= low or (kind is int and value != int(value)):
                what = "a number of seconds > 0" if kind is float else f"a whole number > {low}"
                raise SettingsError(f"invalid value {value!r} for {name!r} in {where}: {what}")
            checked[name] = kind(value)
    if "actors" in checked and not isinstance(checked["actors"], bool):
        raise SettingsError(
            f"invalid value {checked['actors']!r} for 'actors' in {where}: true or false"
        )
    if "address" in checked and not isinstance(checked["address"], str):
        raise SettingsError(
            f"invalid value {checked['address']!r} for 'address' in {where}: a string such "
            "as '10.0.0.5:6379' or 'auto'"
        )
    return checked


def ray_address(settings: DagliteSettings) -> str | None:
    """The configured cluster address: `RAY_ADDRESS`, else the `address` option."""
    return os.environ.get(ADDRESS_ENV) or ray_options(settings).get("address") or None


def _probe(address: str, timeout: float) -> None:
    """Open and close a TCP connection to a `host:port` or `ray://host:port` address.

    Raises:
        BackendError: Nothing accepts connections there within `timeout` seconds.
    """
    import socket

    if address in ("auto", "local"):
        return  # Ray finds (or starts) the cluster of this machine itself
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BackendError(
            f"Ray address {address!r} has no host and port; expected e.g. 10.0.0.5:6379 "
            "(the head node's GCS), ray://10.0.0.5:10001 (Ray Client) or 'auto'"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise BackendError(
            f"cannot reach Ray at {address} ({type(exc).__name__}: {exc}, timeout "
            f"{timeout:g} s): {_HINT}"
        ) from exc


class RayBackend(TransportBackend):
    """Runs map items on Ray workers, in batches, through the daglite pipeline.

    Each batch is one Ray task, or one call of a warm actor (`daglite_ray.pool`), calling
    `daglite.plugin.run_batch` on a worker, so every
    item goes through the same run pipeline as a direct call (retries, timeouts, caching,
    dataset auto-save, hooks), and its events, log records and dataset writes come back to
    the session. The connection (or the local Ray) is made once per session, at its first
    map, and released when the session ends.

    Args:
        settings: The session's settings; plugin options come from `settings.options["ray"]`:
            `actors` (run batches on warm actors, default true; see
            `daglite_ray.pool`), `idle_timeout` (seconds an idle actor waits for the
            next session, default 300), `address`, `connect_timeout` (seconds, default 5),
            `max_retries` (Ray's re-runs of a batch whose worker died, default 3), and for
            the local Ray `num_cpus` (default `max_workers`, else the CPU count) and
            `object_store_memory` (bytes).

    Raises:
        SettingsError: An option is unknown or has a wrong value.
    """

    #: Its options (`[tool.daglite.options.ray]`, `DAGLITE_RAY_<OPTION>`, `--option ray.KEY=V`).
    known_options: ClassVar[dict[str, type]] = {
        "actors": bool,
        "address": str,
        "connect_timeout": float,
        "idle_timeout": float,
        "max_retries": int,
        "num_cpus": int,
        "object_store_memory": int,
    }

    def __init__(self, settings: DagliteSettings) -> None:
        super().__init__(settings)
        options = ray_options(settings)
        self.address = ray_address(settings)
        self.connect_timeout = options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        self.max_retries = options.get("max_retries", DEFAULT_MAX_RETRIES)
        self.actors = options.get("actors", True)
        self.idle_timeout = options.get("idle_timeout", pool.IDLE_TIMEOUT)
        self.num_cpus = options.get("num_cpus") or settings.max_workers or os.cpu_count() or 1
        self.object_store_memory = options.get("object_store_memory")
        self.owns_ray = False  # this backend called ray.init: it calls ray.shutdown

    @classmethod
    def check(cls, settings: DagliteSettings) -> None:
        """Fail at session open on bad options or an unreachable configured address.

        Raises:
            SettingsError: An option is unknown or has a wrong value.
            BackendError: Nothing accepts connections at the address (the message names
                it and what to check).
        """
        options = ray_options(settings)
        address = ray_address(settings)
        if address is not None:
            _probe(address, options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))

    # -- the connection -------------------------------------------------------------------

    def make_transport(self) -> Transport:
        """Connect (or start the local Ray) and build the transport; once per session."""
        from daglite_ray.transport import RayTransport

        ray = self._connect()
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = max(1, min(cpus, self.settings.max_workers or cpus))
        return RayTransport(
            workers, self.max_retries, actors=self.actors, idle_timeout=self.idle_timeout
        )

    def _connect(self) -> Any:
        address = self.address if self.address != "local" else None
        with _local_environment(start=address is None and "ray" not in sys.modules):
            import ray

        if ray.is_initialized():
            current = ray.get_runtime_context().gcs_address
            # (a ray:// address names a Ray Client server, not the GCS: it cannot be compared)
            comparable = address and address != "auto" and not address.startswith("ray://")
            if comparable and not _same_address(str(address), current):
                raise BackendError(
                    f"this process is already connected to the Ray cluster at {current}, "
                    f"but the ray backend is configured for {address} (RAY_ADDRESS or "
                    "`address` in [tool.daglite.options.ray]); Ray connects a process to one "
                    "cluster: unset the address to use the connected one"
                )
            return ray  # the application's Ray: used, never shut down by us
        if address is not None:
            try:
                ray.init(address=address)
            except Exception as exc:
                raise BackendError(_connect_error(address, exc)) from exc
        else:
            with _local_environment(start=True):
                try:
                    ray.init(
                        address="local",
                        num_cpus=self.num_cpus,
                        object_store_memory=self.object_store_memory,
                        include_dashboard=False,
                    )
                except Exception as exc:
                    raise BackendError(
                        f"could not start a local Ray ({self.num_cpus} CPUs on 127.0.0.1): "
                        f"{type(exc).__name__}: {exc}; check `num_cpus` and "
                        "`object_store_memory` in [tool.daglite.options.ray], or set "
                        "RAY_ADDRESS to run on a Ray that is already running"
                    ) from exc
        self.owns_ray = True
        return ray

    def close(self) -> None:
        """Cancel what is in flight; shut down the Ray this backend started or connected."""
        try:
            super().close()
        finally:
            if self.owns_ray:
                self.owns_ray = False
                import ray

                pool.drop(pool.connection(ray))
                ray.shutdown()

    # -- maps -----------------------------------------------------------------------------

    @contextmanager
    def map_transport(self, job: MapJob) -> Iterator[Transport]:
        """The session's transport, told the map's task name and whether it has a `timeout`."""
        with super().map_transport(job) as transport:
            timed: set[str] = getattr(transport, "timed", set())
            names: dict[str, str] = getattr(transport, "task_names", {})
            names[job.map_id] = job.task.name
            if job.task.timeout is not None:
                timed.add(job.map_id)
            try:
                yield transport
            finally:
                timed.discard(job.map_id)
                names.pop(job.map_id, None)

    def worker_store(self, store: Any) -> Any:
        """Relative local store paths go absolute: Ray workers have their own cwd."""
        if isinstance(store, (str, Path)) and "://" not in str(store):
            return os.path.abspath(store)
        return store


def _connect_error(address: str, exc: BaseException) -> str:
    """The message of a failed `ray.init(address=...)`, with what Ray hid in its causes."""
    causes = [exc]
    while causes[-1].__cause__ is not None and len(causes) < 5:
        causes.append(causes[-1].__cause__)
    text = " ".join(str(cause) for cause in causes)
    if "AuthenticationError" in text or "InvalidAuthToken" in text:
        return (
            f"cannot connect to Ray at {address}: the cluster uses Ray's token authentication "
            "and this process sent no valid token; set RAY_AUTH_MODE=token and make the "
            "cluster's token available (~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or "
            "RAY_AUTH_TOKEN; see `ray get-auth-token`)"
        )
    if "ray[client]" in text:
        return (
            f"cannot connect to Ray at {address}: a ray:// address goes through Ray Client, "
            'which needs Ray\'s client extra: pip install "ray[client]"'
        )
    message = f"cannot connect to Ray at {address} ({type(exc).__name__}: {exc}): {_HINT}"
    if address.startswith("ray://"):
        message += (
            "; a ray:// address (Ray Client) takes the head's client server port (10001 unless "
            "`ray start --ray-client-server-port`), and a cluster with token authentication "
            "also needs RAY_AUTH_MODE=token and its token"
        )
    return message


def _same_address(configured: str, current: str) -> bool:
    """Whether `configured` (as a user wrote it) names the GCS at `current` (`ip:port`)."""
    import socket

    def resolved(address: str) -> tuple[str, str]:
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            return socket.gethostbyname(host.strip("[]")), port
        except OSError:
            return host, port

    return resolved(configured) == resolved(current)


@contextmanager
def _local_environment(start: bool) -> Iterator[None]:
    """Set `_LOCAL_ENV` (where the user did not) while a local Ray is imported and started."""
    added = [name for name in _LOCAL_ENV if start and name not in os.environ]
    for name in added:
        os.environ[name] = _LOCAL_ENV[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
