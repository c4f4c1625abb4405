"""The worker side of process-style backends: what runs inside a worker process.

Every backend whose workers live in other processes (`process` in the core, `loky`,
`dask` and `ray` in plugins) ships the same three things (see
`daglite.backends.transport`) and runs the same function, `run_batch(request)`:

- a `WorkerSpec`: the session's settings, hook plugins, store configuration and id. A
  worker rebuilds its side of the session from it **once** (`worker_runtime`, cached by
  `WorkerSpec.key`) and calls the `on_worker_start` hook;
- a job blob: the task and the map's ids, cloudpickled once per map (cached by `job_key`);
- items: the cloudpickled `(indexes, args)` of the batch's items, side by side, with a
  time budget and whether `args` are bare values when the map loop sends them (a list of
  `(map_index, args)` pairs is read too).

`run_batch` runs the items in order through the same run pipeline as an inline call
(`daglite.backends.batchloop.run_items`) with a worker `Runtime(in_worker=True)` whose
event sink appends to a per-batch buffer, and returns a cloudpickled `BatchResult`
(`daglite.backends.sendback.dump_result`): the values or outcomes, the buffered
events, log records and dataset writes (`RelayedWrite`s, through `Runtime.dataset_relay`),
the time the items took, and whether the worker must be replaced (a timed-out attempt is
still running in it). The coordinator hands those bytes to `daglite.backends.packing.relay`.

This module is imported by every worker, so it imports little: cloudpickle only when a
batch arrives.
"""

from __future__ import annotations

import contextvars
import logging
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from daglite.backends.base import MapJob
from daglite.backends.batchloop import run_items
from daglite.backends.environ import keep_only
from daglite.backends.sendback import dump_result
from daglite.backends.transport import BatchRequest
from daglite.backends.transport import BatchResult
from daglite.backends.transport import JobInfo
from daglite.backends.transport import WorkerSpec
from daglite.backends.transport import load_shared
from daglite.context import Runtime
from daglite.context import WorkflowFrame
from daglite.context import current_frame
from daglite.context import current_runtime
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
        return dump_result(BatchResult(error=f"{type(exc).__name__}: {exc}"), "?")
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
    return dump_result(result, info.task.name, indexes)


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
