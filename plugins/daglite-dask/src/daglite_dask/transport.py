"""The dask `Transport`: the core's map loop (`daglite.plugin.TransportBackend`) on dask."""

from __future__ import annotations

import itertools
import logging
import queue
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING
from typing import Any

from daglite.errors import BackendError
from daglite.plugin import BatchRequest
from daglite.plugin import EarlyEvents
from daglite.plugin import WorkerLost
from daglite.plugin import run_batch

if TYPE_CHECKING:
    from distributed import Client
    from distributed import Future

log = logging.getLogger("daglite")

#: Seconds between looks at results waiting for the events their worker streamed.
STREAM_GRACE = 0.05
#: Seconds after which such a result is handed on even if some streamed events are missing.
STREAM_TIMEOUT = 10.0


class DaskTransport:
    """The `Transport` of one map over a dask client (see `daglite.plugin.Transport`).

    Each batch is one dask task calling `daglite.plugin.run_batch` on a worker;
    `depth` batches per worker thread are kept in flight to hide the scheduler's round
    trip. A batch whose worker died is re-run by dask elsewhere (up to the scheduler's
    `allowed-failures`). When dask gives up, every batch that was on the dying worker
    fails with it, also those only queued behind the culprit: a loss is reported as
    certain only when the batch was the map's only one in flight, otherwise the map loop
    runs those items again alone to find the one that kills workers.

    Workers talk back on a topic of this map (dask's `log_event`): items of a task with a
    `timeout` are timed from when their batch starts on a worker, not from when it was
    submitted (time queued in the scheduler does not count), and batches of slow items
    stream their events as they happen, so processors see items start while they run.

    Args:
        client: The client to submit to.
        workers: How many worker threads the cluster has.
        name: The task's name (in the dask keys, so the dashboard tells maps apart).
        map_id: The map's id (in the dask keys and the topic of start announcements).
        rerun: Shared counts of workers lost per key (filled from scheduler events).
        timed: Whether the task has a `timeout` (then batch starts are announced).
        listening: Whether the session has processors (then slow batches stream events).
    """

    depth = 2

    def __init__(
        self,
        client: Client,
        workers: int,
        name: str,
        map_id: str,
        rerun: dict[str, int],
        timed: bool = False,
        listening: bool = False,
    ) -> None:
        self.client: Any = client  # Any: distributed's sync/async methods confuse checkers
        self.workers = workers
        self.name = name
        self.map_id = map_id
        self._rerun = rerun
        self._futures: dict[str, Future] = {}  # dask key (the ticket) -> future in flight
        self._recent: dict[str, Future] = {}
        # What the client's event loop hands over: ("done", key) when a future ends,
        # ("events", key, data) for events a worker streamed during a batch.
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._count = itertools.count()
        self._starts: dict[str, float] = {}
        self._streamed: dict[str, int] = {}  # key -> streamed messages received
        # Results waiting for streamed events: key -> (future, result, messages sent, since).
        self._held: dict[str, tuple[Future, bytes, int, float]] = {}
        self._topic: str | None = None
        if timed or listening:
            self._topic = f"daglite-{map_id}"
            self.client.subscribe_topic(self._topic, self._on_message)

    def _on_message(self, event: Any) -> None:
        # Runs on the client's event loop: record, hand over, return.
        message = event[1] if isinstance(event, (tuple, list)) and len(event) == 2 else event
        if not isinstance(message, (tuple, list)) or not message:
            return
        if message[0] == "started":
            self._starts[str(message[1])] = time.monotonic()
        elif message[0] == "events":
            self._inbox.put(("events", str(message[1]), message[2]))

    def started(self, ticket: Hashable) -> float | None:
        """When batch `ticket` started on a worker (`time.monotonic()`), if it has."""
        return self._starts.get(str(ticket))

    def close(self) -> None:
        """Stop listening to this map's topic."""
        if self._topic is not None and self.client.status == "running":
            self.client.unsubscribe_topic(self._topic)
        self._topic = None

    def submit(self, request: BatchRequest) -> Hashable:
        """Submit `request` as one dask task; its key is the ticket."""
        key = f"daglite-{self.name}-{self.map_id}-{next(self._count)}"
        if self._topic is None:
            future = self.client.submit(run_batch, request, key=key, pure=False)
        else:
            future = self.client.submit(
                run_talking_batch, request, self._topic, key=key, pure=False
            )
        self._futures[key] = future
        future.add_done_callback(lambda done: self._inbox.put(("done", done.key)))
        return key

    def wait(
        self, timeout: float | None
    ) -> list[tuple[Hashable, bytes | WorkerLost | EarlyEvents]]:
        """Finished batches (the bytes `run_batch` returned, or a `WorkerLost`) and events.

        A batch's result is handed on only after every event its worker streamed during
        it (each message counted by the worker), so they are relayed first, in order.

        Raises:
            BackendError: Dask cancelled a batch or could not run it for another reason.
        """
        if self._held:  # results waiting for their streamed events: look again soon
            timeout = STREAM_GRACE if timeout is None else min(timeout, STREAM_GRACE)
        try:
            messages = [self._inbox.get(timeout=timeout)]
        except queue.Empty:
            messages = []
        while True:
            try:
                messages.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        answers: list[tuple[Hashable, bytes | WorkerLost | EarlyEvents]] = []
        keys = []
        for message in messages:
            if message[0] == "events":
                key = message[1]
                self._streamed[key] = self._streamed.get(key, 0) + 1
                answers.append((key, EarlyEvents(message[2])))
            else:
                keys.append(message[1])
        finished: dict[str, Future] = {}
        failed: list[tuple[str, Future]] = []
        for key in keys:
            future = self._futures.pop(key, None)
            if future is None:  # killed or aborted meanwhile
                continue
            if future.status == "finished":
                finished[key] = future
            else:
                failed.append((key, future))
        certain = len(failed) == 1 and not self._futures  # nothing else was in flight
        for key, future in failed:
            answers.append((key, self._failure(key, future, certain)))
        if finished:
            for key, result in zip(finished, self.client.gather(list(finished.values()))):
                data, sent = result if isinstance(result, tuple) else (result, 0)
                self._held[key] = (finished[key], data, sent, time.monotonic())
                lost = self._rerun.pop(key, 0)
                if lost:
                    log.warning(
                        "dask lost %d worker%s while running a batch of task '%s' (dask key "
                        "%s); dask re-ran the batch on another worker and it succeeded",
                        lost,
                        "s" if lost > 1 else "",
                        self.name,
                        key,
                    )
        now = time.monotonic()
        recent = {}
        for key, (future, data, sent, since) in list(self._held.items()):
            if self._streamed.get(key, 0) >= sent or now - since > STREAM_TIMEOUT:
                del self._held[key]
                self._streamed.pop(key, None)
                recent[key] = future
                answers.append((key, data))
        self._recent = recent  # kept until the next wait, for `kill` of a tainted worker
        return answers

    def _failure(self, key: str, future: Future, certain: bool) -> WorkerLost:
        from distributed import KilledWorker

        self._rerun.pop(key, None)
        error: Any = future.exception() if future.status == "error" else None
        if isinstance(error, KilledWorker):
            worker = getattr(error, "last_worker", None)
            allowed = getattr(error, "allowed_failures", None)
            tries = f" after {allowed + 1} lost worker(s)" if allowed is not None else ""
            where = f" at {worker.address}" if worker is not None else ""
            return WorkerLost(
                pid=getattr(worker, "pid", None),
                certain=certain,
                detail=(
                    f"the dask worker{where} died and dask gave up on the batch{tries} "
                    "(distributed.scheduler.allowed-failures); see that worker's log"
                ),
            )
        if error is None:
            raise BackendError(
                f"dask cancelled a batch of task '{self.name}' (key {key}): the scheduler "
                "restarted, or this client lost its connection to it"
            )
        raise BackendError(
            f"dask could not run a batch of task '{self.name}' (key {key}): "
            f"{type(error).__name__}: {error}"
        ) from error

    def kill(self, ticket: Hashable) -> None:
        """Restart the worker process running (or that just ran) batch `ticket`."""
        key = str(ticket)
        future = self._futures.pop(key, None)
        address = None
        try:
            if future is not None:
                address = self.client.run_on_scheduler(_processing_on, key)
                future.cancel()
            elif key in self._recent:
                done = self._recent.pop(key)
                holders = self.client.who_has(done).get(key) or ()
                address = next(iter(holders), None)
                done.release()  # else dask would recompute the batch the restart loses
            if address is not None:
                self.client.restart_workers([address], raise_for_error=True)
        except Exception as exc:
            log.warning(
                "could not restart dask worker %s, which still runs an abandoned timed-out "
                "attempt of task '%s': %s: %s",
                address,
                self.name,
                type(exc).__name__,
                exc,
            )

    def abort(self) -> None:
        """Release every batch in flight (dask cannot stop a running one; it finishes)."""
        futures = list(self._futures.values())
        self._futures.clear()
        self._held.clear()
        if futures:
            self.client.cancel(futures)


def run_talking_batch(request: BatchRequest, topic: str) -> tuple[bytes, int]:
    """On a worker: run a batch (`run_batch`) that talks to the coordinator on `topic`.

    It announces when the batch starts (timeouts count from then) and, when the request
    asks for it, streams events and dataset writes as they happen. Returns the result and
    how many streamed messages the coordinator must have received before using it.
    """
    import cloudpickle
    from distributed import get_worker

    worker = get_worker()
    key = str(worker.get_current_task())
    worker.log_event(topic, ("started", key))
    sent = 0

    def stream(pairs: list[Any]) -> None:
        nonlocal sent
        sent += 1
        worker.log_event(topic, ("events", key, cloudpickle.dumps(pairs)))

    data = run_batch(request, stream=stream if request.stream else None)
    return data, sent


def _processing_on(key: str, dask_scheduler: Any = None) -> str | None:
    """On the scheduler: the address of the worker processing `key`, if any."""
    state = dask_scheduler.tasks.get(key) if dask_scheduler is not None else None
    worker = state.processing_on if state is not None else None
    return worker.address if worker is not None else None
