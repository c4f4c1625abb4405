"""`backend="loky"`: the core's process-backend machinery on loky's reusable executor.

Everything but the transport comes from the core (`daglite.plugin.TransportBackend`): its
map loop packs and sizes batches, relays events, logs and dataset writes, names crashed
items and watches timeouts; `daglite.plugin.run_batch` runs a batch in a loky worker,
rebuilding the session's worker side once per worker. This module only says how to hand a
batch to loky and how loky reports a dead worker.

loky's executor is reusable: it outlives the session (its idle workers leave after
`idle_timeout` seconds), so the next session, or the next run in the same interpreter,
finds it warm. When a worker dies, loky breaks the executor (every batch in flight fails)
and starts a new one at the next submit; the session's other resources are untouched.
Since a broken executor does not say whose worker died, the batches it took down run
again one at a time, so the item that kills workers is found and named.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import CancelledError
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from daglite.errors import SettingsError
from daglite.plugin import BatchRequest
from daglite.plugin import EarlyEvents
from daglite.plugin import TransportBackend
from daglite.plugin import WorkerLost
from daglite.plugin import run_batch

#: Seconds an idle loky worker waits for work before it leaves.
DEFAULT_IDLE_TIMEOUT = 300.0

_EXITCODE = re.compile(r"\((-?\d+)\)")


class LokyTransport:
    """The `Transport` over `loky.get_reusable_executor` (see `daglite.plugin.Transport`).

    Args:
        workers: Worker processes of the executor.
        idle_timeout: Seconds before an idle worker leaves.
    """

    depth = 2  # batches in flight per worker: one running, one in loky's call queue

    def __init__(self, workers: int, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self.workers = workers
        self.idle_timeout = idle_timeout
        self._pending: set[Future[bytes]] = set()

    def _executor(self) -> Any:
        from loky import get_reusable_executor

        idle = math.ceil(self.idle_timeout)  # loky counts whole seconds
        return get_reusable_executor(max_workers=self.workers, timeout=idle)

    def submit(self, request: BatchRequest) -> Hashable:
        """Hand `request` to loky; the future is the ticket."""
        future = self._executor().submit(run_batch, request)
        self._pending.add(future)
        return future

    def wait(
        self, timeout: float | None
    ) -> list[tuple[Hashable, bytes | WorkerLost | EarlyEvents]]:
        """Finished futures: the bytes of `run_batch`, or `WorkerLost` if loky broke."""
        if not self._pending:
            return []
        done, _ = wait_futures(self._pending, timeout, return_when=FIRST_COMPLETED)
        finished: list[tuple[Hashable, bytes | WorkerLost | EarlyEvents]] = []
        for future in done:
            self._pending.discard(future)
            try:
                finished.append((future, future.result()))
            except (BrokenProcessPool, CancelledError) as exc:
                finished.append((future, WorkerLost(exitcode=_exitcode(exc), certain=False)))
        return finished

    def kill(self, ticket: Hashable) -> None:
        """Loky cannot stop one worker: stop them all (the others' batches run again)."""
        self._pending.discard(ticket)  # type: ignore[arg-type]
        self._executor().shutdown(wait=False, kill_workers=True)

    def abort(self) -> None:
        """Kill every worker now."""
        self._pending.clear()
        self._executor().shutdown(wait=False, kill_workers=True)


def _exitcode(exc: BaseException) -> int | None:
    """The first exit code in loky's message ("... are {SIGKILL(-9)}"), if any."""
    match = _EXITCODE.search(str(exc))
    return int(match.group(1)) if match else None


class LokyBackend(TransportBackend):
    """Runs items on loky's reusable executor, with the core's batching and relays.

    `max_workers` (settings) sizes the executor (the CPU count by default);
    `[tool.daglite.options.loky] idle_timeout` says how long idle workers stay (300 s).
    """

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        import os

        options = dict(settings.options.get("loky", {}))
        raw = options.pop("idle_timeout", DEFAULT_IDLE_TIMEOUT)
        if options:
            raise SettingsError(
                f"unknown option(s) {sorted(options)} in [tool.daglite.options.loky]; "
                "known options: ['idle_timeout']"
            )
        try:
            idle = float(raw)
        except (TypeError, ValueError):
            idle = -1.0
        if idle <= 0:
            raise SettingsError(
                f"invalid value {raw!r} for 'idle_timeout' in "
                "[tool.daglite.options.loky]: must be a number of seconds > 0"
            )
        self.workers = settings.max_workers or os.cpu_count() or 1
        self.idle_timeout = idle

    def make_transport(self) -> LokyTransport:
        """The transport over loky's reusable executor."""
        return LokyTransport(self.workers, self.idle_timeout)

    def close(self) -> None:
        """Nothing to release: the reusable executor stays warm for the next session."""
