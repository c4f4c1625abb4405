"""Daglite: Lightweight Python framework for building eager task pipelines."""

# Every public name is loaded on first use (PEP 562): `import daglite` runs no daglite module,
# so the `daglite` command, a worker process and `from daglite import task` pay only for what
# they use. `from daglite import X`, `daglite.X`, `__all__` and `dir(daglite)` work as with
# eager imports, and type checkers see the names through the `TYPE_CHECKING` block.

from __future__ import annotations

import sys

# Not `typing.TYPE_CHECKING`: importing `typing` alone costs more than the rest of this module.
# pyright and mypy treat any name `TYPE_CHECKING` as true.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from daglite.composers import gather_tasks
    from daglite.composers import map_tasks
    from daglite.context import TaskMetadata
    from daglite.context import current_task
    from daglite.datasets import load_dataset
    from daglite.datasets import save_dataset
    from daglite.errors import BackendError
    from daglite.errors import DagliteError
    from daglite.errors import DatasetError
    from daglite.errors import PluginError
    from daglite.errors import SettingsError
    from daglite.errors import StoreError
    from daglite.errors import TaskError
    from daglite.errors import TaskTimeoutError
    from daglite.hooks import register_plugin
    from daglite.hooks import unregister_plugin
    from daglite.hookspecs import hookimpl
    from daglite.logger import get_logger
    from daglite.session import SessionContext
    from daglite.session import async_session
    from daglite.session import session
    from daglite.settings import DagliteSettings
    from daglite.tasks import task
    from daglite.workflows import workflow

__version__ = "0.1.0+clone"

__all__ = [
    "BackendError",
    "DagliteError",
    "DagliteSettings",
    "DatasetError",
    "PluginError",
    "SessionContext",
    "SettingsError",
    "StoreError",
    "TaskError",
    "TaskMetadata",
    "TaskTimeoutError",
    "__version__",
    "async_session",
    "current_task",
    "gather_tasks",
    "get_logger",
    "hookimpl",
    "load_dataset",
    "map_tasks",
    "register_plugin",
    "save_dataset",
    "session",
    "task",
    "unregister_plugin",
    "workflow",
]

#: The module that defines each public name (`hookimpl` needs pluggy, only plugin authors ask).
_SOURCES = {
    "gather_tasks": "daglite.composers",
    "map_tasks": "daglite.composers",
    "TaskMetadata": "daglite.context",
    "current_task": "daglite.context",
    "load_dataset": "daglite.datasets",
    "save_dataset": "daglite.datasets",
    "BackendError": "daglite.errors",
    "DagliteError": "daglite.errors",
    "DatasetError": "daglite.errors",
    "PluginError": "daglite.errors",
    "SettingsError": "daglite.errors",
    "StoreError": "daglite.errors",
    "TaskError": "daglite.errors",
    "TaskTimeoutError": "daglite.errors",
    "register_plugin": "daglite.hooks",
    "unregister_plugin": "daglite.hooks",
    "hookimpl": "daglite.hookspecs",
    "get_logger": "daglite.logger",
    "SessionContext": "daglite.session",
    "async_session": "daglite.session",
    "session": "daglite.session",
    "DagliteSettings": "daglite.settings",
    "task": "daglite.tasks",
    "workflow": "daglite.workflows",
}


def _load(name: str) -> object:
    """The public name `name`, imported from its module on first use (the module `__getattr__`)."""
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'daglite' has no attribute {name!r}")
    __import__(source)
    value = getattr(sys.modules[source], name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(type(sys)):
    """The `daglite` module's class: `daglite.session` stays the function.

    Importing the submodule `daglite.session` binds it as the package's `session`
    attribute; the function of the same name is what `daglite.session` means.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name == "session" and isinstance(value, type(sys)):
            value = _load(name)
        super().__setattr__(name, value)


if not TYPE_CHECKING:  # type checkers see the imports above, and no other name
    __getattr__ = _load

sys.modules[__name__].__class__ = _Package
