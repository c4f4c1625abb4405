"""A worker's batch result as bytes for the coordinator (`dump_result`).

What cannot travel back is replaced, so one bad item never loses the batch: a value that
cannot be pickled becomes its item's `TaskError`; an exception whose class cannot be
rebuilt from its pickle becomes a `RemoteError` keeping its type name, message and the
worker's traceback; an event or dataset write that cannot be pickled is dropped. A failed
item keeps the worker's traceback text (`worker_traceback`, and a note on its cause).
"""

from __future__ import annotations

import itertools
import os
import pickle
import traceback
from collections.abc import Sequence
from typing import Any

from daglite.backends.transport import BatchResult
from daglite.errors import DagliteError
from daglite.errors import TaskError


def dump_result(result: BatchResult, name: str, indexes: Sequence[int] = ()) -> bytes:
    """Pickle `result`; values or errors that cannot travel are replaced by errors.

    When every item succeeded, the result travels compact (`BatchResult.compact`).
    """
    import cloudpickle

    if result.values is None and not result.compact(indexes):
        result.outcomes = [
            (index, ok, value if ok else _readable(value)) for index, ok, value in result.outcomes
        ]
    try:
        return _dumps(result)
    except Exception:
        pass
    outcomes = []
    for index, ok, value in result.outcomes:
        try:
            cloudpickle.dumps(value)
        except Exception as exc:
            ok, value = False, _unsendable(index, value, exc, name)
        outcomes.append((index, ok, value))
    result.outcomes = outcomes
    events = []
    for event in result.events:
        try:
            cloudpickle.dumps(event)
        except Exception:
            continue  # an event with an unpicklable field: dropped rather than lose the batch
        events.append(event)
    result.events = events
    result.writes = [w for w in result.writes if _picklable(w)]
    return cloudpickle.dumps(result)


def _dumps(obj: Any) -> bytes:
    """`obj` pickled by the C pickler when it can be, else by cloudpickle.

    The C pickler names classes and functions by reference, and refuses one that is not
    what its module holds under that name, such as anything a worker rebuilt from
    cloudpickle's by-value pickles (a class of the user's script): cloudpickle sends those
    by value. What it accepts the coordinator reads as cloudpickle's pickle would be read,
    at a fraction of the cost (cloudpickle's pickler runs Python code per object type).
    """
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        import cloudpickle

        return cloudpickle.dumps(obj)


def _picklable(obj: Any) -> bool:
    import cloudpickle

    try:
        cloudpickle.dumps(obj)
    except Exception:
        return False
    return True


def _keep_traceback(error: Any) -> None:
    """Keep the worker's traceback text of a failed item (tracebacks do not pickle).

    It becomes `error.worker_traceback` and a note on the original exception, so it is
    printed with the coordinator's traceback.
    """
    cause = error.__cause__ if isinstance(error, TaskError) else None
    if cause is None or getattr(error, "worker_traceback", None):
        return
    text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    error.worker_traceback = text
    add_note = getattr(cause, "add_note", None)  # Python >= 3.11
    if add_note is not None:
        add_note(f"\nTraceback in worker process {os.getpid()}:\n{text.rstrip()}")


def _readable(error: BaseException) -> BaseException:
    """`error` with its worker traceback kept, and made readable on the coordinator.

    An exception whose class cannot be rebuilt from its pickle (an `__init__` taking other
    arguments than its `args`) would make the whole batch unreadable: it is replaced by a
    `RemoteError` keeping its type name, message and traceback. Daglite errors carry their
    cause across (a `BackendError` raised from a `PluginError`), so each link of that chain
    is checked, the deepest first, and only the links that cannot be rebuilt are replaced.
    """
    _keep_traceback(error)
    if _rebuilds(error):
        return error
    chain = [error]  # daglite errors carry their cause across; the chain ends at any other
    while isinstance(chain[-1], DagliteError) and chain[-1].__cause__ is not None:
        if any(link is chain[-1].__cause__ for link in chain):
            break
        chain.append(chain[-1].__cause__)
    text = getattr(error, "worker_traceback", None)
    for parent, link in reversed(list(itertools.pairwise(chain))):  # the deepest link first
        if not _rebuilds(link):
            parent.__cause__ = _stand_in(link, text if parent is error else None)
    return error if _rebuilds(error) else _stand_in(error, text)


def _rebuilds(error: BaseException) -> bool:
    import cloudpickle

    try:
        pickle.loads(cloudpickle.dumps(error))
    except Exception:
        return False
    return True


def _stand_in(error: BaseException, text: str | None) -> BaseException:
    from daglite.errors import RemoteError

    kind = type(error)
    if text is None:
        text = "".join(traceback.format_exception(kind, error, error.__traceback__))
    return RemoteError(f"{kind.__module__}.{kind.__qualname__}", str(error), text)


def _unsendable(index: int, value: Any, exc: Exception, name: str) -> TaskError:
    """The error reporting that an item's value (or error) cannot be pickled back."""
    what = f"the result of task '{name}' (map index {index})"
    if isinstance(value, TaskError):
        what = f"the error of task '{value.task_name}' (map index {index})"
    error = TaskError(
        f"{what} cannot be sent back from the worker process: {exc}",
        task_name=name,
        map_index=index,
    )
    if isinstance(value, TaskError):
        error.worker_traceback = getattr(value, "worker_traceback", None) or str(value)
    return error
