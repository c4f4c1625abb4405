"""Map items of a plain task nobody watches per call run in a tight loop (`run_chunk`).

What a user sees of them must not change: the same `TaskError` (message, map index,
attempts, cause), the same counts in `MapEnded`, the same frame while an item runs.
Each case runs once quiet (the tight loop) and once watched by a processor that wants
every event (the full pipeline), and the two must agree.
"""

from __future__ import annotations

import pytest

from daglite import current_task
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.errors import TaskError
from daglite.events import MapEnded
from daglite.events import TaskFailed
from daglite.interest import Interest
from daglite.pipeline import is_plain_call
from daglite.testing import EventCapture

BACKENDS = ["thread", "process"]


@task
def fails_at_5(x: int) -> int:
    if x == 5:
        raise ValueError(f"bad item {x}")
    return x * 10


@task
def whoami(x: int) -> tuple[int | None, str]:
    meta = current_task()
    assert meta is not None
    return meta.map_index, meta.task_id


def _run(backend: str, watched: bool, return_exceptions: bool):
    """Map `fails_at_5` over 10 items: (raised or returned error, MapEnded, TaskFailed)."""
    quiet = EventCapture(kinds={"MapEnded", "TaskFailed"})
    plugins = [quiet, EventCapture()] if watched else [quiet]
    with session(backend=backend, plugins=plugins) as ctx:
        assert (
            is_plain_call(fails_at_5, ctx.runtime, item=True) is not watched
        )  # the path under test
        if return_exceptions:
            out = map_tasks(fails_at_5, range(10), return_exceptions=True, chunksize=4)
            error = out[5]
            assert out[:5] + out[6:] == [x * 10 for x in range(10) if x != 5]
        else:
            with pytest.raises(TaskError) as raised:
                map_tasks(fails_at_5, range(10), chunksize=4)
            error = raised.value
    (ended,) = quiet.of_type(MapEnded)
    (failed,) = quiet.of_type(TaskFailed)
    return error, ended, failed


def _error_facts(error: TaskError) -> tuple:
    cause = error.__cause__
    return (
        type(error),
        str(error),
        error.task_name,
        error.map_index,
        error.attempts,
        type(cause),
        str(cause).splitlines()[0],  # a worker's error has its traceback noted after it
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failing_plain_item_is_reported_as_by_the_full_pipeline(backend):
    error, ended, failed = _run(backend, watched=False, return_exceptions=False)
    assert isinstance(error.__cause__, ValueError)
    assert str(error) == "task 'fails_at_5' (map index 5) failed: ValueError: bad item 5"
    assert (error.map_index, error.attempts) == (5, 1)
    assert (failed.map_index, failed.error_type, failed.error_message) == (
        5,
        "ValueError",
        "bad item 5",
    )
    assert ended.failures == 1
    assert ended.done >= 5  # the items before the first failure all ran
    assert ended.done + ended.failures + ended.skipped == ended.total == 10

    w_error, w_ended, w_failed = _run(backend, watched=True, return_exceptions=False)
    assert _error_facts(error) == _error_facts(w_error)
    assert (failed.map_index, failed.error_type, failed.error_message) == (
        w_failed.map_index,
        w_failed.error_type,
        w_failed.error_message,
    )
    assert w_ended.failures == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_plain_items_with_returned_exceptions_count_as_the_full_pipeline(backend):
    error, ended, _ = _run(backend, watched=False, return_exceptions=True)
    w_error, w_ended, _ = _run(backend, watched=True, return_exceptions=True)
    assert isinstance(error, TaskError)
    assert _error_facts(error) == _error_facts(w_error)
    assert (ended.done, ended.failures, ended.skipped, ended.total) == (9, 1, 0, 10)
    assert (w_ended.done, w_ended.failures, w_ended.skipped) == (9, 1, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_plain_item_runs_in_a_frame_of_its_own(backend):
    with session(backend=backend) as ctx:
        assert is_plain_call(whoami, ctx.runtime, item=True)
        out = map_tasks(whoami, range(6), chunksize=3)
    assert [index for index, _ in out] == list(range(6))
    assert len({task_id for _, task_id in out}) == 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_processor_without_map_items_keeps_the_tight_loop_and_gets_the_failure(backend):
    capture = EventCapture()
    capture.interest = Interest(map_items=False)  # every event but the items' call events
    with session(backend=backend, plugins=[capture]) as ctx:
        assert is_plain_call(fails_at_5, ctx.runtime, item=True)
        out = map_tasks(fails_at_5, range(10), return_exceptions=True, chunksize=4)
    assert str(out[5]) == "task 'fails_at_5' (map index 5) failed: ValueError: bad item 5"
    (failed,) = capture.of_type(TaskFailed)
    assert (failed.map_index, failed.error_message) == (5, "bad item 5")
    assert "ValueError: bad item 5" in failed.traceback
    (ended,) = capture.of_type(MapEnded)
    assert (ended.done, ended.failures, ended.skipped) == (9, 1, 0)
    assert "TaskStarted" not in capture.kinds()
