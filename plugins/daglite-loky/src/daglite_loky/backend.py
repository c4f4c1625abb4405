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

No orphans: each worker leads a process group of its own and ends (with the subprocesses
its tasks started) when the coordinator dies (`daglite.plugin.watch_coordinator`, run as
loky's initializer). Stopping workers (an item past its `timeout`, Ctrl-C) SIGKILLs their
groups here, synchronously, before loky is told to shut the executor down: a worker stuck
in C code cannot keep running, and loky's exit handler finds nothing left to wait for.
A submit or a future failing because the executor broke or was shut down is a lost
batch that runs again, never an error of the map.
"""

from __future__ import annotations

import math
import os
import re
import signal
from collections.abc import Hashable
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import CancelledError
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from typing import Any
from typing import ClassVar

from daglite.errors import SettingsError
from daglite.plugin import BatchRequest
from daglite.plugin import EarlyEvents
from daglite.plugin import TransportBackend
from daglite.plugin import WorkerLost
from daglite.plugin import kill_group
from daglite.plugin import run_batch
from daglite.plugin import watch_coordinator

#: Seconds an idle loky worker waits for work before it leaves.
DEFAULT_IDLE_TIMEOUT = 300.0

#: Batches loky may refuse in a row (its executor broke or shut down) before they fail.
MAX_REFUSALS = 5

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
        self._refused: set[Future[bytes]] = set()
        self._refusals = 0  # batches refused in a row
        self._last: Any = None  # the executor the last batch went to
        self._seen: set[int] = set()  # pids of the workers batches went to

    def _executor(self) -> Any:
        from loky import get_reusable_executor

        idle = math.ceil(self.idle_timeout)  # loky counts whole seconds
        return get_reusable_executor(
            max_workers=self.workers, timeout=idle, initializer=watch_coordinator
        )

    def submit(self, request: BatchRequest) -> Hashable:
        """Hand `request` to loky; the future is the ticket.

        An executor that broke (a worker died) or was shut down since it was fetched
        refuses the batch: it goes to a fresh executor instead, and if loky keeps refusing,
        the batch is reported lost before it started (it runs again).
        """
        try:
            future = self._submit(request)
        except (BrokenProcessPool, RuntimeError):
            try:
                future = self._submit(request)
            except (BrokenProcessPool, RuntimeError) as exc:
                future = Future()
                future.set_exception(exc)
                self._refused.add(future)
                self._refusals += 1
        if future not in self._refused:
            self._refusals = 0
        self._pending.add(future)
        return future

    def _submit(self, request: BatchRequest) -> Future[bytes]:
        executor = self._executor()
        future = executor.submit(run_batch, request)
        self._last = executor
        self._seen.update(getattr(executor, "_processes", {}))  # pids of its workers
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
            except (BrokenProcessPool, CancelledError, RuntimeError) as exc:
                # RuntimeError: loky's ShutdownExecutorError, a batch dropped by a kill.
                if future in self._refused:  # never reached a worker: it simply runs again
                    self._refused.discard(future)
                    again = self._refusals < MAX_REFUSALS  # unless loky keeps refusing
                    detail = f"loky refused the batch: {type(exc).__name__}: {exc}"
                    finished.append((future, WorkerLost(started=not again, detail=detail)))
                    continue
                finished.append((future, WorkerLost(exitcode=_exitcode(exc), certain=False)))
                self._sweep()
        return finished

    def _sweep(self) -> None:
        """Kill what the dead workers' tasks left running (each worker led its own group)."""
        for pid in list(self._seen):
            if not _running(pid):
                try:  # the group only: the pid alone may already be someone else's
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
                self._seen.discard(pid)

    def kill(self, ticket: Hashable) -> None:
        """Loky cannot stop one worker: stop them all (the others' batches run again)."""
        self._pending.discard(ticket)  # type: ignore[arg-type]
        self._stop()

    def abort(self) -> None:
        """Kill every worker now."""
        self._pending.clear()
        self._stop()

    def _stop(self) -> None:
        """Kill the workers of the executor in use, with their process groups, then shut it.

        loky's own `kill_workers` runs later, in its manager thread; a worker stuck in C
        code must not outlive the report that it was killed. The executor is the one the
        batches went to (a fresh one from loky would not hold the stuck worker).
        """
        executor = self._last
        if executor is None:
            return
        for process in list(getattr(executor, "_processes", {}).values()):
            kill_group(process.pid)
        executor.shutdown(wait=False, kill_workers=True)
        self._last = None
        self._sweep()


def _running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def _exitcode(exc: BaseException) -> int | None:
    """The first exit code in loky's message ("... are {SIGKILL(-9)}"), if any."""
    match = _EXITCODE.search(str(exc))
    return int(match.group(1)) if match else None


class LokyBackend(TransportBackend):
    """Runs items on loky's reusable executor, with the core's batching and relays.

    `max_workers` (settings) sizes the executor (the CPU count by default);
    `[tool.daglite.options.loky] idle_timeout` says how long idle workers stay (300 s).
    """

    #: Its options (`[tool.daglite.options.loky]`, `DAGLITE_LOKY_<OPTION>`, `--option loky.KEY=V`).
    known_options: ClassVar[dict[str, type]] = {"idle_timeout": float}

    local_workers = True  # loky's workers are ours: only the session's variables

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
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
