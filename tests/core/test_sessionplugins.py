"""A session's plugins (`daglite.sessionplugins`): the mixed `plugins=[...]` list, processors
by name, `replaces`, and what is released when one of them fails."""

from __future__ import annotations

import pytest

from daglite import PluginError
from daglite import hookimpl
from daglite import registry
from daglite import session
from daglite import task
from daglite.backends.thread import ThreadBackend
from daglite.settings import DagliteSettings
from daglite.testing import EventCapture
from daglite.testing import override_plugin


@task
def add(x: int, y: int) -> int:
    return x + y


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


def test_the_event_log_joining_does_not_keep_a_replaced_default(tmp_path):
    """`event_log=` adds `jsonl`; that is not the user naming `logging`, which stays replaceable."""

    class Noisy:
        def __call__(self, event):
            raise AssertionError("a replaced processor must see no event")

    class Quiet:
        replaces = ("logging",)

        def __call__(self, event):
            pass

    log = tmp_path / "events.jsonl"
    with (
        override_plugin("processor", "logging", Noisy),
        override_plugin("processor", "quiet", Quiet),
        session(settings=DagliteSettings(event_log=str(log)), plugins=["quiet"]) as ctx,
    ):
        pass
    assert sorted(type(p).__name__ for p in ctx.processors) == ["JsonlProcessor", "Quiet"]
    assert '"event": "SessionEnded"' in log.read_text()


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
