"""Events: frozen, picklable value classes with a JSON-ready form."""

from __future__ import annotations

import inspect
import json
import os
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


# -- where a call ran (the report's lanes) ------------------------------------------------


@task
def _where(x: int) -> int:
    return x


@pytest.mark.parametrize("backend", ["inline", "thread", "process"])
def test_task_events_carry_the_process_and_thread_where_the_call_ran(events, backend):
    import os

    from .support.process_tasks import square

    with session(backend=backend, plugins=[events]):
        map_tasks(square, range(4))
    ends = events.of_type(ev.TaskSucceeded)
    starts = events.of_type(ev.TaskStarted)
    assert len(ends) == len(starts) == 4
    assert all(isinstance(e.pid, int) and isinstance(e.thread, str) for e in ends)
    pids = {e.pid for e in ends}
    threads = {e.thread for e in ends}
    if backend == "inline":
        assert (pids, threads) == ({os.getpid()}, {"MainThread"})
    elif backend == "thread":
        assert pids == {os.getpid()}
        assert all(t.startswith("daglite-thread") for t in threads)
    else:
        assert os.getpid() not in pids
        assert threads == {"MainThread"}
    by_task = {e.task_id: (e.pid, e.thread) for e in starts}
    assert all(by_task[e.task_id] == (e.pid, e.thread) for e in ends)
    assert {e.host for e in ends} == {os.uname().nodename}


def test_session_started_says_where_and_hides_secrets_of_the_command(events, monkeypatch):
    import os
    import socket
    import sys

    argv = ["daglite", "run", "f.py:wf", "--api-key", "K1", "--db-password=P1",
            "--store", "s3://AKIA:S3CRET@bucket/x", "--n", "3", "--option", "s3.secret=S2",
            "AWS_SECRET_ACCESS_KEY=S4", "--keys", "a"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with session(plugins=[events]):
        pass
    (started,) = events.of_type(ev.SessionStarted)
    assert (started.host, started.pid) == (socket.gethostname(), os.getpid())
    assert started.command == [
        "daglite", "run", "f.py:wf", "--api-key", "***", "--db-password=***",
        "--store", "s3://***@bucket/x", "--n", "3", "--option", "s3.secret=***",
        "AWS_SECRET_ACCESS_KEY=***", "--keys", "***",
    ]  # fmt: skip
    assert "S3CRET" not in json.dumps(started.to_dict())


def test_a_failure_event_summarizes_the_arguments(events):
    @task
    def fails(x: int, password: str) -> None:
        raise ValueError("no")

    with pytest.raises(Exception, match="no"), session(plugins=[events]):
        fails(7, password="pw-123")
    (failed,) = events.of_type(ev.TaskFailed)
    assert failed.arguments == {"x": "7", "password": "***"}


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_map_ended_counts_the_batches_by_size(events, backend):
    from .support.process_tasks import square

    with session(backend=backend, plugins=[events]):
        map_tasks(square, range(7), chunksize=3)
    (ended,) = events.of_type(ev.MapEnded)
    assert ended.batches == {3: 2, 1: 1}


def test_a_map_run_inline_has_no_batches(events):
    with session(plugins=[events]):
        map_tasks(_where, range(3))
    (ended,) = events.of_type(ev.MapEnded)
    assert ended.batches == {}


def test_dataset_saved_carries_its_size(events, tmp_path):
    from daglite import save_dataset

    with session(plugins=[events], dataset_store=str(tmp_path)):
        save_dataset("a.txt", "hello", format="text")
    (saved,) = events.of_type(ev.DatasetSaved)
    assert saved.size == 5


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_an_event_built_in_a_forked_process_carries_its_pid():
    # The pid is looked up once per process; a fork looks it up again.
    parent = ev.TaskStarted(session_id="s", task_id="t", name="n").pid
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.write(write, str(ev.TaskStarted(session_id="s", task_id="t", name="n").pid).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as reader:
        reported = int(reader.read())
    os.waitpid(child, 0)
    assert parent == os.getpid()
    assert reported == child != parent
