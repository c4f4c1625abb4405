"""What runs on a dask worker: a map's picklable spec and the function that runs one batch.

The coordinator pickles a `BatchSpec` once per map (cloudpickle, so tasks and hook plugins
defined in `__main__` travel too) and sends those bytes with every batch. A worker unpickles
a spec once and keeps the last few, so a map of many batches pays for it once per worker.

`run_batch` rebuilds a worker-side runtime (settings, hook plugins, stores, no processors),
runs its items through the same run pipeline as a direct call (`MapJob.run_chunk`), and
returns the outcomes together with the events emitted meanwhile; the coordinator replays
those events into the session's processors.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import attrs

from daglite.backends.base import MapJob
from daglite.backends.base import Outcome
from daglite.context import Runtime
from daglite.context import WorkflowFrame
from daglite.context import current_frame
from daglite.context import current_runtime
from daglite.settings import DagliteSettings

if TYPE_CHECKING:
    from daglite.events import Event
    from daglite.tasks import BaseTask

_SPEC_CACHE_SIZE = 8


@attrs.define(eq=False)
class BatchSpec:
    """Everything a worker needs to run items of one map, apart from the items themselves.

    Attributes:
        task: The mapped task.
        settings: The session's settings.
        session_id: Id of the coordinator's session (in every event).
        session_backend: The session's default backend name.
        map_id: Id of the map.
        backend: Name of the backend running the map (in every item's metadata).
        parent: `(task_id, name, parent_id)` of the frame that started the map, if any.
        hook_plugins: The session's hook plugins (they run where the task runs).
        cache_store: The session's cache store (a URL or a store object).
        dataset_store: The session's dataset store (a URL or a store object).
        listening: Whether the coordinator has processors (else no event is built).
        return_exceptions: Keep running a batch after a failed item.
    """

    task: BaseTask[Any, Any]
    settings: DagliteSettings
    session_id: str
    session_backend: str
    map_id: str
    backend: str
    parent: tuple[str, str, str | None] | None
    hook_plugins: tuple[Any, ...]
    cache_store: Any
    dataset_store: Any
    listening: bool
    return_exceptions: bool
    _hook: Any = attrs.field(default=None, init=False)
    _hook_built: bool = attrs.field(default=False, init=False)

    def __getstate__(self) -> dict[str, Any]:
        state = {f.name: getattr(self, f.name) for f in attrs.fields(type(self))}
        state["_hook"], state["_hook_built"] = None, False  # a pluggy relay is rebuilt there
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def hook(self) -> Any:
        """The pluggy hook relay over the hook plugins (built once per worker), or `None`.

        The first time a worker process sees a session, its `on_worker_start` hook runs.
        """
        if not self._hook_built:
            from daglite import hooks

            hook = hooks.build_hook(self.hook_plugins)
            with _specs_lock:
                first = self.session_id not in _sessions_seen
                _sessions_seen.add(self.session_id)
            if hook is not None and first:
                hook.on_worker_start(settings=self.settings)
            self._hook, self._hook_built = hook, True
        return self._hook


_specs: OrderedDict[str, BatchSpec] = OrderedDict()
_specs_lock = threading.Lock()
_sessions_seen: set[str] = set()


def _load_spec(map_id: str, payload: bytes) -> BatchSpec:
    with _specs_lock:
        spec = _specs.get(map_id)
        if spec is not None:
            _specs.move_to_end(map_id)
            return spec
    import cloudpickle

    spec = cloudpickle.loads(payload)
    with _specs_lock:
        spec = _specs.setdefault(map_id, spec)
        while len(_specs) > _SPEC_CACHE_SIZE:
            _specs.popitem(last=False)
    return spec


def run_batch(
    map_id: str, payload: bytes, chunk: Sequence[tuple[int, tuple[Any, ...]]]
) -> tuple[list[Outcome], list[Event] | None]:
    """Run `chunk` (pairs of map index and argument tuple) on this worker.

    Args:
        map_id: Id of the map (the key under which the unpickled spec is kept).
        payload: The cloudpickled `BatchSpec` of the map.
        chunk: The items of this batch, in order.

    Returns:
        The outcomes, in order (stopping after the first failure unless exceptions are
        returned), and the events emitted while running them (`None` when nobody listens).
    """
    spec = _load_spec(map_id, payload)
    events: list[Event] | None = [] if spec.listening else None
    runtime = Runtime(
        session_id=spec.session_id,
        settings=spec.settings,
        backend=spec.session_backend,
        hook=spec.hook(),
        emit=events.append if events is not None else None,
        cache_store=spec.cache_store,
        dataset_store=spec.dataset_store,
        in_worker=True,
    )
    parent = WorkflowFrame(*spec.parent) if spec.parent is not None else None
    job = MapJob(
        task=spec.task,
        items=iter(()),
        total=None,
        map_id=map_id,
        runtime=runtime,
        parent=parent,
        backend=spec.backend,
        return_exceptions=spec.return_exceptions,
    )
    runtime_token = current_runtime.set(runtime)
    frame_token = current_frame.set(parent)
    try:
        outcomes = job.run_chunk(chunk)
    finally:
        current_frame.reset(frame_token)
        current_runtime.reset(runtime_token)
    return outcomes, events
