"""What runs inside a Ray worker process: one daglite batch per Ray task or actor call.

A batch arrives as one pickled header (Ray serializes one `bytes` argument faster than
several): the keys of its session and map, their pickled payloads and those of the map's
shared arguments, the cloudpickled items, and the seconds after which a streaming batch
tells its items (`daglite_ray.transport.TELL_ITEMS_AFTER`: the coordinator decides). A
payload is its bytes when small; a large one went through the object store once, and the
header holds its place in `refs`, a list of object refs passed beside it (nested in a
list, so Ray does not fetch them for every call). A worker loads each payload once and
keeps it.
The batch itself runs through `daglite.plugin.run_batch`, like on every process-style
backend.

Two shapes of call, each a Ray task or a method of a warm pool actor (`DagliteWorker`, see
`daglite_ray.pool`; a timed batch always runs as a task):

- `run(header, refs)`: the quick path, returning `(attempt, pid, node, result bytes)`;
- `run_streaming(header, refs, timed)`: a streaming generator, for batches that
  must talk back while they run (a task with a `timeout`, timed from when its batch
  starts, and batches of slow items whose events are relayed as they happen). It yields
  `("started", attempt, pid, node)` (at once when `timed`, else once the batch has run
  the seconds its header says), then `("item", index)` before each item from then
  on (quick items are not worth a message each), `("events", data)` as events happen
  (when streaming), and last `("done", attempt, pid, node, result bytes)`.

`kill_pid(pid)`, a task placed on a worker's node, kills a worker process that still runs
an abandoned timed-out attempt.

`remote_function(kind, max_retries)` is the Ray remote function of `run`, `run_streaming`
or `kill_pid`, made once per process (Ray exports each to its cluster once).

`attempt` counts Ray's own re-runs of the batch (0 the first time): a batch re-run after
its worker died is reported on the coordinator.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from daglite.plugin import BatchRequest
from daglite.plugin import run_batch
from daglite.plugin import shared_loaded

#: Session specs and map payloads kept per worker (newest last).
_KEEP = 16
_shared: dict[str, Any] = {}
_node: str | None = None  # the id of this worker's node, once asked
#: The Ray remote functions, made once per process: `(kind, max_retries) -> RemoteFunction`.
_functions: dict[tuple[str, int], Any] = {}


def _fetch(key: str, payload: Any, load: bool) -> Any:
    """The payload of `key` (its bytes, or an object ref to them), unpickled if `load`."""
    value = _shared.get(key)
    if value is None:
        if not isinstance(payload, bytes):
            import ray

            payload = ray.get(payload)
        value = pickle.loads(payload) if load else payload
        if len(_shared) >= _KEEP:
            _shared.pop(next(iter(_shared)))
        _shared[key] = value
    return value


def _request(header: bytes, refs: list[Any] | None) -> tuple[BatchRequest, float]:
    """The `BatchRequest` of a task's header, and when a streaming batch tells its items.

    See the module docstring for the header.
    """
    fields = pickle.loads(header)
    spec_key, job_key, spec_payload, job_payload, shared, items, stream, tell_after = fields
    if refs:
        spec_payload, job_payload = (
            refs[p] if isinstance(p, int) else p for p in (spec_payload, job_payload)
        )
        shared = [(key, refs[p] if isinstance(p, int) else p) for key, p in shared]
    spec = _fetch(spec_key, spec_payload, True) if spec_payload is not None else None
    job = _fetch(job_key, job_payload, False) if job_payload is not None else None
    # A shared argument is fetched only by a worker that has not loaded it yet.
    arguments = tuple(
        (key, None if shared_loaded(key) else _bytes(payload)) for key, payload in shared
    )
    return BatchRequest(spec_key, spec, job_key, job, items, stream, arguments), tell_after


def _bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    import ray

    return ray.get(payload)


def _whoami() -> tuple[int, int, str]:
    """`(attempt, pid, node id)` of the running Ray task."""
    global _node
    attempt = 0
    try:  # no public API tells a task which attempt it is
        from ray._private.worker import global_worker

        worker: Any = global_worker
        attempt = int(worker.core_worker.get_current_task_attempt_number())
    except Exception:
        pass
    if _node is None:  # a worker process stays on its node
        import ray

        _node = ray.get_runtime_context().get_node_id()
    return attempt, os.getpid(), _node


def run(header: bytes, refs: list[Any] | None = None) -> tuple[int, int, str, bytes]:
    """Run one batch; returns `(attempt, pid, node id, run_batch bytes)`."""
    attempt, pid, node = _whoami()
    data = run_batch(_request(header, refs)[0])
    return attempt, pid, node, data


class DagliteWorker:
    """A pool actor (`daglite_ray.pool`): runs the batches it is sent, one at a time."""

    def ready(self) -> str:
        """Its node's id, once it is up (the pool asks, and does not wait for it)."""
        return _whoami()[2]

    def run(self, header: bytes, refs: list[Any] | None = None) -> tuple[int, int, str, bytes]:
        """Run one batch, as the plain task `run` does."""
        return run(header, refs)

    def run_streaming(
        self, header: bytes, refs: list[Any] | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """Run one batch that streams its events, as the task `run_streaming` does."""
        yield from run_streaming(header, refs)


def run_streaming(
    header: bytes, refs: list[Any] | None = None, timed: bool = False
) -> Iterator[tuple[Any, ...]]:
    """Run one batch, telling the coordinator when it starts and, if asked, what happens.

    A batch of a task with a `timeout` says at once that it started (its items are timed
    from then); another says so only once its items are slow (`TELL_ITEMS_AFTER`), with
    the first item it tells: a quick batch sends its events and its result, nothing else.
    """
    attempt, pid, node = _whoami()
    if timed:
        yield ("started", attempt, pid, node)
    request, tell_after = _request(header, refs)
    stream = request.stream
    messages: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
    running = [-1, False]  # the map index of the item running; whether each is told
    telling = threading.Lock()

    def events(pairs: list[Any]) -> None:
        import cloudpickle

        messages.put(("events", cloudpickle.dumps(pairs)))

    def progress(index: int) -> None:
        # Quick items go untold (a message each would cost more than they do): once the
        # batch has run `tell_after` seconds, the generator below tells the item
        # running then, and from then on every item is told, so the last one told is the
        # one running if this worker dies. Until then a dying worker is not pinned to an
        # item, and the map loop finds the culprit by running the batch again in halves.
        with telling:  # an item is told once: here, or by the generator as it starts telling
            running[0] = index
            if running[1]:
                messages.put(("item", index))

    def batch() -> None:
        try:
            data = run_batch(
                request,
                progress=progress if stream else None,
                stream=events if stream else None,
            )
        except BaseException as exc:  # handed to the generator, which raises it to Ray
            messages.put(("error", exc))
        else:
            messages.put(("done", attempt, pid, node, data))

    threading.Thread(target=batch, name="daglite-ray-batch", daemon=True).start()
    tell_at = time.monotonic() + tell_after if stream else None
    while True:
        now = time.monotonic()
        if tell_at is not None and now >= tell_at:
            # Its items are slow: who runs them, and which one, from now on (told on time,
            # even while its events keep the queue busy).
            tell_at = None
            with telling:
                running[1] = True
                index = running[0]
            if not timed:
                yield ("started", attempt, pid, node)
            if index >= 0:
                yield ("item", index)
        try:
            message = messages.get(timeout=None if tell_at is None else tell_at - now)
        except queue.Empty:
            continue
        if message[0] == "error":
            raise message[1]
        yield message
        if message[0] == "done":
            return


def kill_pid(pid: int) -> None:
    """On a worker's node: kill the worker process `pid` (Ray replaces it)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def remote_function(kind: str, max_retries: int) -> Any:
    """The remote function `kind` ("run", "stream" or "kill") with `max_retries`."""
    function = _functions.get((kind, max_retries))
    if function is None:
        import ray

        if kind == "run":
            function = ray.remote(num_cpus=1, max_retries=max_retries)(run)
        elif kind == "stream":
            function = ray.remote(num_cpus=1, max_retries=max_retries, num_returns="streaming")(
                run_streaming
            )
        else:
            function = ray.remote(num_cpus=0, max_retries=0)(kill_pid)
        _functions[(kind, max_retries)] = function
    return function
