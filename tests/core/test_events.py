"""Events: frozen, picklable value classes with a JSON-ready form."""

from __future__ import annotations

import inspect
import json
import pickle
import time

import attrs
import pytest

from daglite import events as ev
from daglite import map_tasks
from daglite import session
from daglite import task

EVENT_CLASSES = [
    cls
    for _, cls in inspect.getmembers(ev, inspect.isclass)
    if issubclass(cls, ev.Event) and cls.__module__ == ev.__name__
]


def test_event_classes_cover_the_design():
    names = {cls.__name__ for cls in EVENT_CLASSES}
    assert {
        "SessionStarted",
        "SessionEnded",
        "WorkflowStarted",
        "WorkflowEnded",
        "TaskStarted",
        "TaskSucceeded",
        "TaskFailed",
        "TaskRetried",
        "TaskTimedOut",
        "CacheHit",
        "CacheMissed",
        "DatasetSaved",
        "DatasetLoaded",
        "MapStarted",
        "MapEnded",
    } <= names


def test_events_are_frozen_and_keyword_only():
    event = ev.TaskStarted(session_id="s", task_id="t", name="n")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ev.TaskStarted("s", "t", "n")  # type: ignore[misc]


def test_kind_timestamp_and_to_dict():
    before = time.time()
    event = ev.TaskRetried(
        session_id="s",
        task_id="t",
        name="n",
        attempt=1,
        delay=0.5,
        error_type="E",
        error_message="m",
    )
    assert event.kind == "TaskRetried"
    assert before <= event.timestamp <= time.time()
    data = event.to_dict()
    assert data["event"] == "TaskRetried"
    assert (data["attempt"], data["delay"], data["map_index"]) == (1, 0.5, None)
    assert json.loads(json.dumps(data)) == data


def test_every_event_emitted_by_a_run_pickles_and_serializes(events):
    @task(retries=1)
    def flaky(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x

    with session(plugins=[events], backend="thread"):
        map_tasks(flaky, [1, 2])
        map_tasks(flaky, [-1], return_exceptions=True)
    kinds = set(events.kinds())
    assert {"TaskRetried", "TaskFailed", "MapStarted", "MapEnded"} <= kinds
    for event in events.events:
        assert pickle.loads(pickle.dumps(event)) == event
        json.dumps(event.to_dict())
