"""Daglite: Lightweight Python framework for building eager task pipelines."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

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
from daglite.session import SessionContext
from daglite.session import async_session
from daglite.session import session
from daglite.settings import DagliteSettings
from daglite.tasks import task
from daglite.workflows import workflow

if TYPE_CHECKING:
    from daglite.hookspecs import hookimpl

__version__ = "0.1.0"

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


def __getattr__(name: str) -> Any:
    # `hookimpl` needs pluggy; import it only when a plugin author asks for it.
    if name == "hookimpl":
        from daglite.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module 'daglite' has no attribute {name!r}")
