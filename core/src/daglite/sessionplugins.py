"""A session's plugins: the `plugins=` argument and the settings' processors, sorted out.

`session_plugins` turns them into the session's hook plugins (global ones included), its
event processors and the hook relay: names are loaded from the `daglite.processors` group
(once each, `make_processor`), objects are told apart by shape (a hook plugin has
`@daglite.hookimpl` methods, a processor is a callable taking one event, an object may be
both), a processor that `replaces` a default one drops it unless the user named it, and
everything built so far is released when one of them fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import attrs

from daglite import hooks
from daglite import registry
from daglite.dispatch import EventDispatcher
from daglite.errors import PluginError
from daglite.interest import interest_of
from daglite.pluginoptions import for_plugin
from daglite.settings import DagliteSettings

if TYPE_CHECKING:
    from daglite import events as ev


def make_processor(name: str, settings: DagliteSettings) -> Callable[[ev.Event], Any]:
    """Instantiate the processor registered under `name` for `settings`.

    A processor class may define `from_settings(settings)`; otherwise it is called with
    no argument.
    """
    factory = registry.load("processor", name, providers=settings.providers)
    settings = for_plugin(settings, name, factory)  # its declared options, checked
    from_settings = getattr(factory, "from_settings", None)
    return from_settings(settings) if from_settings is not None else factory()


#: The processors of the default settings (`replaces` may drop these).
_DEFAULT_PROCESSORS = attrs.fields(DagliteSettings).plugins.default


def _replaces(processor: Any) -> tuple[str, ...]:
    replaces = getattr(processor, "replaces", ())
    return (replaces,) if isinstance(replaces, str) else tuple(replaces)


def _as_list(plugins: Any) -> list[Any]:
    if plugins is None:
        return []
    return list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]


def named_processors(plugins: Any, settings: DagliteSettings) -> set[str]:
    """The processors the user named (not the default `logging`): never `replaces`d."""
    chosen = {item for item in _as_list(plugins) if isinstance(item, str)}
    if settings.processors != _DEFAULT_PROCESSORS:
        chosen.update(settings.processors)
    return chosen


def session_plugins(
    plugins: Any, settings: DagliteSettings, chosen: set[str]
) -> tuple[list[Any], list[Callable[[ev.Event], Any]], Any]:
    """The hook plugins, the event processors and the hook relay of a session.

    Args:
        plugins: The session's `plugins=` argument (one item, a list, or `None`).
        settings: The session's settings (their `processors` are loaded by name).
        chosen: `named_processors(...)` of the user's own settings.

    Raises:
        PluginError: An item is neither a hook plugin, a processor nor a processor name, a
            hook plugin is a class, or a processor cannot be loaded or has a bad `interest`.
    """
    items = _as_list(plugins)
    hook_plugins = hooks.global_plugins()
    processors: list[Callable[[ev.Event], Any]] = []
    by_name: dict[str, Callable[[ev.Event], Any]] = {}
    try:
        for name in settings.processors:
            by_name[name] = make_processor(name, settings)
        for item in items:
            if isinstance(item, str):
                if item not in by_name:  # enabled by settings and by argument: one instance
                    by_name[item] = make_processor(item, settings)
                continue
            is_hook = hooks.is_hook_plugin(item)
            if is_hook and isinstance(item, type):  # its hooks would miss `self`
                raise PluginError(
                    f"{item.__name__} is a class, not a hook plugin object: pass an "
                    f"instance, plugins=[{item.__name__}()]"
                )
            if is_hook:
                hook_plugins.append(item)
            if callable(item) and not isinstance(item, type):
                processors.append(item)
            elif not is_hook:
                raise PluginError(
                    f"{item!r} is neither a hook plugin (no @daglite.hookimpl method), an "
                    "event processor (a callable taking one event) nor a processor name"
                )
        # A processor may supersede a default one (`rich` draws its own log lines, so the
        # default `logging` processor would print every line twice): drop those it
        # `replaces`, unless the user asked for them by name.
        replaced = {name for p in (*by_name.values(), *processors) for name in _replaces(p)}
        for name in (replaced & by_name.keys()) - chosen:
            EventDispatcher([by_name.pop(name)]).close()
        processors[:0] = by_name.values()
        # A processor loaded by name may also be a hook plugin (`otel` makes its span
        # current where each task runs): register it as one too.
        hook_plugins += [
            p
            for p in processors
            if hooks.is_hook_plugin(p) and all(p is not h for h in hook_plugins)
        ]
        hook = hooks.build_hook(hook_plugins)
        for processor in processors:  # a bad `interest` fails here, releasing the others
            interest_of(processor)
    except BaseException:  # release the processors made so far
        EventDispatcher([*by_name.values(), *processors]).close()
        raise
    return hook_plugins, processors, hook
