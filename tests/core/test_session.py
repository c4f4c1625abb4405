"""Sessions: opening and closing, backends, stores, and the mixed `plugins=[...]` list."""

from __future__ import annotations

import asyncio
import threading
import warnings

import pytest

from daglite import BackendError
from daglite import PluginError
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
from daglite.testing import override_plugin


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


# -- the plugins list ---------------------------------------------------------------------


class HookPlugin:
    def __init__(self):
        self.started = []

    @hookimpl
    def on_session_start(self, session):
        self.started.append(session)


def test_plugins_accepts_a_single_object_or_a_list(events):
    with session(plugins=events):
        pass
    hook = HookPlugin()
    with session(plugins=[hook, events]) as ctx:
        pass
    assert events.kinds() == ["SessionStarted", "SessionEnded"] * 2
    assert hook.started == [ctx]
    assert ctx.hook_plugins == [hook]
    assert ctx.processors == [events]


def test_processor_by_name_through_the_registry():
    captured = EventCapture()

    class Named:
        instances = []

        def __init__(self):
            Named.instances.append(self)

        def __call__(self, event):
            captured(event)

    with override_plugin("processor", "capture", Named), session(plugins=["capture"]):
        add(1, 2)
    assert len(Named.instances) == 1
    assert captured.kinds() == ["SessionStarted", "TaskStarted", "TaskSucceeded", "SessionEnded"]


def test_processor_names_from_settings_and_from_settings_factory():
    made = []

    class Configured:
        def __init__(self, level):
            self.level = level
            self.events = []

        @classmethod
        def from_settings(cls, settings):
            made.append(cls(settings.log_level))
            return made[-1]

        def __call__(self, event):
            self.events.append(event.kind)

    settings = DagliteSettings(processors=("configured",), log_level="debug")
    with override_plugin("processor", "configured", Configured), session(settings=settings):
        pass
    assert [(p.level, p.events) for p in made] == [("debug", ["SessionStarted", "SessionEnded"])]


def test_unknown_processor_name_fails_when_the_session_opens():
    with pytest.raises(PluginError) as info, session(plugins=["nope"]):
        pass
    installed = ", ".join(registry.names("processor")) or "none"
    assert str(info.value) == f"unknown processor 'nope'; installed processors: {installed}"


def test_missing_well_known_processor_says_what_to_install():
    with (
        pytest.raises(PluginError, match=r"^processor 'otel' is not installed: install daglite-"),
        session(plugins=["otel"]),
    ):
        pass


@pytest.mark.parametrize("item", [42, object(), ThreadBackend])
def test_plugins_that_are_neither_hook_plugins_nor_processors_are_rejected(item):
    with pytest.raises(PluginError) as info, session(plugins=[item]):
        pass
    assert str(info.value) == (
        f"{item!r} is neither a hook plugin (no @daglite.hookimpl method), an event processor "
        "(a callable taking one event) nor a processor name"
    )


def test_an_object_can_be_both_hook_plugin_and_processor():
    class Both(HookPlugin):
        def __init__(self):
            super().__init__()
            self.kinds = []

        def __call__(self, event):
            self.kinds.append(event.kind)

    both = Both()
    with session(plugins=[both]) as ctx:
        pass
    assert both.started == [ctx]
    assert both.kinds == ["SessionStarted", "SessionEnded"]


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


def test_processors_made_before_an_invalid_plugin_are_closed():
    closed = []

    class Named:
        def __call__(self, event):
            pass

        def close(self):
            closed.append(True)

    with (
        override_plugin("processor", "named", Named),
        pytest.raises(PluginError),
        session(plugins=["named", 42]),
    ):
        pass
    assert closed == [True]


def test_a_processor_that_replaces_a_default_one_drops_it():
    from daglite import DagliteSettings
    from daglite.testing import override_plugin

    closed = []

    class Noisy:
        def __call__(self, event):
            raise AssertionError("a replaced processor must see no event")

        def close(self):
            closed.append("noisy")

    class Quiet:
        replaces = ("logging",)

        def __init__(self):
            self.events = []

        def __call__(self, event):
            self.events.append(event)

    with (
        override_plugin("processor", "logging", Noisy),
        override_plugin("processor", "quiet", Quiet),
        session(settings=DagliteSettings(), plugins=["quiet"]) as ctx,
    ):
        pass
    assert [type(p).__name__ for p in ctx.processors] == ["Quiet"]
    assert closed == ["noisy"]
    assert [e.kind for e in ctx.processors[0].events] == ["SessionStarted", "SessionEnded"]


@pytest.mark.parametrize(
    ("processors", "plugins"),
    [(("logging", "quiet"), []), (("logging",), ["logging", "quiet"]), (("noisy",), ["quiet"])],
)
def test_a_processor_named_by_the_user_is_never_replaced(processors, plugins):
    from daglite import DagliteSettings
    from daglite.testing import override_plugin

    class Kept:
        def __init__(self):
            self.events = []

        def __call__(self, event):
            self.events.append(event)

    class Quiet(Kept):
        replaces = ("logging", "noisy")

    with (
        override_plugin("processor", "logging", Kept),
        override_plugin("processor", "noisy", Kept),
        override_plugin("processor", "quiet", Quiet),
        session(settings=DagliteSettings(processors=processors), plugins=plugins) as ctx,
    ):
        pass
    assert sorted(type(p).__name__ for p in ctx.processors) == ["Kept", "Quiet"]
    assert all(len(p.events) == 2 for p in ctx.processors)


class _ClassNotInstance:
    @hookimpl
    def before_task(self, metadata, inputs):  # pragma: no cover - never registered
        pass


def test_a_hook_plugin_class_instead_of_an_instance_is_rejected_with_the_fix():
    with pytest.raises(PluginError) as info, session(plugins=[_ClassNotInstance]):
        pass
    assert str(info.value) == (
        "_ClassNotInstance is a class, not a hook plugin object: pass an instance, "
        "plugins=[_ClassNotInstance()]"
    )


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


# -- processors that are also hook plugins -----------------------------------------------


class Both:
    """An event processor that is also a hook plugin (like the `otel` processor)."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.hooks: list[str] = []

    def __call__(self, event) -> None:
        self.events.append(event.kind)

    @hookimpl
    def before_task(self, metadata) -> None:
        self.hooks.append(f"before {metadata.name}")


class EventsOnly:
    def __init__(self) -> None:
        self.events: list[str] = []

    def __call__(self, event) -> None:
        self.events.append(event.kind)


@task
def one() -> int:
    return 1


def test_named_processor_that_is_a_hook_plugin_gets_its_hooks():
    with registry.override("processor", "both", Both), session(plugins=["both"]) as ctx:
        one()
    (made,) = ctx.processors
    assert made.hooks == ["before one"]
    assert "TaskSucceeded" in made.events
    assert ctx.hook_plugins == [made]


def test_processor_from_the_settings_gets_its_hooks_once(monkeypatch):
    monkeypatch.setenv("DAGLITE_PROCESSORS", "both")
    with registry.override("processor", "both", Both), session() as ctx:
        one()
    (made,) = ctx.processors
    assert made.hooks == ["before one"]
    assert ctx.hook_plugins == [made]


def test_an_instance_given_directly_is_registered_once():
    both = Both()
    with session(plugins=[both]) as ctx:
        one()
    assert both.hooks == ["before one"]
    assert ctx.hook_plugins == [both]


def test_a_plain_named_processor_is_no_hook_plugin():
    with registry.override("processor", "plain", EventsOnly), session(plugins=["plain"]) as ctx:
        one()
    assert ctx.hook_plugins == []
    assert ctx.runtime.hook is None


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
