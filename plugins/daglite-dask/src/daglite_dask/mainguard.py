"""Recognise a script that starts a local dask cluster without a `__main__` guard.

A `LocalCluster` starts its workers with multiprocessing's `spawn` method (dask's default):
each new process imports the coordinator's `__main__` script again. A script whose
pipeline runs at module level (no `if __name__ == "__main__":`) would then run it again in
every worker process, which tries to start a cluster of its own while it boots: dask's
answer is `RuntimeError: Nanny failed to start` and pages of tracebacks. This module
finds that case before the cluster starts, so the error is one line that says what to add.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import FrameType


def unguarded_line() -> tuple[str, int] | None:
    """Where the running `__main__` script calls daglite outside a `__main__` guard.

    Returns:
        The script's path and the line of its module-level statement that led here, when
        the call comes from module-level code of a `__main__` script (a file that spawned
        processes import again) and that line is not inside `if __name__ == "__main__":`;
        else `None` (a guarded script, `daglite run`, a notebook, `python -c`, stdin).
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not isinstance(path, str) or not path.endswith(".py"):
        return None
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is main.__dict__ and frame.f_code.co_name == "<module>":
            break
        frame = frame.f_back
    if frame is None:  # not called from the script's module-level code
        return None
    line = frame.f_lineno
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), path)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and _is_main_guard(node)
            and node.lineno <= line <= (node.end_lineno or node.lineno)
        ):
            return None
    return path, line


def _is_main_guard(node: ast.If) -> bool:
    if not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    mains = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(mains) == 1


def spawns_workers() -> bool:
    """Whether a `LocalCluster`'s worker processes import `__main__` again (spawn, forkserver)."""
    import dask.config

    method = dask.config.get("distributed.worker.multiprocessing-method", "spawn")
    return method in ("spawn", "forkserver")
