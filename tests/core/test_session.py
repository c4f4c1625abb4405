"""Sessions: opening and closing, backends, stores, threads (plugins: test_sessionplugins)."""

from __future__ import annotations

import asyncio
import threading
import warnings

import pytest

from daglite import BackendError
from daglite import StoreError
from daglite import async_session
from daglite import current_task
from daglite import gather_tasks
from daglite import hookimpl
from daglite import map_tasks
from daglite import registry
from daglite import session
from daglite import task
from daglite.backends.inline import InlineBackend
from daglite.backends.thread import ThreadBackend
from daglite.context import current_runtime
from daglite.events import SessionEnded
from daglite.events import SessionStarted
from daglite.session import SessionContext
from daglite.session import active_session
from daglite.settings import DagliteSettings
from daglite.testing import EventCapture


@task
def add(x: int, y: int) -> int:
    return x + y


def test_session_is_active_inside_the_block_only():
    assert active_session() is None
    with session() as ctx:
        assert isinstance(ctx, SessionContext)
        assert active_session() is ctx
        assert current_runtime.get() is ctx.runtime
    assert active_session() is None
    assert current_runtime.get() is None


def test_nested_sessions_restore_the_outer_one():
    with session() as outer:
        with session(backend="thread") as inner:
            assert active_session() is inner
        assert active_session() is outer


def test_async_session(events):
    async def main():
        async with async_session(plugins=[events]) as ctx:
            assert active_session() is ctx
            return await asyncio.sleep(0, result=ctx.session_id)

    session_id = asyncio.run(main())
    assert events.kinds() == ["SessionStarted", "SessionEnded"]
    assert events.events[0].session_id == session_id


def test_session_events_report_status_and_error(events):
    with session(plugins=[events], backend="thread"):
        pass
    with pytest.raises(RuntimeError), session(plugins=[events]):
        raise RuntimeError("boom")
    started = events.of_type(SessionStarted)
    assert [e.backend for e in started] == ["thread", "inline"]
    ok, failed = events.of_type(SessionEnded)
    assert (ok.status, ok.error_type, ok.error_message) == ("success", None, None)
    assert (failed.status, failed.error_type, failed.error_message) == (
        "failure",
        "RuntimeError",
        "boom",
    )
    assert ok.duration >= 0


def test_session_defaults_come_from_settings_and_arguments_override_them():
    settings = DagliteSettings(backend="thread", cache_store="c", dataset_store="d")
    with session(settings=settings) as ctx:
        assert (ctx.backend, ctx.cache_store, ctx.dataset_store) == ("thread", "c", "d")
        assert ctx.settings is settings
    with session(settings=settings, backend="inline", cache_store="x", dataset_store="y") as ctx:
        assert (ctx.backend, ctx.cache_store, ctx.dataset_store) == ("inline", "x", "y")
        assert ctx.runtime.cache_store == "x"
        assert ctx.runtime.dataset_store == "y"


def test_session_rejects_settings_of_another_type():
    with (
        pytest.raises(TypeError) as info,
        session(settings={"backend": "thread"}),  # type: ignore[arg-type]
    ):
        pass
    assert str(info.value) == (
        "settings must be a DagliteSettings, not dict; build one with "
        "daglite.settings.DagliteSettings(...)"
    )


def test_unknown_backend_fails_when_the_session_opens():
    body_ran = []
    with pytest.raises(BackendError) as info, session(backend="nope"):
        body_ran.append(True)
    installed = ", ".join(registry.names("backend"))
    assert str(info.value) == f"unknown backend 'nope'; installed backends: {installed}"
    assert body_ran == []
    assert active_session() is None


def test_missing_well_known_backend_says_what_to_install():
    with pytest.raises(BackendError) as info, session(backend="loky"):
        pass
    assert str(info.value).startswith(
        "backend 'loky' is not installed: install daglite-loky from a clone of daglite: uv pip "
        "install ./plugins/daglite-loky (or pip install ./core ./plugins/daglite-loky) "
        "(installed backends: "
    )


def test_backend_instances_are_created_lazily_once_and_closed_with_the_session():
    with session(backend="thread") as ctx:
        assert ctx._backends == {}
        backend = ctx.get_backend()
        assert isinstance(backend, ThreadBackend)
        assert ctx.get_backend("thread") is backend
        assert isinstance(ctx.get_backend("inline"), InlineBackend)
        map_tasks(add, [1], [2])
        assert any(t.name.startswith("daglite-thread") for t in threading.enumerate())
    assert ctx._backends == {}
    assert not any(t.name.startswith("daglite-thread") for t in threading.enumerate())


