"""Worker processes leave when their coordinator dies, and take their subprocesses along.

A worker process started for a coordinator (the `process` backend's, loky's) calls
`watch_coordinator()` first. It makes the worker the leader of a process group of its
own, so whoever ends it (the coordinator after a timeout or at session end, or the
worker itself) ends with one `killpg` every subprocess a task started too. A daemon
thread then waits for the coordinator to end: on Linux on a pidfd of the parent (woken the
moment it exits, whatever killed it: SIGTERM, SIGKILL, a crash), elsewhere by looking at
`os.getppid()` every `POLL_SECONDS`. Then it kills its own group: the item running in it,
even one stuck in C code, stops at once.

Why not `prctl(PR_SET_PDEATHSIG)`: the signal fires when the *thread* that started the
worker ends, not its process; pools start workers from whichever thread runs the first
map (a `gather_tasks` helper, an asyncio helper thread), so healthy workers would be
killed under a running session.
"""

from __future__ import annotations

import os
import signal
import threading
import time

#: Seconds between looks at the parent where no pidfd can watch it.
POLL_SECONDS = 0.1

_watching = False


def watch_coordinator() -> None:
    """Lead a process group of this worker's own and leave when the parent process ends.

    Called once, first thing, in a worker process (further calls do nothing). POSIX only;
    elsewhere workers leave when their connection to the coordinator closes.
    """
    global _watching
    if _watching or os.name != "posix":
        return
    _watching = True
    parent = os.getppid()
    try:
        os.setsid()  # a group (and session) of its own; fails if it already leads one
    except OSError:
        pass
    threading.Thread(target=_watch, args=(parent,), name="daglite-lifeline", daemon=True).start()


def _watch(parent: int) -> None:
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(parent)
        except OSError:
            pidfd = None
    if os.getppid() == parent:  # else it died before we started watching
        if pidfd is not None:
            import select

            select.select([pidfd], [], [])  # readable once the parent has exited
        else:
            while os.getppid() == parent:
                time.sleep(POLL_SECONDS)
    leave()


def leave() -> None:
    """End this worker and every process of its group now."""
    try:
        if os.getpgid(0) == os.getpid():
            os.killpg(0, signal.SIGKILL)
    except OSError:
        pass
    os._exit(1)


def kill_group(pid: int, alone: bool = True) -> None:
    """SIGKILL the process group led by worker `pid` (the worker and its subprocesses).

    A worker that does not lead a group yet (it has not reached `watch_coordinator`) is
    killed alone, unless `alone` is false (the worker was reaped: its id may be reused).
    Call it before reaping the worker: while the worker is a zombie, its id cannot be
    reused, so the group cannot be someone else's.
    """
    try:
        os.killpg(pid, signal.SIGKILL)
        return
    except (OSError, AttributeError):
        if not alone:
            return
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
