"""The worker process of the `process` backend: serves batches on its connection.

`daglite.backends.process` starts each worker as `python -c "...processworker.main(fd,
progress_fd)"` (or, without `subprocess` start, runs `serve` in a `spawn` process). The
worker answers each `BatchRequest` with the bytes of `run_batch`, streams events of slow
batches (`EVENTS_TAG`), and writes the running item's index and start time to a progress
cell shared with the coordinator (`PROGRESS`). It imports little, since every worker
imports it at start-up.
"""

from __future__ import annotations

import pickle
import struct
import time
from collections.abc import Callable
from typing import Any

from daglite.backends.worker import run_batch

#: First byte of a message carrying events sent before the batch's result (a result is a
#: pickle, whose first byte is never this).
EVENTS_TAG = b"E"

#: The progress cell a `process` worker shares with the coordinator: the map index of the
#: running item (-1: none) and when it started (`time.monotonic()`, system-wide on POSIX).
PROGRESS = struct.Struct("qd")


def main(fd: int, progress_fd: int | None = None) -> None:
    """Serve batches on the connection `fd` until it closes (the `process` backend's worker).

    Each message is a pickled `BatchRequest`; each answer the bytes of `run_batch`. Before
    each item the worker writes its map index and start time to the shared memory at
    `progress_fd` (`PROGRESS`), so the coordinator can name the item if this process dies
    and time it against its task's `timeout`.
    """
    from multiprocessing.connection import Connection

    from daglite.backends.lifeline import watch_coordinator

    watch_coordinator()  # leave with the coordinator, and lead a group of our own
    serve(Connection(fd), progress_fd)


def serve(conn: Any, progress_fd: int | None = None) -> None:
    """The request loop of a `process` worker over a `multiprocessing` connection."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    progress: Callable[[int], None] | None = None
    if progress_fd is not None:
        import mmap

        memory = mmap.mmap(progress_fd, PROGRESS.size)
        pack = PROGRESS.pack_into
        clock = time.monotonic

        def write_progress(index: int) -> None:
            pack(memory, 0, index, clock())

        progress = write_progress

    def stream(entries: list[Any]) -> None:
        import cloudpickle

        try:
            data = cloudpickle.dumps(entries)
        except Exception:
            return  # one that cannot be pickled is dropped, as at the batch's end
        conn.send_bytes(EVENTS_TAG + data)

    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the coordinator closed the pool (or died): leave quietly
        request = pickle.loads(data)
        if progress is not None:
            progress(-1)
        try:
            conn.send_bytes(run_batch(request, progress, stream))
        except (BrokenPipeError, OSError):
            return
