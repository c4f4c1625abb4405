"""The error hierarchy and what a `TaskError` carries (also across pickling)."""

from __future__ import annotations

import pickle

import pytest

from daglite import BackendError
from daglite import DagliteError
from daglite import DatasetError
from daglite import PluginError
from daglite import SettingsError
from daglite import StoreError
from daglite import TaskError
from daglite import TaskTimeoutError
from daglite import map_tasks
from daglite import task


@pytest.mark.parametrize(
    "cls",
    [
        TaskError,
        TaskTimeoutError,
        BackendError,
        StoreError,
        DatasetError,
        PluginError,
        SettingsError,
    ],
)
def test_every_error_is_a_daglite_error(cls):
    assert issubclass(cls, DagliteError)
    assert issubclass(DagliteError, Exception)


def test_double_inheritance_where_it_means_something():
    assert issubclass(TaskTimeoutError, TaskError)
    assert issubclass(TaskTimeoutError, TimeoutError)
    assert issubclass(SettingsError, ValueError)


def test_task_error_carries_name_map_index_attempts_and_cause():
    @task(retries=1)
    def fails(x: int) -> None:
        raise ArithmeticError(f"x={x}")

    with pytest.raises(TaskError) as info:
        map_tasks(fails, [5])
    error = info.value
    assert (error.task_name, error.map_index, error.attempts) == ("fails", 0, 2)
    assert str(error) == "task 'fails' (map index 0) failed after 2 attempts: ArithmeticError: x=5"
    assert isinstance(error.__cause__, ArithmeticError)


def test_task_error_defaults():
    error = TaskError("message", task_name="t")
    assert (error.task_name, error.map_index, error.attempts) == ("t", None, 1)


@pytest.mark.parametrize("cls", [TaskError, TaskTimeoutError])
def test_task_errors_pickle_with_their_attributes_and_cause(cls):
    error = cls("task 't' failed", task_name="t", map_index=3, attempts=2)
    error.__cause__ = ValueError("root")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == "task 't' failed"
    assert (copy.task_name, copy.map_index, copy.attempts) == ("t", 3, 2)
    assert isinstance(copy.__cause__, ValueError) and str(copy.__cause__) == "root"


@pytest.mark.parametrize(
    "cls", [BackendError, DatasetError, StoreError, PluginError, SettingsError]
)
def test_daglite_errors_pickle_with_their_cause(cls):
    error = cls("it failed")
    error.__cause__ = PluginError("backend 'nope' is not installed")
    error.note = "kept"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and str(copy) == "it failed" and copy.note == "kept"
    assert type(copy.__cause__) is PluginError
    assert str(copy.__cause__) == "backend 'nope' is not installed"