def test_get_backend_of_unknown_name_raises_backend_error():
    with session() as ctx, pytest.raises(BackendError, match=r"^unknown backend 'nope'; "):
        ctx.get_backend("nope")


def test_backends_and_processors_are_released_on_error_and_keyboard_interrupt():
    closed = []

    class Processor:
        def __call__(self, event):
            pass

        def close(self):
            closed.append("processor")

    for exc in (ValueError("x"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), session(backend="thread", plugins=[Processor()]) as ctx:
            map_tasks(add, [1], [2])
            raise exc
        assert ctx._backends == {}
        assert not any(t.name.startswith("daglite-thread") for t in threading.enumerate())
    assert closed == ["processor", "processor"]


def test_emit_without_processors_is_a_no_op_and_with_them_delivers(events):
    from daglite.events import SessionStarted as Started

    with session() as ctx:
        ctx.emit(Started(session_id=ctx.session_id, backend="x"))
    with session(plugins=[events]) as ctx:
        ctx.emit(Started(session_id="custom", backend="x"))
    assert [e.session_id for e in events.of_type(Started)][1] == "custom"


def test_repr():
    with session(backend="thread") as ctx:
        assert repr(ctx) == f"<SessionContext {ctx.session_id} backend='thread'>"


def test_a_failing_start_hook_ends_the_session_it_was_opening():
    closed = []

    class Processor:
        def __call__(self, event):
            pass

        def close(self):
            closed.append(True)

    class BadStart:
        @hookimpl
        def on_session_start(self, session):
            raise RuntimeError("start hook broke")

    body = []
    with (
        pytest.raises(RuntimeError, match="^start hook broke$"),
        session(plugins=[Processor(), BadStart()], backend="thread"),
    ):
        body.append(True)
    assert body == []
    assert current_runtime.get() is None
    assert closed == [True]


def test_an_async_session_closed_from_another_task_still_ends_cleanly(events):
    # e.g. an async test fixture: its setup and its teardown run as two different tasks
    async def main():
        cm = async_session(plugins=[events])
        ctx = await asyncio.create_task(cm.__aenter__())
        await asyncio.create_task(cm.__aexit__(None, None, None))
        return ctx

    ctx = asyncio.run(main())
    assert events.kinds() == ["SessionStarted", "SessionEnded"]
    assert events.of_type(SessionEnded)[0].status == "success"
    assert ctx.session_id == events.of_type(SessionEnded)[0].session_id
    assert current_runtime.get() is None


# -- threads started inside a session ---------------------------------------------------


@task
def double(x: int) -> int:
    return 2 * x


@task(name="step-{x}")
def named(x: int) -> str | None:
    meta = current_task()
    return meta.parent_id if meta is not None else None


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


# -- bad input fails when the session opens, saying what to do ----------------------------


def _f(x, y=1):
    return x


BACKEND_HINT = (
    "backend must be a backend name such as 'inline', 'thread' or 'process' (see: daglite "
    "plugins), or None for the default, not "
)


@pytest.mark.parametrize("backend", ["", "  ", 3])
def test_an_empty_or_non_text_backend_is_an_error_everywhere(backend):
    events = EventCapture()
    with pytest.raises(BackendError) as info, session(backend=backend, plugins=[events]):
        pass
    assert str(info.value) == BACKEND_HINT + repr(backend)
    assert events.kinds() == []  # nothing started
    with pytest.raises(BackendError) as info:
        map_tasks(task(_f), [1], backend=backend)
    assert str(info.value) == BACKEND_HINT + repr(backend)

    async def double(x):
        return 2 * x

    with pytest.raises(BackendError) as info:
        asyncio.run(gather_tasks(task(double), [1], backend=backend))
    assert str(info.value) == BACKEND_HINT + repr(backend)


@pytest.mark.parametrize("which", ["cache_store", "dataset_store"])
def test_an_unknown_store_scheme_fails_when_the_session_opens(which, tmp_path):
    ran = []
    events = EventCapture()
    with (
        pytest.raises(StoreError) as info,
        session(plugins=[events], **{which: "gs://bucket/data"}),
    ):
        ran.append(1)
    kind = which.split("_")[0]
    assert str(info.value) == (
        f"cannot use 'gs://bucket/data' as the {kind} store: unknown store 'gs'; installed "
        "stores: file, memory"
    )
    assert ran == [] and events.kinds() == []
    # the same from the settings
    with (
        pytest.raises(StoreError, match=f"cannot use 'gs://b/x' as the {kind} store"),
        session(settings=DagliteSettings(**{which: "gs://b/x"})),
    ):
        ran.append(1)
    assert ran == []
