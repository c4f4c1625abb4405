"""One worker process of the `process` backend, as the coordinator holds it: start, watch, end.

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

A `WorkerProcess` holds the process, its connection, its progress cell (16 bytes of shared
memory the worker writes before each item: which map index runs, since when) and the
batches sent to it; `daglite.backends.process.ProcessPool` decides what it runs.
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Hashable
from multiprocessing.connection import Connection
from typing import Any

from daglite.backends.lifeline import kill_group
from daglite.backends.processworker import PROGRESS

_BOOT = (
    "import sys; from daglite.backends.processworker import main; "
    "main(int(sys.argv[1]), int(sys.argv[2]))"
)


class WorkerProcess:
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
        """What the coordinator waits on: its connection, and its pidfd where there is one."""
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
        """Kill it (with its process group), reap it and release what it held."""
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
        """Close its connection, pidfd and progress cell (the process has ended)."""
        self.conn.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        if self.progress is not None:
            self.progress.close()
            self.progress = None


def kill_all(workers: list[WorkerProcess]) -> None:
    """Kill `workers` (each with its process group), reap them and empty the list."""
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
