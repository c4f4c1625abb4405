"""The `thread` backend: a pool of threads, fed with batches of items."""

from __future__ import annotations

import contextvars
import itertools
import os
import threading
from collections import deque
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from daglite.backends.base import Backend
from daglite.backends.base import MapJob
from daglite.backends.base import Outcome
from daglite.backends.base import collect

#: True in the context of an item running on a pool, and so in every thread it starts with
#: a copy of its context (a timed attempt, `asyncio.to_thread`): a map from there runs inline.
_in_pool: contextvars.ContextVar[bool] = contextvars.ContextVar("daglite_in_pool", default=False)


class ThreadBackend(Backend):
    """Runs items on a thread pool started on first use and shut down with the session.

    Items travel in chunks (one future per chunk, not per item), at most a few chunks per
    thread are in flight, and the input is consumed lazily. A failed item stops the map
    unless `return_exceptions` is set: no new chunk is sent, later items are skipped and
    earlier ones finish, so the error is the first failing item by index. Ctrl-C stops
    everything at once (queued chunks are cancelled).
    A map started from inside an item on a pool (or from a thread that item started with a
    copy of its context) runs inline, so nested maps can never deadlock the pool.
    """

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.max_workers = settings.max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.max_workers,
                    thread_name_prefix="daglite-thread",
                )
            return self._pool

    def _chunksize(self, job: MapJob) -> int:
        if job.chunksize is not None:
            return job.chunksize
        if job.total is None:
            return 16
        return max(1, -(-job.total // (self.max_workers * 4)))

    def map(self, job: MapJob) -> list[Any]:
        """Run the items on the pool; results in input order."""
        if _in_pool.get():
            return collect(job, job.run_chunk(enumerate(job.items)))
        pool = self._executor()
        size = self._chunksize(job)
        indexed = enumerate(job.items)
        pending: deque[Future[list[Outcome]]] = deque()
        outcomes: list[Outcome] = []
        limit = self.max_workers * 2
        try:
            while True:
                while len(pending) < limit and not job.failed:
                    chunk = list(itertools.islice(indexed, size))
                    if not chunk:
                        break
                    job.note_batch(len(chunk))
                    context = contextvars.copy_context()  # one per chunk: a context runs once
                    pending.append(pool.submit(context.run, _run_in_pool, job, chunk))
                if not pending:
                    break
                outcomes.extend(pending.popleft().result())
        except BaseException:
            job.stop.set()
            for future in pending:
                future.cancel()
            raise
        return collect(job, outcomes)

    def close(self) -> None:
        """Stop the pool: queued work is cancelled, running items finish."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _run_in_pool(job: MapJob, chunk: list[tuple[int, tuple[Any, ...]]]) -> list[Outcome]:
    _in_pool.set(True)  # in the chunk's own copy of the caller's context
    return job.run_chunk(chunk)
