"""Hook plugins: registering them globally and building a session's plugin manager.

A hook plugin is any object (or module) with methods marked `@daglite.hookimpl`, named
after the specifications in `daglite.hookspecs`. pluggy is imported only when a session
actually has a hook plugin, so plain sessions pay nothing for hooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from daglite.errors import PluginError

PROJECT = "daglite"
_MARK = PROJECT + "_impl"  # the attribute pluggy's HookimplMarker("daglite") sets

_global_plugins: list[Any] = []


def is_hook_plugin(obj: Any) -> bool:
    """True if `obj` has at least one `@daglite.hookimpl` method or function."""
    for name in dir(obj):
        if name.startswith("__"):
            continue
        try:
            attr = getattr(obj, name)
        except Exception:
            continue
        if hasattr(attr, _MARK):
            return True
    return False


def register_plugin(plugin: Any) -> None:
    """Register a hook plugin for every session opened from now on (in this process).

    Raises:
        PluginError: `plugin` has no `@daglite.hookimpl` method, or is a class (not an
            instance).
    """
    if isinstance(plugin, type) and is_hook_plugin(plugin):
        raise PluginError(
            f"{plugin.__name__} is a class, not a hook plugin object: pass an instance, "
            f"register_plugin({plugin.__name__}())"
        )
    if not is_hook_plugin(plugin):
        raise PluginError(
            f"{plugin!r} has no @daglite.hookimpl method; mark its hook methods with "
            "@daglite.hookimpl (see daglite.hookspecs for their names)."
        )
    if not any(p is plugin for p in _global_plugins):
        _global_plugins.append(plugin)


def unregister_plugin(plugin: Any) -> None:
    """Undo `register_plugin` (unknown plugins are ignored)."""
    _global_plugins[:] = [p for p in _global_plugins if p is not plugin]


def global_plugins() -> list[Any]:
    """The hook plugins registered with `register_plugin`, in registration order."""
    return list(_global_plugins)


def build_hook(plugins: Iterable[Any]) -> Any:
    """Pluggy's hook relay over `plugins`, or `None` when there are none.

    Raises:
        PluginError: A plugin implements a hook that does not exist or with wrong arguments.
    """
    plugins = list(plugins)
    if not plugins:
        return None
    import pluggy

    from daglite import hookspecs

    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    for plugin in plugins:
        try:
            manager.register(plugin)
        except ValueError:
            continue  # registered twice (globally and for the session): once is enough
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"invalid daglite hook plugin {plugin!r}: {exc}") from exc
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"invalid daglite hook plugin: {exc}") from exc
    return manager.hook
