"""A processor named in `plugins=` or in the settings that is also a hook plugin gets its hooks."""

from __future__ import annotations

from daglite import hookimpl
from daglite import registry
from daglite import session
from daglite import task


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
