"""The `process` backend: a small pool of worker processes that the coordinator watches.

How workers start, and why. On POSIX each worker is a fresh interpreter started with
`subprocess` (`python -c "...worker.main(fd)"`), talking to the coordinator over a
socket pair with `multiprocessing.connection` framing. That is the `spawn` start method
without its one surprise: the user's `__main__` module is *not* imported again in the
worker (tasks travel with cloudpickle, by value when they live in `__main__`, in a
notebook or in a closure), so a script needs no `if __name__ == "__main__":` guard and
stdin/notebook sessions work. `fork` is never used: the coordinator runs threads (thread
backend, event processors, asyncio helpers) and forking a threaded process can deadlock
the child on a lock held by another thread (Python 3.12 warns about it). `forkserver`
would start replacements faster, but its server and preload list are process-wide state
shared with everyone else using multiprocessing, and its workers are not our children.
Elsewhere (Windows) workers start with multiprocessing's `spawn` context.

What the coordinator knows: which batch each worker holds, and (through 8 bytes of shared
memory the worker writes before each item) which map index it is running. So when a
worker dies (`os._exit`, a signal, a segfault, the out-of-memory killer) the item is named
with the exit code or signal at once, the worker is replaced and the map goes on (see
`daglite.backends.batches`). An item of a task with a `timeout` runs alone; if its worker
cannot stop the attempt in time the coordinator kills the worker. Ctrl-C kills every
worker at once. Workers also leave when their connection closes (the coordinator ended),
and any worker still alive when the interpreter exits is killed.
"""

from __future__ import annotations

import itertools
import mmap
import os
import pickle
import struct
import subprocess
import sys
import threading
import weakref
from collections.abc import Hashable
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for
from typing import Any

from daglite.backends.base import Backend
from daglite.backends.base import MapJob
from daglite.backends.base import collect
from daglite.backends.batches import WorkerLost
from daglite.backends.batches import run_map
from daglite.backends.batches import worker_spec
from daglite.backends.worker import BatchRequest

#: How workers start: "subprocess" (POSIX, see the module docstring) or "spawn".
START_METHOD = "subprocess" if os.name == "posix" else "spawn"

_PROGRESS = struct.Struct("q")
_BOOT = (
    "import sys; from daglite.backends.worker import main; main(int(sys.argv[1]), int(sys.argv[2]))"
)


class _Worker:
    """One worker process: its connection, its progress cell and what it was last sent."""

    def __init__(self, method: str) -> None:
        self.spec_key: str | None = None
        self.job_key: str | None = None
        self.ticket: Hashable | None = None
        self.pidfd: int | None = None
        if method == "subprocess":
            self._start_subprocess()
        else:
            self._start_spawn()

    def _start_subprocess(self) -> None:
        import socket
        import tempfile

        ours, theirs = socket.socketpair()
        with tempfile.TemporaryFile() as cell:
            cell.truncate(_PROGRESS.size)
            self.progress: mmap.mmap | None = mmap.mmap(cell.fileno(), _PROGRESS.size)
            self.process: Any = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(theirs.fileno()), str(cell.fileno())],
                pass_fds=(theirs.fileno(), cell.fileno()),
                stdin=subprocess.DEVNULL,
            )
        theirs.close()
        self.pid = self.process.pid
        self.conn = Connection(ours.detach())
        if hasattr(os, "pidfd_open"):
            try:  # readable when the process ends, even if a grandchild holds the socket
                self.pidfd = os.pidfd_open(self.pid)
            except OSError:
                self.pidfd = None

    def _start_spawn(self) -> None:
        import multiprocessing

        from daglite.backends.worker import serve

        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        self.progress = None
        self.process = context.Process(target=serve, args=(theirs,), daemon=True)
        self.process.start()
        theirs.close()
        self.pid = self.process.pid
        self.conn = ours

    def running_index(self) -> int | None:
        if self.progress is None:
            return None
        index = _PROGRESS.unpack_from(self.progress)[0]
        return index if index >= 0 else None

    def waitables(self) -> list[Any]:
        return [self.conn] if self.pidfd is None else [self.conn, self.pidfd]

    def exitcode(self, timeout: float = 2.0) -> int | None:
        process = self.process
        if isinstance(process, subprocess.Popen):
            try:
                return process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                return process.wait()
        process.join(timeout)
        return process.exitcode

    def kill(self) -> None:
        try:
            self.process.kill()
        except (OSError, ValueError):
            pass
        self.exitcode()
        self.release()

    def release(self) -> None:
        self.conn.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        if self.progress is not None:
            self.progress.close()
            self.progress = None


