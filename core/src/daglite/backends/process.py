"""The `process` backend: a small pool of worker processes that the coordinator watches.

How workers start, and why. On POSIX each worker is a fresh interpreter started with
`subprocess` (`python -c "...processworker.main(fd)"`), talking to the coordinator over a
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

What the coordinator knows: which batches each worker holds (one running, at most one
small one queued), and, through 16 bytes of shared memory the worker writes before each
item, which map index it is running and since when. So when a worker dies (`os._exit`, a
signal, a segfault, the out-of-memory killer) the item is named with the exit code or
signal at once (a pidfd or the socket's end wakes the coordinator), the worker is
replaced and the map goes on (see `daglite.backends.maploop`). An item of a task with a
`timeout` runs alone and is timed from its real start; if its worker cannot stop the
attempt in time the coordinator kills the worker. A worker running a slow batch sends its
events as they happen. Ctrl-C kills every worker at once. Workers also leave when their
connection closes (the coordinator ended), and any worker still alive when the
interpreter exits is killed. Each worker leads a process group of its own and ends it
when its coordinator dies (`daglite.backends.lifeline`); the coordinator kills a worker's
whole group whenever it ends one, so no subprocess a task started outlives it. Workers
start with only the session's and the system environment variables
(`daglite.backends.environ`).
"""

from __future__ import annotations

import itertools
import mmap
import os
import pickle
import subprocess
import sys
import time
import weakref
from collections import deque
from collections.abc import Hashable
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for
from typing import Any

import attrs

from daglite.backends.environ import local_worker_environ
from daglite.backends.lifeline import kill_group
from daglite.backends.processworker import EVENTS_TAG
from daglite.backends.processworker import PROGRESS
from daglite.backends.transport import BatchRequest
from daglite.backends.transport import EarlyEvents
from daglite.backends.transport import TransportBackend
from daglite.backends.transport import WorkerLost
from daglite.errors import BackendError

#: How workers start: "subprocess" (POSIX, see the module docstring) or "spawn".
START_METHOD = "subprocess" if os.name == "posix" else "spawn"

#: Largest batch (pickled items, bytes) queued on a worker that is busy: well below what a
#: socket buffers, so sending it never blocks.
QUEUE_BYTES = 32 * 1024
_BOOT = (
    "import sys; from daglite.backends.processworker import main; "
    "main(int(sys.argv[1]), int(sys.argv[2]))"
)


