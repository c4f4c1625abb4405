"""Datasets: named values saved to and loaded from a store, in a chosen format.

`save_dataset` / `load_dataset` work anywhere; `@task(dataset="out/{x}.json")` saves
every result of a task automatically (also each map item: `{map_index}`). Keys may use
`{param}` placeholders, filled from the arguments of the task call running at the time.

The store is, in order: the explicit `store=` argument (for auto-saves, the task's
`dataset_store=`), else the `dataset_store=` of the task whose call is running, else the
session's dataset store, else the settings' (`.daglite/datasets` by default). The format
is `format=`, else the key's extension, else the value's type (see `daglite.formats`).

In a worker process of a process-based backend the runtime carries a
`dataset_relay` callable. A save to a store that only the coordinator's
machine can reach (`is_local`) is then serialized in the worker and handed to the relay
as one picklable `RelayedWrite`; the coordinator calls its `apply(runtime)`, which writes
the bytes (`apply_relayed_write`). Remote stores are written directly by the worker.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from typing import Any
from typing import NamedTuple
from typing import TypeVar
from typing import overload

from daglite.bytestore import check_key
from daglite.context import Runtime
from daglite.context import current_runtime
from daglite.context import current_task
from daglite.context import outside_runtime
from daglite.datasetstore import DatasetStore
from daglite.datasetstore import open_dataset_store
from daglite.errors import DatasetError
from daglite.lifecycle import dataset_loaded
from daglite.lifecycle import dataset_saved
from daglite.taskspec import TaskSpec
from daglite.templates import UnsafeValue
from daglite.templates import fill_key

if TYPE_CHECKING:
    from daglite.context import TaskMetadata

__all__ = [
    "DatasetStore",
    "RelayedWrite",
    "apply_relayed_write",
    "autosave",
    "load_dataset",
    "open_dataset_store",
    "resolve_key",
    "save_dataset",
]

R = TypeVar("R")

# -- keys ---------------------------------------------------------------------------------


_UNBOUND = (
    "; the task's arguments are only bound when its own body calls save_dataset or "
    "load_dataset: call them there, or format the key yourself"
)


def resolve_key(key: str, meta: TaskMetadata | None) -> str:
    """`key` with its `{param}` / `{map_index}` placeholders filled from `meta`'s call.

    A value must not change which key the template names: one containing a path separator
    or being `.`/`..` is refused, unless its placeholder opts in with `!p`
    (`"reports/{region!p}/summary.json"`; see `daglite.templates`).

    Raises:
        DatasetError: A placeholder cannot be filled (outside a task, or not an argument), or
            a value would pick another key.
    """
    if "{" not in key:
        return key
    if meta is None:
        raise DatasetError(
            f"dataset key {key!r} has placeholders but no task is running to fill them{_UNBOUND}"
        )
    values = {**meta.inputs, "map_index": meta.map_index}
    try:
        return fill_key(key, values)
    except UnsafeValue as exc:
        raise DatasetError(
            f"refusing to fill dataset key {key!r} in task '{meta.name}': {exc}; nothing was "
            "saved or loaded"
        ) from None
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        hint = "" if meta.inputs else _UNBOUND
        raise DatasetError(
            f"cannot fill dataset key {key!r} in task '{meta.name}': {type(exc).__name__}: "
            f"{exc} (available placeholders: {sorted(values)}){hint}"
        ) from None


def _store_spec(explicit: Any, runtime: Runtime, meta: TaskMetadata | None) -> Any:
    # explicit argument -> task context -> session context -> global settings
    if explicit is not None:
        return explicit
    if meta is not None and meta.dataset_store is not None:
        return meta.dataset_store
    if runtime.dataset_store is not None:
        return runtime.dataset_store
    return runtime.settings.dataset_store


# -- save / load --------------------------------------------------------------------------


def _save(
    key: str,
    value: Any,
    format: str | None,
    spec: Any,
    options: dict[str, Any] | None,
    runtime: Runtime,
    meta: TaskMetadata | None,
) -> str:
    store = open_dataset_store(_store_spec(spec, runtime, meta))
    key = resolve_key(key, meta)
    hook = runtime.hook
    start = time.perf_counter()
    if hook is not None:
        check_key(key, store.bytes.url)  # an invalid key fails before any hook runs
        hook.before_dataset_save(
            key=key, value=value, format=format, options=options, metadata=meta
        )
    data, fmt = store.dumps(key, value, format=format, options=options)
    relay = runtime.dataset_relay
    if relay is not None and store.is_local:
        index = meta.map_index if meta is not None else None
        relay(RelayedWrite(store.config(), key, data, index))
        path = store.bytes.full_path(key)
    else:
        path = store.write(key, data)
    if hook is not None:
        hook.after_dataset_save(key=key, value=value, format=format, options=options, metadata=meta)
    dataset_saved(
        runtime,
        meta,
        key=key,
        store=store.url,
        format=fmt.name,
        duration=time.perf_counter() - start,
        size=len(data) if isinstance(data, (bytes, bytearray)) else None,
    )
    return path


def save_dataset(
    key: str,
    value: Any,
    *,
    format: str | None = None,
    store: DatasetStore | str | None = None,
    options: dict[str, Any] | None = None,
) -> str:
    """Save a value to the active (or explicitly provided) dataset store.

    Inside a process worker, a save to a store only the coordinator's machine can reach is
    relayed to the coordinator, which writes it.

    The store is resolved from the context chain: explicit argument -> task context (the
    running task's `dataset_store=`) -> session context -> global settings.

    Args:
        key: Storage key/path. May contain `{param}` placeholders resolved from the current
            task's bound arguments (and `{map_index}`).
        value: The Python object to serialize and persist.
        format: Serialization format (e.g. `"pickle"`, `"json"`); else from the key's
            extension, else from the value's type.
        store: Explicit `DatasetStore` or string path/URL. When `None`, the store is resolved
            from the context chain.
        options: Additional options forwarded to the format (e.g. `{"indent": 2}` for json).

    Returns:
        The actual path where data was stored (a local path, or a URL).

    Raises:
        StoreError: The key is invalid (absolute, or leaving the store's root).
        DatasetError: The format is unknown, cannot save the value, or a placeholder cannot
            be filled.
    """
    runtime = current_runtime.get() or outside_runtime("save_dataset")
    return _save(key, value, format, store, options, runtime, current_task())


@overload
def load_dataset(
    key: str,
    return_type: type[R],
    *,
    format: str | None = None,
    store: DatasetStore | str | None = None,
    options: dict[str, Any] | None = None,
) -> R: ...
@overload
def load_dataset(
    key: str,
    *,
    format: str | None = None,
    store: DatasetStore | str | None = None,
    options: dict[str, Any] | None = None,
) -> Any: ...
def load_dataset(
    key: str,
    return_type: type[R] | None = None,
    *,
    format: str | None = None,
    store: DatasetStore | str | None = None,
    options: dict[str, Any] | None = None,
) -> R | Any:
    """Load a dataset from the active (or explicitly provided) dataset store.

    Args:
        key: Storage key/path. May contain `{param}` placeholders that are resolved from the
            current task's bound arguments.
        return_type: Expected Python type for deserialization dispatch.
        format: Serialization format hint (e.g. `"pickle"`).
        store: Explicit `DatasetStore` or string path. When `None`, the store is resolved
            from the context chain (as for `save_dataset`).
        options: Additional options forwarded to the format.

    Returns:
        The deserialized Python object.

    Raises:
        DatasetError: Nothing is saved under the key (the message names key and store), the
            format is unknown, or the data cannot be read in it.
    """
    runtime = current_runtime.get() or outside_runtime("load_dataset")
    meta = current_task()
    resolved = open_dataset_store(_store_spec(store, runtime, meta))
    key = resolve_key(key, meta)
    hook = runtime.hook
    if hook is not None:
        hook.before_dataset_load(
            key=key, return_type=return_type, format=format, options=options, metadata=meta
        )
    start = time.perf_counter()
    result, fmt_name = resolved._load(key, return_type, format, options)
    duration = time.perf_counter() - start
    if hook is not None:
        hook.after_dataset_load(
            key=key,
            return_type=return_type,
            format=format,
            options=options,
            metadata=meta,
            result=result,
            duration=duration,
        )
    dataset_loaded(runtime, meta, key=key, store=resolved.url, format=fmt_name, duration=duration)
    return result


def autosave(task: TaskSpec, runtime: Runtime, meta: TaskMetadata, value: Any) -> str:
    """Save a task call's result under its `dataset=` key (called by the run pipeline)."""
    return _save(
        task.dataset,  # type: ignore[arg-type]
        value,
        task.dataset_format,
        task.dataset_store,
        None,
        runtime,
        meta,
    )


class RelayedWrite(NamedTuple):
    """A dataset write made in a worker, to be applied by the coordinator (it pickles).

    Attributes:
        store: `DatasetStore.config()` of the target store (a URL, or URL and options).
        key: The resolved key.
        data: The serialized dataset (never deserialized on the way).
        map_index: The map item whose call saved it (its failure becomes that item's), or
            `None`.
    """

    store: Any
    key: str
    data: bytes
    map_index: int | None

    def apply(self, runtime: Any = None) -> str:
        """Write the data on the coordinator; returns where it was stored."""
        return apply_relayed_write(self.store, self.key, self.data)


def apply_relayed_write(store: Any, key: str, data: bytes) -> str:
    """Write bytes a worker serialized for a local-only store (runs on the coordinator).

    The bytes are written as they came (never deserialized here); the key is validated
    again by the store.

    Args:
        store: What the worker's `DatasetStore.config()` returned (a URL or path, or a
            `{"url", "options"}` dict), or a store object.
        key: The resolved key.
        data: The serialized dataset.

    Returns:
        Where the data was stored.

    Raises:
        StoreError: The key is invalid or the write failed.
    """
    return open_dataset_store(store).write(key, data)
