"""Hook specifications: what a plugin object can implement (mark each with `daglite.hookimpl`).

Hooks run in-process where the work happens: the task hooks and dataset hooks fire in
the thread or worker process running the task, the session hooks on the coordinator.
Arguments are passed by keyword, and an implementation may accept any subset of them.
None of the hooks is `firstresult`; their return values are ignored. Hook plugins that
must reach worker processes have to pickle (cloudpickle is used).

To observe a run from the coordinator (logs, progress, traces), prefer an event
processor: every hook below also produces an event.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("daglite")
hookimpl = pluggy.HookimplMarker("daglite")


@hookspec
def on_session_start(session: Any) -> None:
    """A session opened. Runs on the coordinator; `session` is the `SessionContext`."""


@hookspec
def on_session_end(session: Any, error: BaseException | None) -> None:
    """A session is closing (`error` is what ended it, if anything). Runs on the coordinator."""


@hookspec
def on_worker_start(settings: Any) -> None:
    """A worker process of a process-based backend is ready. Runs in that worker, once."""


@hookspec
def before_task(metadata: Any, inputs: dict[str, Any]) -> None:
    """A task call is about to make its first attempt. Runs where the task runs."""


@hookspec
def after_task(metadata: Any, inputs: dict[str, Any], result: Any, duration: float) -> None:
    """A task call returned `result` after `duration` seconds. Runs where the task runs."""


@hookspec
def on_task_error(
    metadata: Any, inputs: dict[str, Any], error: BaseException, duration: float, attempts: int
) -> None:
    """A task call failed for good (no retry left). Runs where the task runs."""


@hookspec
def on_task_retry(
    metadata: Any, inputs: dict[str, Any], error: BaseException, attempt: int, delay: float
) -> None:
    """Attempt `attempt` failed; another follows after `delay` s. Runs where the task runs."""


@hookspec
def on_cache_hit(metadata: Any, inputs: dict[str, Any], key: str, value: Any) -> None:
    """A cached `value` is returned instead of running the task. Runs where the task runs."""


@hookspec
def before_dataset_save(
    key: str, value: Any, format: str | None, options: dict[str, Any] | None, metadata: Any
) -> None:
    """A dataset is about to be saved. Runs where the save happens."""


@hookspec
def after_dataset_save(
    key: str, value: Any, format: str | None, options: dict[str, Any] | None, metadata: Any
) -> None:
    """A dataset was saved. Runs where the save happens."""


@hookspec
def before_dataset_load(
    key: str, return_type: Any, format: str | None, options: dict[str, Any] | None, metadata: Any
) -> None:
    """A dataset is about to be loaded. Runs where the load happens."""


@hookspec
def after_dataset_load(
    key: str,
    return_type: Any,
    format: str | None,
    options: dict[str, Any] | None,
    metadata: Any,
    result: Any,
    duration: float,
) -> None:
    """A dataset was loaded as `result` in `duration` seconds. Runs where the load happens."""
