"""The run pipeline's policy, written once for every kind of task and every place a task runs.

`steps()` is a generator holding the whole policy of a call: cache lookup, the
`before_task` hook and event, attempts with retries and backoff, cache write, dataset
auto-save, then `after_task` (or `on_task_error`). It yields the delay to wait before
each attempt and receives the attempt's value (or has its exception thrown in); from the
second attempt on, `current_attempt` says which one runs.
`make_metadata` makes the metadata (and so the frame) of one call; `is_plain_call` says
when a call has nothing here to manage.

How each kind of task is driven through `steps()`, and the one choice among those
drivers, is `daglite.drivers`. What each moment of a call means to the outside (its
event, its hook, its counts) is the business of `daglite.lifecycle.CallReport`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from daglite.context import Runtime
from daglite.context import TaskMetadata
from daglite.context import current_attempt
from daglite.context import new_id
from daglite.context import running_frame
from daglite.errors import task_timeout_error
from daglite.interest import wants_of
from daglite.lifecycle import CallReport
from daglite.taskspec import TaskSpec

_new_tuple = tuple.__new__


def is_plain_call(task: TaskSpec, runtime: Runtime, item: bool = False) -> bool:
    """Whether a call of `task` (a map item's, if `item`) has nothing to manage here.

    True for a plain task (see `TaskSpec.plain`) when no hook plugin is registered and no
    processor wants the events of each call (of each map item): it is then called
    directly (`daglite.drivers.run_plain`), only counted, and reported if it fails.
    """
    if not task.plain or runtime.hook is not None:
        return False
    wants = wants_of(runtime.emit)
    return not (wants.items.calls if item else wants.calls)


def make_metadata(
    task: TaskSpec,
    runtime: Runtime,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    map_index: int | None,
    map_id: str | None,
    backend: str | None = None,
    plain: bool | None = None,
) -> TaskMetadata:
    """The metadata (and so the frame) of one call of `task`.

    `plain` is `is_plain_call(task, runtime)` when the caller knows it already.
    """
    parent = running_frame()
    # Binding checks the arguments before anything runs or is reported; only a plain call
    # skips it and checks them if the call fails.
    if plain is None:
        plain = is_plain_call(task, runtime)
    inputs = {} if plain else task.bind(args, kwargs)
    name = task.resolve_name(inputs, map_index) if task.name_fields else task.name
    # tuple.__new__ skips the named tuple's Python-level __new__ (half the cost); every
    # field is given, in order.
    return _new_tuple(
        TaskMetadata,
        (
            new_id(),
            name,
            task.qualname,
            task.description,
            parent.task_id if parent is not None else None,
            runtime.session_id,
            map_index,
            map_id,
            backend or runtime.backend,
            inputs,
            task.dataset_store,
        ),
    )


def _timed_out(exc: Exception) -> bool:
    """Whether `exc` is the timeout engine's signal (imported only by tasks with a timeout)."""
    from daglite.timeouts import AttemptTimedOut

    return isinstance(exc, AttemptTimedOut)


def steps(task: TaskSpec, runtime: Runtime, meta: TaskMetadata) -> Generator[float, Any, Any]:
    """The policy of one call; see the module docstring. Returns the call's value.

    Every moment is reported through a `CallReport` (events, hooks and counts); this
    function only decides which moment comes next.
    """
    report = CallReport(runtime, meta)

    cache = None
    if task.cache is not False:
        # deferred: stores are only needed by cached tasks
        from daglite.caching import CachePlan

        cache = CachePlan.for_call(task, runtime, meta)
        found, value = cache.lookup()
        if found:
            report.cache_hit(cache.key)
            if task.dataset is not None:  # the dataset is an output of the call: save it too
                from daglite.datasets import autosave

                autosave(task, runtime, meta, value)
            report.cached(cache.key, value)
            return value
        report.cache_missed(cache.key, cache.miss_reason)

    report.started()
    attempt = 0
    delay = 0.0
    retry_token = None  # `current_attempt` says which attempt runs, from the second on
    try:
        while True:
            attempt += 1
            try:
                value = yield delay
                break
            except Exception as exc:
                timed_out = task.timeout is not None and _timed_out(exc)
                if timed_out:  # hooks, events and the caller see a public error, not our signal
                    timeout: float = task.timeout  # type: ignore[assignment]  # it timed out
                    exc = task_timeout_error(
                        meta.name, meta.map_index, timeout, attempt, task.retries
                    )
                    report.timed_out(attempt, timeout)
                if attempt > task.retries:
                    error = report.failed(exc, attempt, timed_out)
                    raise error from (None if timed_out else exc)
                delay = task.retry_delay * task.retry_backoff ** (attempt - 1)
                report.retried(exc, attempt, delay)
                token = current_attempt.set((meta.task_id, attempt + 1))
                retry_token = retry_token or token
            except BaseException as exc:  # Ctrl-C, cancellation: the call ends, no retry
                if not isinstance(exc, GeneratorExit):
                    report.failed(exc, attempt)
                raise

        try:
            if cache is not None:
                cache.store(value)
            if task.dataset is not None:
                # deferred: only tasks with `dataset=` need it
                from daglite.datasets import autosave

                autosave(task, runtime, meta, value)
        except BaseException as exc:  # a failed save fails the call (raised as it is)
            report.failed(exc, attempt)
            raise

        report.succeeded(value, attempt)
        return value
    finally:
        if retry_token is not None:
            current_attempt.reset(retry_token)
