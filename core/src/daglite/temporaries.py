"""Temporary files of atomic writes: their names, and telling when one is left over.

A write goes to `.<name>.tmp-<pid>-<thread>-<random>` next to its target, then is renamed
into place. A writer killed mid-write (SIGKILL, a file-size limit, a power cut) leaves
that file behind; it is never read as an entry (`list()` hides it), and `stale()` says
when it can go: nothing has written to it for `TEMP_MAX_AGE` seconds, or (for a manual
`clear`) its writer is no longer a process of this machine.
"""

from __future__ import annotations

import os
import re
import threading

#: Marks the temporary files of in-flight writes; `list()` never shows them.
TEMP_MARK = ".tmp-"


def temp_name(path: str) -> str:
    """A unique temporary name next to `path` (hidden from `list()`), for atomic writes.

    `.<name>.tmp-<pid>-<thread>-<random>`: the writer's process id tells `stale()` whether
    the writer is still alive.
    """
    head, _, name = path.rpartition("/")
    return f"{head}/.{name}{TEMP_MARK}{os.getpid()}-{threading.get_ident()}-{os.urandom(4).hex()}"


_TEMP = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)-\d+-[0-9a-f]{8}")

#: A temporary file not written to for this many seconds is left over by a dead writer.
TEMP_MAX_AGE = 300.0


def temp_writer(filename: str) -> int | None:
    """The process id of the writer of temporary file `filename`, or None if it is not one."""
    found = _TEMP.fullmatch(filename)
    return int(found["pid"]) if found else None


def stale(pid: int, mtime: float, now: float, max_age: float | None) -> bool:
    """Whether the temporary file of writer `pid`, last written at `mtime`, is left over.

    It is when it has not been written to for `max_age` seconds, or (with `max_age=None`,
    what `clear` uses) also when its writer is no longer a process of this machine.
    """
    if now - mtime >= (TEMP_MAX_AGE if max_age is None else max_age):
        return True
    if max_age is not None or os.name != "posix" or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False
