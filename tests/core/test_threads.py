"""Threads started inside a session: they join it, or daglite says once that they did not."""

from __future__ import annotations

import contextvars
import threading
import warnings

from daglite import current_task
from daglite import session
from daglite import task
from daglite import workflow
from daglite.context import SessionNotInThreadWarning
from daglite.testing import EventCapture


@task
def double(x: int) -> int:
    return 2 * x


@task(name="step-{x}")
def named(x: int) -> str | None:
    meta = current_task()
    return meta.parent_id if meta is not None else None


def _run_thread(target, *args) -> list:
    """Run `target(*args)` in a plain `threading.Thread`; its warnings and result."""
    out: list = []

    def body():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out.append(target(*args))
        out.append([(w.category, str(w.message)) for w in caught])

    thread = threading.Thread(target=body, name="user-thread")
    thread.start()
    thread.join()
    return out


def test_a_plain_thread_loses_the_session_and_is_told_once():
    events = EventCapture()
    with session(plugins=[events]) as ctx:
        first = _run_thread(double, 2)
        second = _run_thread(double, 3)
    assert first[0] == 4 and second[0] == 6  # the calls still work, as bare calls
    assert first[1] == [
        (
            SessionNotInThreadWarning,
            "task 'double' was called in thread 'user-thread', which is outside the daglite "
            f"session {ctx.session_id} open in thread 'MainThread': it ran as a bare call (no "
            "events, hooks or session stores). Start the thread with "
            "session.run_in_thread(func, ...) (or run it in contextvars.copy_context()) to join "
            "the session; this is said once per session.",
        )
    ]
    assert second[1] == []  # once per session
    assert issubclass(SessionNotInThreadWarning, RuntimeWarning)  # shown by default
    assert [e.kind for e in events.events if e.kind.startswith("Task")] == []


def test_every_kind_of_task_says_so():
    @task
    async def coro(x: int) -> int:
        return x

    with session():
        out = _run_thread(lambda: coro(1).close())
    assert [category for category, _ in out[1]] == [SessionNotInThreadWarning]


def test_each_new_session_says_so_again_and_none_is_said_without_a_session():
    for _ in range(2):
        with session():
            assert len(_run_thread(double, 1)[1]) == 1
    assert _run_thread(double, 1)[1] == []  # no session open: a bare call is just a call


def test_run_in_thread_joins_the_session_and_the_enclosing_task():
    events = EventCapture()
    seen = []

    @task
    def parent() -> str:
        ctx = current_session()
        thread = ctx.run_in_thread(lambda: seen.append(named(1)))
        thread.join()
        return current_task().task_id

    from daglite.session import active_session as current_session

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: the thread is in the session
        with session(plugins=[events]):
            parent_id = parent()
    assert seen == [parent_id]  # the thread's call is the parent task's child
    started = [e for e in events.events if e.kind == "TaskStarted"]
    assert [e.name for e in started] == ["parent", "step-1"]


def test_run_in_thread_passes_arguments_and_returns_the_started_thread():
    events = EventCapture()
    results = []
    with session(plugins=[events]) as ctx:
        thread = ctx.run_in_thread(lambda a, b=0: results.append(double(a) + b), 5, b=1)
        assert isinstance(thread, threading.Thread)
        thread.join()
    assert results == [11]
    assert events.kinds().count("TaskSucceeded") == 1


def test_copy_context_is_the_documented_way_for_any_thread_api():
    events = EventCapture()
    with session(plugins=[events]):
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(double, 4))
        thread.start()
        thread.join()
    assert events.kinds().count("TaskSucceeded") == 1


def test_a_workflow_in_a_thread_is_not_told():
    @workflow
    def flow() -> int:
        return double(1)

    with session():
        out = _run_thread(flow)
    assert out == [2, []]  # a workflow opens its own session: its tasks are in it


def test_the_warning_points_at_the_callers_line():
    with session():
        out = []

        def body():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                double(1)  # the line the warning names
            out.extend(caught)

        thread = threading.Thread(target=body)
        thread.start()
        thread.join()
    assert out[0].filename == __file__


def test_maps_and_dataset_calls_from_a_plain_thread_say_so_too(tmp_path):
    from daglite import map_tasks
    from daglite import save_dataset

    for call, what in [
        (lambda: map_tasks(double, [1, 2]), "map_tasks of task 'double'"),
        (lambda: save_dataset("x.json", 1, store=str(tmp_path)), "save_dataset"),
    ]:
        with session():
            out = _run_thread(call)
        assert len(out[1]) == 1
        category, message = out[1][0]
        assert category is SessionNotInThreadWarning
        assert message.startswith(f"{what} was called in thread 'user-thread', which is outside")
