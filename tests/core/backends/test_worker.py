"""The worker side of process-style backends: what cannot travel back, and stand-ins for it."""

from __future__ import annotations

import pytest

from daglite import StoreError
from daglite import TaskError
from daglite import map_tasks
from daglite import session
from daglite.errors import RemoteError

from ..support.isolation_tasks import TwoArgError
from ..support.isolation_tasks import over_quota
from ..support.isolation_tasks import over_quota_deep
from ..support.process_tasks import unpicklable_result


@pytest.mark.timeout(60)
def test_unpicklable_result_is_reported_per_item():
    with session(backend="process"):
        out = map_tasks(unpicklable_result, range(2), return_exceptions=True)
    assert [type(e) for e in out] == [TaskError, TaskError]
    assert str(out[1]) == (
        "the result of task 'unpicklable_result' (map index 1) cannot be sent back from the "
        "worker process: cannot pickle '_thread.lock' object"
    )


BACKENDS = ["inline", "thread", "process"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_exception_that_cannot_be_unpickled_is_its_items_error(backend):
    with session(backend=backend):
        out = map_tasks(over_quota, [0, 1, 2], return_exceptions=True)
    assert out[0] == 0 and out[2] == 2
    error = out[1]
    assert isinstance(error, TaskError) and error.map_index == 1
    cause = error.__cause__
    if backend == "process":  # crossed a process boundary: a stand-in that keeps it all
        assert isinstance(cause, RemoteError)
        assert cause.type_name == "core.support.isolation_tasks.TwoArgError"
        assert cause.message == "quota disk exceeded: 42 used"
        assert (
            str(cause) == "core.support.isolation_tasks.TwoArgError: quota disk exceeded: 42 used"
        )
        assert 'raise TwoArgError("disk", 42)' in cause.worker_traceback
        assert 'raise TwoArgError("disk", 42)' in error.worker_traceback
    else:
        assert isinstance(cause, TwoArgError)
    assert "quota disk exceeded: 42 used" in str(error)


@pytest.mark.timeout(120)
def test_the_stand_in_travels_and_raises_like_the_original():
    with (
        session(backend="process"),
        pytest.raises(TaskError, match="quota disk exceeded") as caught,
    ):
        map_tasks(over_quota, [0, 1, 2])
    assert isinstance(caught.value.__cause__, RemoteError)


@pytest.mark.timeout(120)
def test_a_daglite_error_keeps_its_type_when_only_its_own_cause_cannot_travel():
    with session(backend="process"):
        out = map_tasks(over_quota_deep, [0, 1, 2], return_exceptions=True)
    assert out[0] == 0 and out[2] == 2
    cause = out[1].__cause__
    assert type(cause) is StoreError and str(cause) == "cannot write the entry"
    deepest = cause.__cause__
    assert isinstance(deepest, RemoteError)
    assert deepest.type_name == "core.support.isolation_tasks.TwoArgError"
    assert 'raise TwoArgError("disk", 42)' in deepest.worker_traceback
