"""The daglite error hierarchy: every error daglite raises derives from `DagliteError`."""

from __future__ import annotations

from typing import Any


class DagliteError(Exception):
    """Base class of every error raised by daglite."""

    def __reduce__(self) -> Any:  # keep the cause when the error crosses a process boundary
        return (type(self), self.args, {"__cause__": self.__cause__, **self.__dict__})

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        state = dict(state or {})
        cause = state.pop("__cause__", None)
        self.__dict__.update(state)
        self.__cause__ = cause


class SettingsError(DagliteError, ValueError):
    """A setting has a value daglite cannot use (from an argument, the environment or pyproject)."""


class TaskError(DagliteError):
    """A task failed.

    The original exception is the `__cause__`.

    Attributes:
        task_name: The (resolved) name of the task that failed.
        map_index: The index of the failed item when the task ran inside `map_tasks`, else `None`.
        attempts: How many attempts were made before giving up.
        worker_traceback: The traceback text of the failure when it happened in a worker
            process (tracebacks do not cross processes), else `None`.
    """

    worker_traceback: str | None = None

    def __init__(
        self,
        message: str,
        *,
        task_name: str,
        map_index: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.task_name = task_name
        self.map_index = map_index
        self.attempts = attempts

    def __reduce__(self) -> Any:  # keep the attributes when the error crosses a process boundary
        return (
            _rebuild_task_error,
            (type(self), str(self), self.task_name, self.map_index, self.attempts),
            {"__cause__": self.__cause__, **self.__dict__},
        )


def _rebuild_task_error(
    cls: type[TaskError], message: str, task_name: str, map_index: int | None, attempts: int
) -> TaskError:
    return cls(message, task_name=task_name, map_index=map_index, attempts=attempts)


class TaskTimeoutError(TaskError, TimeoutError):
    """A task attempt ran longer than its `timeout` (and no retry was left)."""


def task_error(name: str, map_index: int | None, exc: BaseException, attempts: int) -> TaskError:
    """The `TaskError` reporting that task `name` failed with `exc` (set `__cause__` yourself)."""
    where = f" (map index {map_index})" if map_index is not None else ""
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return TaskError(
        f"task '{name}'{where} failed{tries}: {type(exc).__name__}: {exc}",
        task_name=name,
        map_index=map_index,
        attempts=attempts,
    )


def task_timeout_error(
    name: str, map_index: int | None, timeout: float, attempt: int, retries: int
) -> TaskTimeoutError:
    """The `TaskTimeoutError` of attempt `attempt` (of `retries + 1`) that overran `timeout`."""
    where = f" (map index {map_index})" if map_index is not None else ""
    return TaskTimeoutError(
        f"task '{name}'{where} timed out after {timeout:g} s (attempt {attempt} of {retries + 1})",
        task_name=name,
        map_index=map_index,
        attempts=attempt,
    )


class RemoteError(DagliteError):
    """Stands in for an exception raised in a worker whose class cannot be rebuilt here.

    An exception travels back from a worker process by pickling; a class whose `__init__`
    takes other arguments than its `args` (or that is not importable on the coordinator)
    cannot be rebuilt. It then arrives as a `RemoteError` that keeps what it said.

    Attributes:
        type_name: The original class, qualified by its module (`mymod.QuotaExceeded`).
        message: `str()` of the original exception.
        worker_traceback: The traceback text in the worker, if known.
    """

    def __init__(self, type_name: str, message: str, worker_traceback: str | None = None) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message
        self.worker_traceback = worker_traceback

    def __reduce__(self) -> Any:
        return (type(self), (self.type_name, self.message, self.worker_traceback))


class BackendError(DagliteError):
    """A backend is unknown, broken, or lost a worker."""


class StoreError(DagliteError):
    """A store rejected a key or could not read or write."""


class DatasetError(DagliteError):
    """A dataset is missing, or cannot be saved or loaded in the requested format."""


class PluginError(DagliteError):
    """A plugin is not installed, failed to import, or misbehaved."""