class _Worker:
    """One worker process: its connection, its progress cell and the batches it holds."""

    def __init__(self, method: str, env: dict[str, str] | None = None) -> None:
        self.spec_key: str | None = None
        self.job_key: str | None = None
        self.tickets: deque[Hashable] = deque()  # the first one is running
        self.last: Hashable | None = None  # the ticket it answered last
        self.sent = 0.0  # when its running batch was sent
        self.pidfd: int | None = None
        if method == "subprocess":
            self._start_subprocess(env)
        else:
            self._start_spawn()

    def _start_subprocess(self, env: dict[str, str] | None) -> None:
        import socket
        import tempfile

        ours, theirs = socket.socketpair()
        with tempfile.TemporaryFile() as cell:
            cell.truncate(PROGRESS.size)
            self.progress: mmap.mmap | None = mmap.mmap(cell.fileno(), PROGRESS.size)
            PROGRESS.pack_into(self.progress, 0, -1, 0.0)
            self.process: Any = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(theirs.fileno()), str(cell.fileno())],
                pass_fds=(theirs.fileno(), cell.fileno()),
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # its group: killing it kills its subprocesses
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

        from daglite.backends.processworker import serve

        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        self.progress = None
        self.process = context.Process(target=serve, args=(theirs,), daemon=True)
        self.process.start()
        theirs.close()
        self.pid = self.process.pid
        self.conn = ours

    def running(self) -> tuple[int, float] | None:
        """The map index of the item it runs and when that started, if it can tell."""
        if self.progress is None:
            return None
        index, started = PROGRESS.unpack_from(self.progress)
        return (index, started) if index >= 0 else None

    def waitables(self) -> list[Any]:
        return [self.conn] if self.pidfd is None else [self.conn, self.pidfd]

    def exitcode(self, timeout: float = 2.0) -> int | None:
        """Its exit status, once it ended (killed, with its group, after `timeout` s)."""
        process = self.process
        if isinstance(process, subprocess.Popen):
            if self.pidfd is None and not hasattr(os, "waitid"):  # cannot wait without reaping
                try:
                    code = process.wait(timeout)
                except subprocess.TimeoutExpired:
                    kill_group(self.pid)
                    return process.wait()
                kill_group(self.pid, alone=False)  # what a task started there
                return code
            self._ended(timeout)
            kill_group(self.pid)  # with what a task started there
            return process.wait()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
        return process.exitcode

    def _ended(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the process to end, without reaping it."""
        if self.pidfd is not None:
            import select

            return bool(select.select([self.pidfd], [], [], timeout)[0])
        deadline = time.monotonic() + timeout
        while True:
            try:
                if os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    return True
            except ChildProcessError:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def kill(self) -> None:
        if isinstance(self.process, subprocess.Popen):
            kill_group(self.pid)
        else:
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
    """The `Transport` of the `process` backend.

    Each worker runs one batch and may hold one more, queued in its socket, so it never
    waits for the coordinator between batches. Only small batches are queued that way (a
    large one could fill the socket while the worker is busy); the others wait here until
    a worker is free.

    Args:
        workers: How many worker processes to run.
        method: How they start (`START_METHOD` by default).
    """

    depth = 2  # batches in flight per worker

    def __init__(self, workers: int, method: str | None = None) -> None:
        self.workers = workers
        self.method = method or START_METHOD
        self._all: list[_Worker] = []
        self._holder: dict[Hashable, _Worker] = {}
        self._backlog: deque[tuple[Hashable, BatchRequest]] = deque()
        self._lost: list[tuple[Hashable, WorkerLost]] = []
        self._tickets = itertools.count()
        self.closed = False
        self._finalizer = weakref.finalize(self, _kill_all, self._all)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [worker.pid for worker in self._all]

    def _pick(self, request: BatchRequest) -> _Worker | None:
        if self.closed:
            raise BackendError("the process pool was closed (its session ended)")
        idle = [w for w in self._all if not w.tickets]
        if not idle and len(self._all) < self.workers:
            spec = request.spec
            env = local_worker_environ(spec.environ) if spec is not None else None
            for _ in range(self.workers - len(self._all)):  # they boot in parallel
                self._all.append(_Worker(self.method, env))
            idle = [w for w in self._all if not w.tickets]
        if idle:
            return idle[0]
        if len(request.items) <= QUEUE_BYTES:  # queue it behind a batch of the same map
            for worker in self._all:
                if len(worker.tickets) == 1 and worker.job_key == request.job_key:
                    return worker
        return None

    def submit(self, request: BatchRequest) -> Hashable:
        """Send `request` to a worker (starting workers as needed), or keep it for later."""
        ticket = next(self._tickets)
        self._backlog.append((ticket, request))
        self._dispatch()
        return ticket

    def _dispatch(self) -> None:
        while self._backlog:
            ticket, request = self._backlog[0]
            worker = self._pick(request)
            if worker is None:
                return
            self._backlog.popleft()
            self._send(worker, ticket, request)

    def _send(self, worker: _Worker, ticket: Hashable, request: BatchRequest) -> None:
        spec = None if worker.spec_key == request.spec_key else request.spec
        job = None if worker.job_key == request.job_key else request.job
        message = attrs.evolve(request, spec=spec, job=job)
        if not worker.tickets and worker.progress is not None:  # no stale index from before
            PROGRESS.pack_into(worker.progress, 0, -1, 0.0)
        if not worker.tickets:
            worker.sent = time.monotonic()
        worker.tickets.append(ticket)
        self._holder[ticket] = worker
        try:
            worker.conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
        except OSError:  # it died; `wait` will see it
            return
        worker.spec_key, worker.job_key = request.spec_key, request.job_key

    def started(self, ticket: Hashable) -> float | None:
        """When the batch `ticket` started running (`time.monotonic()`), if it has."""
        worker = self._holder.get(ticket)
        if worker is None or not worker.tickets or worker.tickets[0] != ticket:
            return None
        if worker.progress is None:  # no progress cell (spawn): count from when it was sent
            return worker.sent
        running = worker.running()
        return running[1] if running is not None else None

    def wait(
        self, timeout: float | None
    ) -> list[tuple[Hashable, bytes | WorkerLost | EarlyEvents]]:
        """Finished tickets: the bytes each worker answered, or how it died (or early events)."""
        done: list[tuple[Hashable, bytes | WorkerLost | EarlyEvents]] = list(self._lost)
        self._lost.clear()
        if self.closed:
            raise BackendError("the process pool was closed (its session ended)")
        busy = [w for w in self._all if w.tickets]
        if done or not busy:
            return done
        owners: dict[Any, _Worker] = {}
        for worker in busy:
            for waitable in worker.waitables():
                owners[waitable] = worker
        try:
            ready = {id(owners[w]): owners[w] for w in wait_for(list(owners), timeout)}
        except (OSError, ValueError):
            if not self.closed:
                raise
            ready = {}
        if self.closed:  # closed from another thread while we waited: its workers are gone
            raise BackendError("the process pool was closed (its session ended)")
        for worker in ready.values():
            try:
                data = worker.conn.recv_bytes() if worker.conn.poll() else None
            except (EOFError, OSError):
                data = None
            if data is None:
                done.extend(self._bury(worker))
                continue
            if data[:1] == EVENTS_TAG:  # events of the running batch, sent as they happen
                done.append((worker.tickets[0], EarlyEvents(data[1:])))
                continue
            ticket = worker.tickets.popleft()
            del self._holder[ticket]
            worker.last = ticket
            done.append((ticket, data))
        self._dispatch()
        return done

    def _bury(self, worker: _Worker) -> list[tuple[Hashable, WorkerLost]]:
        """Forget a dead worker; say how it died for each batch it held."""
        running = worker.running()
        if worker in self._all:
            self._all.remove(worker)
        code = worker.exitcode()
        worker.release()
        lost = []
        for position, ticket in enumerate(worker.tickets):
            self._holder.pop(ticket, None)
            index = running[0] if running is not None and position == 0 else None
            lost.append(
                (
                    ticket,
                    WorkerLost(exitcode=code, pid=worker.pid, index=index, started=not position),
                )
            )
        worker.tickets.clear()
        return lost

    def kill(self, ticket: Hashable) -> None:
        """Kill the worker that holds (or last ran) `ticket`; a new one starts when needed.

        Batches queued behind `ticket` on that worker are reported lost, as not started.
        """
        self._backlog = deque((t, r) for t, r in self._backlog if t != ticket)
        worker = self._holder.get(ticket) or next((w for w in self._all if w.last == ticket), None)
        if worker is None:
            return
        for other in worker.tickets:
            del self._holder[other]
            if other != ticket:
                self._lost.append((other, WorkerLost(pid=worker.pid, started=False)))
        worker.tickets.clear()
        self._all.remove(worker)
        worker.kill()

    def abort(self) -> None:
        """Kill every worker now and forget every batch."""
        workers = list(self._all)
        self._all.clear()
        self._holder.clear()
        self._backlog.clear()
        self._lost.clear()
        _kill_all(workers)

    def close(self) -> None:
        """Let the workers leave (their connection closes), then kill what is left."""
        self.closed = True
        workers = list(self._all)
        self._all.clear()
        self._holder.clear()
        self._backlog.clear()
        for worker in workers:
            worker.conn.close()
        for worker in workers:
            worker.exitcode(timeout=1.0)  # then its group is killed: no task's leftovers
            worker.release()


def _kill_all(workers: list[_Worker]) -> None:
    for worker in workers:
        try:
            if isinstance(worker.process, subprocess.Popen):
                kill_group(worker.pid)
            else:
                worker.process.kill()
        except (OSError, ValueError, AttributeError):
            pass
    for worker in workers:
        worker.exitcode()
        worker.release()
    workers.clear()


class ProcessBackend(TransportBackend):
    """Runs items in worker processes (see the module docstring), batched and watched.

    The pool starts at the first map (`max_workers` processes, the CPU count by default)
    and lives until the session ends. Maps on one instance run one at a time. A map inside
    a worker runs inline.
    """

    local_workers = True

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.max_workers = settings.max_workers or os.cpu_count() or 1

    def make_transport(self) -> ProcessPool:
        """The worker pool (workers start at the first batch)."""
        return ProcessPool(self.max_workers)

    @property
    def pool(self) -> ProcessPool:
        """The worker pool (created on first use; workers start at the first batch)."""
        return self.transport  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the workers; a map still running in another thread fails with BackendError."""
        pool, self._transport = self._transport, None
        if not isinstance(pool, ProcessPool):
            return
        if self._lock.acquire(blocking=False):
            try:
                pool.close()
            finally:
                self._lock.release()
        else:  # a map runs in another thread (e.g. gather_tasks): do not wait for it
            pool.closed = True
            pool.abort()
