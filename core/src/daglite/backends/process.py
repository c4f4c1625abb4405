"""The `process` backend: a small pool of worker processes that the coordinator watches.

Workers start as fresh interpreters (`daglite.backends.workerprocess`, which says how
and why).

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
import os
import pickle
import time
import weakref
from collections import deque
from collections.abc import Hashable
from multiprocessing.connection import wait as wait_for
from typing import Any

import attrs

from daglite.backends.environ import local_worker_environ
from daglite.backends.processworker import EVENTS_TAG
from daglite.backends.processworker import PROGRESS
from daglite.backends.transport import BatchRequest
from daglite.backends.transport import EarlyEvents
from daglite.backends.transport import TransportBackend
from daglite.backends.transport import WorkerLost
from daglite.backends.workerprocess import WorkerProcess
from daglite.backends.workerprocess import kill_all
from daglite.errors import BackendError

#: How workers start: "subprocess" (POSIX, see `daglite.backends.workerprocess`) or "spawn".
START_METHOD = "subprocess" if os.name == "posix" else "spawn"

#: Largest batch (pickled items, bytes) queued on a worker that is busy: well below what a
#: socket buffers, so sending it never blocks.
QUEUE_BYTES = 32 * 1024


#: The error of a map whose pool closed under it (its session ended in another thread).
CLOSED = "the process pool was closed (its session ended)"


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
        self._all: list[WorkerProcess] = []
        self._holder: dict[Hashable, WorkerProcess] = {}
        self._backlog: deque[tuple[Hashable, BatchRequest]] = deque()
        self._lost: list[tuple[Hashable, WorkerLost]] = []
        self._tickets = itertools.count()
        self.closed = False
        self._finalizer = weakref.finalize(self, kill_all, self._all)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [worker.pid for worker in self._all]

    def _pick(self, request: BatchRequest) -> WorkerProcess | None:
        if self.closed:
            raise BackendError(CLOSED)
        idle = [w for w in self._all if not w.tickets]
        if not idle and len(self._all) < self.workers:
            spec = request.spec
            env = local_worker_environ(spec.environ) if spec is not None else None
            for _ in range(self.workers - len(self._all)):  # they boot in parallel
                self._all.append(WorkerProcess(self.method, env))
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

    def _send(self, worker: WorkerProcess, ticket: Hashable, request: BatchRequest) -> None:
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
            raise BackendError(CLOSED)
        busy = [w for w in self._all if w.tickets]
        if done or not busy:
            return done
        owners: dict[Any, WorkerProcess] = {}
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
            raise BackendError(CLOSED)
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
            self._holder.pop(ticket, None)  # gone if the pool closed meanwhile
            worker.last = ticket
            done.append((ticket, data))
        if self.closed:  # closed from another thread while we read the answers
            raise BackendError(CLOSED)
        self._dispatch()
        return done

    def _bury(self, worker: WorkerProcess) -> list[tuple[Hashable, WorkerLost]]:
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
        kill_all(workers)

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