class ProcessPool:
    """The `Transport` of the `process` backend: one batch per worker at a time.

    Args:
        workers: How many worker processes to run.
        method: How they start (`START_METHOD` by default).
    """

    def __init__(self, workers: int, method: str | None = None) -> None:
        self.workers = workers
        self.method = method or START_METHOD
        self._idle: list[_Worker] = []
        self._busy: dict[Hashable, _Worker] = {}
        self._lost: list[tuple[Hashable, WorkerLost]] = []
        self._tickets = itertools.count()
        self._all: list[_Worker] = []
        self._finalizer = weakref.finalize(self, _kill_all, self._all)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [worker.pid for worker in self._all]

    def _worker(self) -> _Worker:
        if not self._idle:  # start every missing worker at once: they boot in parallel
            for _ in range(self.workers - len(self._all)):
                worker = _Worker(self.method)
                self._all.append(worker)
                self._idle.append(worker)
        return self._idle.pop()

    def submit(self, request: BatchRequest) -> Hashable:
        """Send `request` to an idle worker (starting workers as needed)."""
        worker = self._worker()
        ticket = next(self._tickets)
        worker.ticket = ticket
        self._busy[ticket] = worker
        spec = None if worker.spec_key == request.spec_key else request.spec
        job = None if worker.job_key == request.job_key else request.job
        message = BatchRequest(request.spec_key, spec, request.job_key, job, request.items)
        try:
            worker.conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
        except OSError:  # it died before it could take the batch
            self._lost.append((ticket, self._bury(ticket)))
        else:
            worker.spec_key, worker.job_key = request.spec_key, request.job_key
        return ticket

    def wait(self, timeout: float | None) -> list[tuple[Hashable, bytes | WorkerLost]]:
        """Finished tickets: the bytes each worker answered, or how it died."""
        done: list[tuple[Hashable, bytes | WorkerLost]] = list(self._lost)
        self._lost.clear()
        if done or not self._busy:
            return done
        owners: dict[Any, Hashable] = {}
        for ticket, worker in self._busy.items():
            for waitable in worker.waitables():
                owners[waitable] = ticket
        ready = {owners[w] for w in wait_for(list(owners), timeout)}
        for ticket in ready:
            worker = self._busy[ticket]
            try:
                data = worker.conn.recv_bytes() if worker.conn.poll() else None
            except (EOFError, OSError):
                data = None
            if data is None:
                done.append((ticket, self._bury(ticket)))
                continue
            del self._busy[ticket]
            self._idle.append(worker)
            done.append((ticket, data))
        return done

    def _bury(self, ticket: Hashable) -> WorkerLost:
        """Forget the dead worker that held `ticket` and say how it died."""
        worker = self._busy.pop(ticket)
        index = worker.running_index()
        self._all.remove(worker)
        code = worker.exitcode()
        worker.release()
        return WorkerLost(exitcode=code, pid=worker.pid, index=index)

    def kill(self, ticket: Hashable) -> None:
        """Kill the worker that holds (or last ran) `ticket`; a new one starts when needed."""
        worker = self._busy.pop(ticket, None)
        if worker is None:
            worker = next((w for w in self._all if w.ticket == ticket), None)
            if worker is None:
                return
            self._idle.remove(worker)
        self._all.remove(worker)
        worker.kill()

    def abort(self) -> None:
        """Kill every worker now."""
        workers = list(self._all)
        self._all.clear()
        self._idle.clear()
        self._busy.clear()
        self._lost.clear()
        _kill_all(workers)

    def close(self) -> None:
        """Let idle workers leave (their connection closes), then kill what is left."""
        workers = list(self._all)
        self._all.clear()
        self._idle.clear()
        self._busy.clear()
        for worker in workers:
            worker.conn.close()
        for worker in workers:
            if worker.exitcode(timeout=1.0) is None:
                worker.kill()
            else:
                worker.release()


def _kill_all(workers: list[_Worker]) -> None:
    for worker in workers:
        try:
            worker.process.kill()
        except (OSError, ValueError, AttributeError):
            pass
    for worker in workers:
        worker.exitcode()
        worker.release()
    workers.clear()


class ProcessBackend(Backend):
    """Runs items in worker processes (see the module docstring), batched and watched.

    The pool starts at the first map (`max_workers` processes, the CPU count by default)
    and lives until the session ends. Maps on one instance run one at a time. A map inside
    a worker runs inline.
    """

    shares_memory = False

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.max_workers = settings.max_workers or os.cpu_count() or 1
        self._pool: ProcessPool | None = None
        self._lock = threading.Lock()

    @property
    def pool(self) -> ProcessPool:
        """The worker pool (created on first use; workers start at the first batch)."""
        if self._pool is None:
            self._pool = ProcessPool(self.max_workers)
        return self._pool

    def map(self, job: MapJob) -> list[Any]:
        """Run the items on the worker processes; results in input order."""
        if job.runtime.in_worker:
            return collect(job, job.run_chunk(enumerate(job.items)))
        spec = worker_spec(job.runtime, job.backend)
        with self._lock:
            return run_map(job, self.pool, spec)

    def close(self) -> None:
        """Stop the workers."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
