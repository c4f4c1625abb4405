"""The worker side of process-style backends: what runs inside a worker process.

Every backend whose workers live in other processes (`process` in the core, `loky`,
`dask` and `ray` in plugins) ships the same three things (see
`daglite.backends.transport`) and runs the same function, `run_batch(request)`:

- a `WorkerSpec`: the session's settings, hook plugins, store configuration and id. A
  worker rebuilds its side of the session from it **once** (`worker_runtime`, cached by
  `WorkerSpec.key`) and calls the `on_worker_start` hook;
- a job blob: the task and the map's ids, cloudpickled once per map (cached by `job_key`);
- items: the cloudpickled `(indexes, args)` of the batch's items, side by side (a list
  of `(map_index, args)` pairs is read too).

`run_batch` runs the items in order through the same run pipeline as an inline call
(`MapJob.run_chunk`) with a worker `Runtime(in_worker=True)` whose event sink appends to
a per-batch buffer, and returns a cloudpickled `BatchResult`: the outcomes, the buffered
events, log records and dataset writes (`RelayedWrite`s, through `Runtime.dataset_relay`),
the time the items took, and whether the worker must be replaced (a timed-out attempt is
still running in it). The coordinator hands those bytes to `daglite.backends.packing.relay`.

This module is imported by every worker, so it imports little: cloudpickle only when a
batch arrives.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import pickle
import sys
import threading
import time
import traceback
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from daglite.backends.base import MapJob
from daglite.backends.batchloop import run_items
from daglite.backends.environ import keep_only
from daglite.backends.transport import BatchRequest
from daglite.backends.transport import BatchResult
from daglite.backends.transport import JobInfo
from daglite.backends.transport import WorkerSpec
from daglite.backends.transport import load_shared
from daglite.context import Runtime
from daglite.context import WorkflowFrame
from daglite.context import current_frame
from daglite.context import current_runtime
from daglite.errors import DagliteError
from daglite.errors import TaskError
from daglite.tallies import Tally
from daglite.tallies import current_map
from daglite.tallies import tally_of

# -- worker state (one per worker process, rebuilt per spec and per map) ---------------------

_runtimes: dict[str, Runtime] = {}
_jobs: dict[str, JobInfo] = {}
_MAX_JOBS = 8
_MAX_RUNTIMES = 4
_batch: contextvars.ContextVar[BatchResult | None] = contextvars.ContextVar(
    "daglite_batch", default=None
)
# Sends `(is_write, event_or_write)` pairs to the coordinator at once (streamed batches).
_stream: contextvars.ContextVar[Callable[[list[Any]], None] | None] = contextvars.ContextVar(
    "daglite_stream", default=None
)


class _WorkerSink:
    """The event sink of a worker runtime: buffers the wanted events of the running batch.

    It keeps the worker's session tally too; each batch takes what was counted since the
    previous one and sends it back with its result.
    """

    def __init__(self, wants: Any) -> None:
        from daglite.interest import EVERY_EVENT

        self.wants = wants if wants is not None else EVERY_EVENT
        self.tally = Tally()

    def __call__(self, event: Any) -> None:
        batch = _batch.get()
        if batch is None:  # an abandoned attempt emitting after its batch ended: dropped
            return
        stream = _stream.get()
        if stream is None:
            batch.events.append(event)
        else:
            stream([(False, event)])


def _relay(write: Any) -> None:
    """The worker runtime's `dataset_relay`: queue a save to a coordinator-only store.

    The coordinator applies the writes in order, each before any event emitted after it
    (a `DatasetSaved` event finds the data saved).
    """
    batch = _batch.get()
    if batch is None:
        return
    stream = _stream.get()
    if stream is None:
        batch.writes.append(write)
    else:  # streamed with the events, so a write still comes before the events after it
        stream([(True, write)])


class _LogCapture(logging.Handler):
    """Keeps log records emitted during a batch, made picklable like `QueueHandler` does."""

    def emit(self, record: logging.LogRecord) -> None:
        batch = _batch.get()
        if batch is None:
            return
        try:
            message = self.format(record)
        except Exception:
            message = str(record.msg)
        record = logging.makeLogRecord(record.__dict__)
        record.msg = message
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        batch.logs.append(record)


_applied: set[str] = set()  # variables a spec set here (the others are the worker's own)


def _apply_environ(environ: dict[str, str], clean: bool = False) -> None:
    """Make this worker's environment the coordinator's (as of the spec), keeping its own.

    With `clean`, the variables it inherited that the session does not ship are dropped
    (the system ones stay): see `daglite.backends.environ`.
    """
    if clean:
        keep_only(environ)
    for name in _applied - environ.keys():
        os.environ.pop(name, None)  # unset on the coordinator since an earlier spec
    for name, value in environ.items():
        if os.environ.get(name) != value:
            os.environ[name] = value
            _applied.add(name)


def worker_runtime(spec: WorkerSpec) -> Runtime:
    """The worker runtime of `spec`, built on first use (`on_worker_start` fires then)."""
    runtime = _runtimes.get(spec.key)
    if runtime is not None:
        return runtime
    for path in reversed(spec.sys_path):
        if path not in sys.path:
            sys.path.insert(0, path)
    _apply_environ(spec.environ, spec.clean_env)
    from daglite import hooks
    from daglite.settings import set_global_settings

    set_global_settings(spec.settings)  # before the stores are rebuilt: their factories see it
    plugins, cache_store, dataset_store = pickle.loads(spec.payload)
    hook = hooks.build_hook(plugins)
    runtime = Runtime(
        session_id=spec.session_id,
        settings=spec.settings,
        backend=spec.backend,
        hook=hook,
        emit=_WorkerSink(spec.wants) if spec.emit else None,
        cache_store=cache_store,
        dataset_store=dataset_store,
        in_worker=True,
        dataset_relay=_relay,
    )
    if not _runtimes:  # first session seen by this worker: relay its log records
        root = logging.getLogger()
        root.addHandler(_LogCapture())
        root.setLevel(spec.settings.log_level.upper())
    if len(_runtimes) >= _MAX_RUNTIMES:  # sessions come and go: keep the newest few
        _runtimes.pop(next(iter(_runtimes)))
    _runtimes[spec.key] = runtime
    if hook is not None:  # in the worker's runtime: in_worker() and current_settings() hold
        token = current_runtime.set(runtime)
        try:
            hook.on_worker_start(settings=spec.settings)
        finally:
            current_runtime.reset(token)
    return runtime


def _job(key: str, blob: bytes | None) -> JobInfo:
    job = _jobs.get(key)
    if job is None:
        if blob is None:
            raise RuntimeError(f"worker {os.getpid()} was sent a batch of unknown map {key}")
        job = pickle.loads(blob)
        if len(_jobs) >= _MAX_JOBS:
            _jobs.pop(next(iter(_jobs)))
        _jobs[key] = job
    return job


def run_batch(
    request: BatchRequest,
    progress: Callable[[int], None] | None = None,
    stream: Callable[[list[Any]], None] | None = None,
) -> bytes:
    """Run one batch in this worker; returns the cloudpickled `BatchResult`.

    Args:
        request: The batch.
        progress: Called with each item's map index before it runs (a pool that can watch
            it learns which item a dying worker was running).
        stream: Sends events and dataset writes to the coordinator at once, as a list of
            `(is_write, obj)` pairs, when `request.stream` asks for it and the pool can
            (else they travel with the result).
    """
    try:
        spec = request.spec
        if spec is None:
            runtime = _runtimes.get(request.spec_key)
            if runtime is None:
                raise RuntimeError(f"worker {os.getpid()} was sent a batch of an unknown session")
        else:
            runtime = worker_runtime(spec)
        info = _job(request.job_key, request.job)
        load_shared(request.shared)
        items = pickle.loads(request.items)
        if isinstance(items, list):  # `(map_index, args)` pairs, as batches were packed before
            items = ([index for index, _ in items], [args for _, args in items])
        indexes, args = items[0], items[1]
        budget = items[2] if len(items) > 2 else None  # seconds (`pack_batch`)
        single = len(items) > 3 and items[3]  # `args` are the values of a map of one iterable
    except Exception as exc:  # the task, its arguments or a plugin do not load here
        return _dump(BatchResult(error=f"{type(exc).__name__}: {exc}"), "?")
    job = MapJob(
        task=info.task,
        items=iter(()),
        total=None,
        map_id=info.map_id,
        runtime=runtime,
        parent=None,
        backend=runtime.backend,
        return_exceptions=info.return_exceptions,
    )
    result = BatchResult()
    calls = tally_of(runtime.emit)  # the worker's tally of every call, taken per batch
    tally = Tally(info.map_id) if calls is not None else None
    map_token = current_map.set(tally)
    batch_token = _batch.set(result)
    stream_token = _stream.set(stream if request.stream else None)
    runtime_token = current_runtime.set(runtime)
    frame_token = current_frame.set(
        WorkflowFrame(info.parent_id, "map", None) if info.parent_id is not None else None
    )
    start = time.perf_counter()
    try:
        values, outcomes = run_items(job, indexes, args, single, progress, budget)
        if outcomes is None:  # every item that ran succeeded: back compact
            result.succeeded(indexes, values)  # type: ignore[arg-type]
        else:
            result.outcomes = outcomes
    finally:
        result.duration = time.perf_counter() - start
        current_frame.reset(frame_token)
        current_runtime.reset(runtime_token)
        _stream.reset(stream_token)
        _batch.reset(batch_token)
        current_map.reset(map_token)
        if tally is not None and calls is not None:
            result.map_counts = tally.take()
            result.counts = calls.take()
    result.tainted = info.task.timeout is not None and _abandoned_attempt_running()
    return _dump(result, info.task.name, indexes)


def _abandoned_attempt_running(grace: float = 0.2) -> bool:
    """Whether a timed-out attempt still runs here, after `grace` seconds to stop.

    An abandoned attempt in pure Python stops at its next instruction, so it is given a
    moment before the worker is declared tainted (and replaced: 2-4 s for a dask worker).
    """
    deadline = time.monotonic() + grace
    for thread in threading.enumerate():
        if thread.name.startswith("daglite-timeout-"):
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return True
    return False


def _dump(result: BatchResult, name: str, indexes: Sequence[int] = ()) -> bytes:
    """Cloudpickle `result`; values or errors that cannot travel are replaced by errors.

    When every item succeeded, the result travels compact (`BatchResult.compact`).
    """
    import cloudpickle

    if result.values is None and not result.compact(indexes):
        result.outcomes = [
            (index, ok, value if ok else _readable(value)) for index, ok, value in result.outcomes
        ]
    try:
        return cloudpickle.dumps(result)
    except Exception:
        pass
    outcomes = []
    for index, ok, value in result.outcomes:
        try:
            cloudpickle.dumps(value)
        except Exception as exc:
            ok, value = False, _unsendable(index, value, exc, name)
        outcomes.append((index, ok, value))
    result.outcomes = outcomes
    events = []
    for event in result.events:
        try:
            cloudpickle.dumps(event)
        except Exception:
            continue  # an event with an unpicklable field: dropped rather than lose the batch
        events.append(event)
    result.events = events
    result.writes = [w for w in result.writes if _picklable(w)]
    return cloudpickle.dumps(result)


def _picklable(obj: Any) -> bool:
    import cloudpickle

    try:
        cloudpickle.dumps(obj)
    except Exception:
        return False
    return True


def _keep_traceback(error: Any) -> None:
    """Keep the worker's traceback text of a failed item (tracebacks do not pickle).

    It becomes `error.worker_traceback` and a note on the original exception, so it is
    printed with the coordinator's traceback.
    """
    cause = error.__cause__ if isinstance(error, TaskError) else None
    if cause is None or getattr(error, "worker_traceback", None):
        return
    text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    error.worker_traceback = text
    add_note = getattr(cause, "add_note", None)  # Python >= 3.11
    if add_note is not None:
        add_note(f"\nTraceback in worker process {os.getpid()}:\n{text.rstrip()}")


def _readable(error: BaseException) -> BaseException:
    """`error` with its worker traceback kept, and made readable on the coordinator.

    An exception whose class cannot be rebuilt from its pickle (an `__init__` taking other
    arguments than its `args`) would make the whole batch unreadable: it is replaced by a
    `RemoteError` keeping its type name, message and traceback. Daglite errors carry their
    cause across (a `BackendError` raised from a `PluginError`), so each link of that chain
    is checked, the deepest first, and only the links that cannot be rebuilt are replaced.
    """
    _keep_traceback(error)
    if _rebuilds(error):
        return error
    chain = [error]  # daglite errors carry their cause across; the chain ends at any other
    while isinstance(chain[-1], DagliteError) and chain[-1].__cause__ is not None:
        if any(link is chain[-1].__cause__ for link in chain):
            break
        chain.append(chain[-1].__cause__)
    text = getattr(error, "worker_traceback", None)
    for parent, link in reversed(list(itertools.pairwise(chain))):  # the deepest link first
        if not _rebuilds(link):
            parent.__cause__ = _stand_in(link, text if parent is error else None)
    return error if _rebuilds(error) else _stand_in(error, text)


def _rebuilds(error: BaseException) -> bool:
    import cloudpickle

    try:
        pickle.loads(cloudpickle.dumps(error))
    except Exception:
        return False
    return True


def _stand_in(error: BaseException, text: str | None) -> BaseException:
    from daglite.errors import RemoteError

    kind = type(error)
    if text is None:
        text = "".join(traceback.format_exception(kind, error, error.__traceback__))
    return RemoteError(f"{kind.__module__}.{kind.__qualname__}", str(error), text)


def _unsendable(index: int, value: Any, exc: Exception, name: str) -> TaskError:
    """The error reporting that an item's value (or error) cannot be pickled back."""
    what = f"the result of task '{name}' (map index {index})"
    if isinstance(value, TaskError):
        what = f"the error of task '{value.task_name}' (map index {index})"
    error = TaskError(
        f"{what} cannot be sent back from the worker process: {exc}",
        task_name=name,
        map_index=index,
    )
    if isinstance(value, TaskError):
        error.worker_traceback = getattr(value, "worker_traceback", None) or str(value)
    return error
