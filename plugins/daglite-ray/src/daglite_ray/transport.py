"""The Ray `Transport`: daglite's map loop over Ray tasks and warm actors, one per batch.

The core's map loop (`daglite.plugin.TransportBackend`) packs, sizes and relays; this
module only says how a batch becomes a Ray task and how Ray reports back:

- the session's worker spec, the map's task and its large arguments repeated across items
  (`BatchRequest.shared`) are pickled once; up to `INLINE_BYTES` they ride with each task
  (Ray inlines small arguments in the task itself, and a worker loads each only once),
  larger ones go through the object store once (`ray.put`) and each task carries only
  their reference. A task's arguments are one pickled header (keys, small payloads,
  items) and, only when there are large payloads, the list of their refs: Ray serializes
  one `bytes` argument in about half the time of five;
- a batch goes to a warm actor (`daglite_ray.pool`) once they are up, else it is a Ray
  task; one of a task with a `timeout` is always a task. A batch that needs no word from
  its worker before it ends is a plain call (`daglite_ray.remote.run`); one of a task with
  a `timeout` (timed from its real start) or of slow items (events relayed as they
  happen) is a streaming generator (`daglite_ray.remote.run_streaming`). Remote functions
  (`daglite_ray.remote.remote_function`) are made once per process and named after the
  map's task once per session (Ray's `options()` costs about a submit);
- finished plain tasks are fetched together, with one `ray.get`; the last one in flight
  is waited for by getting it (one Ray call, not two);
- a worker that dies is Ray's to retry (`max_retries` times); a batch re-run that then
  succeeds is reported on the `daglite` logger, and one Ray gave up on is a `WorkerLost`
  (with the map index the worker was running, when its batch streamed it; see
  `daglite_ray.flights`);
- `kill` and `abort` cancel a task with `ray.cancel(force=True)`, which kills the worker
  process (Ray starts a fresh one in its place), and kill an actor for good (`ray.kill`);
  the batches queued behind it on that actor run again;
- over Ray Client (`ray://`), which has no streaming generators, every batch is a plain
  call (events come back with its result) and a timed batch is timed from when it is sent
  (the map loop keeps one timed batch a worker in flight).
"""

from __future__ import annotations

import itertools
import logging
import pickle
import time
from collections.abc import Hashable
from typing import Any

from daglite.plugin import BatchRequest
from daglite.plugin import EarlyEvents
from daglite.plugin import WorkerLost
from daglite_ray import pool
from daglite_ray.flights import Flight
from daglite_ray.flights import actor_died
from daglite_ray.flights import lost
from daglite_ray.flights import read_to_end
from daglite_ray.flights import rerun
from daglite_ray.remote import remote_function

log = logging.getLogger("daglite")

#: Payloads (session specs, map tasks, shared arguments) kept at once, newest last.
_KEEP_REFS = 8
#: A payload up to this size travels with every task; a larger one goes through the object
#: store once. Ray itself inlines arguments up to 100 KiB in the task it sends.
INLINE_BYTES = 64 * 1024
#: Remote functions named after a task, kept per transport (newest last).
_KEEP_NAMED = 64
#: Seconds into a streaming batch from which it tells who runs it and each item before
#: it runs (quick items are not worth a message each). Sent with every batch.
TELL_ITEMS_AFTER = 0.05


def _over_ray_client() -> bool:
    """Whether this process reaches Ray through Ray Client (a `ray://` address)."""
    try:
        from ray.util.client import ray as client

        return bool(client.is_connected())
    except Exception:  # a Ray without its client module
        return False


class RayTransport:
    """The `Transport` of a session over a connected Ray.

    Args:
        workers: How many batches run at once (CPUs of the cluster, capped by `max_workers`).
        max_retries: Ray's re-runs of a batch whose worker died.
        actors: Whether batches run on warm actors (`daglite_ray.pool`) once they are up.
        idle_timeout: Seconds its actors wait on the idle list after the session before
            they are killed.
    """

    depth = 2  # batches in flight per worker: one running, one queued (raylet or actor)

    def __init__(
        self,
        workers: int,
        max_retries: int,
        actors: bool = True,
        idle_timeout: float = pool.IDLE_TIMEOUT,
    ) -> None:
        import ray

        self.workers = workers
        self.max_retries = max_retries
        self._run = remote_function("run", max_retries)
        self._stream = remote_function("stream", max_retries)
        self._kill_pid = remote_function("kill", 0)
        self._named: dict[tuple[str, bool], Any] = {}  # (task name, streaming) -> function
        self._refs: dict[str, Any] = {}
        self._flights: dict[int, Flight] = {}
        self._recent: dict[int, Flight] = {}
        self._count = itertools.count()
        self._connection = pool.connection(ray)
        self._use_actors = actors
        self._idle_timeout = idle_timeout
        #: Over Ray Client: no streaming generators (see the module docstring).
        self._client = _over_ray_client()
        self._actors = pool.lend(self._connection, max_retries, workers) if actors else []
        self._first_map: str | None = None  # until a second map starts the missing actors
        self._requeued: list[int] = []  # batches queued behind an actor that was killed
        #: Refs of batches given up on (cancelled, or on a killed actor) and of `kill_pid`
        #: tasks: their errors are read once they end, else Ray prints each on stderr as an
        #: "Unhandled error".
        self._abandoned: list[Any] = []
        #: Map ids of tasks with a `timeout`: their batches say when they start.
        self.timed: set[str] = set()
        #: The task name of each map running, by map id (Ray's tools show it).
        self.task_names: dict[str, str] = {}

    # -- the transport contract -----------------------------------------------------------

    def submit(self, request: BatchRequest) -> Hashable:
        """Start `request` as one Ray task; returns its ticket."""
        refs: list[Any] = []  # the object refs of large payloads, passed beside the header

        def place(key: str, value: Any) -> bytes | int | None:
            if value is None:
                return None
            payload = self._payload(key, value)
            if isinstance(payload, bytes):
                return payload
            refs.append(payload)
            return len(refs) - 1

        header = pickle.dumps(
            (
                request.spec_key,
                request.job_key,
                place(request.spec_key, request.spec),
                place(request.job_key, request.job),
                [(key, place(key, data)) for key, data in request.shared if data],
                request.items,
                request.stream,
                TELL_ITEMS_AFTER,
            ),
            protocol=5,
        )
        ticket = next(self._count)
        name = f"daglite-{request.job_key}-{ticket}"
        timed = request.job_key in self.timed  # it says at once that it started: timed then
        streaming = (timed or request.stream) and not self._client
        if timed and streaming:
            args: tuple[Any, ...] = (header, refs or None, True)
        else:
            args = (header, refs) if refs else (header,)
        actor = self._actor(request.job_key) if self._use_actors and not timed else None
        if actor is None:
            ref = self._function(request.job_key, streaming).remote(*args)
        else:
            ref = actor.call(self._ray_name(request.job_key), streaming).remote(*args)
            actor.load += 1
        flight = self._flights[ticket] = Flight(ref, name, streaming=streaming, actor=actor)
        if timed and not streaming:  # Ray Client: timed from now (one batch a worker)
            flight.started = time.monotonic()
        return ticket

    def wait(
        self, timeout: float | None
    ) -> list[tuple[Hashable, bytes | WorkerLost | EarlyEvents]]:
        """Finished batches (`run_batch` bytes, or a `WorkerLost`) and streamed events."""
        import ray

        self._recent = {}
        if self._abandoned:
            self._read_abandoned()
        if self._requeued:  # they never started: the map loop sends them again
            tickets, self._requeued = self._requeued, []
            return [(ticket, WorkerLost(started=False)) for ticket in tickets]
        if not self._flights:
            return []
        answers: list[tuple[Hashable, bytes | WorkerLost | EarlyEvents]] = []
        if len(self._flights) == 1:  # the last batch in flight: waited for by getting it
            ticket, flight = next(iter(self._flights.items()))
            if not flight.streaming:
                answers.extend(self._results([ticket], timeout))
                return answers
        # by the ref itself: Ray Client's `ray.wait` returns equal refs, not the same objects
        by_ref = {flight.ref: ticket for ticket, flight in self._flights.items()}
        waitables = [flight.ref for flight in self._flights.values()]
        ready, _ = ray.wait(waitables, num_returns=1, timeout=timeout)
        done: list[int] = []
        for ref in ready:
            ticket = by_ref[ref]
            flight = self._flights[ticket]
            if flight.streaming:
                answers.extend(self._drain(ticket, flight))
            else:
                done.append(ticket)
        if done:
            answers.extend(self._results(done))
        return answers

    def started(self, ticket: Hashable) -> float | None:
        """When batch `ticket` started on a worker (`time.monotonic()`), if it said so."""
        flight = self._flights.get(ticket)  # type: ignore[call-overload]
        return flight.started if flight is not None else None

    def kill(self, ticket: Hashable) -> None:
        """Stop the worker running batch `ticket` (or the one that just ran it)."""
        import ray

        flight = self._flights.pop(ticket, None)  # type: ignore[call-overload]
        if flight is not None and flight.actor is None:
            ray.cancel(flight.ref, force=True)
            self._abandoned.append(flight.ref)
            return
        if flight is None:
            flight = self._recent.pop(ticket, None)  # type: ignore[call-overload]
        if flight is not None and flight.actor is not None:
            self._kill_actor(flight.actor)
        elif flight is not None and flight.pid is not None and flight.node is not None:
            # It still runs an abandoned timed-out attempt: a task on its node kills it.
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            strategy = NodeAffinitySchedulingStrategy(flight.node, soft=False)
            # (Ray may run it in that very worker, which then dies under it: its error is
            # read like those of the batches given up on)
            self._abandoned.append(
                self._kill_pid.options(scheduling_strategy=strategy).remote(flight.pid)
            )

    def abort(self) -> None:
        """Cancel every batch in flight, killing the workers running them."""
        import ray

        flights = list(self._flights.values())
        self._flights.clear()
        self._requeued.clear()
        for flight in flights:
            self._abandoned.append(flight.ref)
            try:
                if flight.actor is None:
                    ray.cancel(flight.ref, force=True)
                elif flight.actor in self._actors:
                    self._kill_actor(flight.actor)
            except Exception as exc:  # already finished, or Ray is going away
                log.debug("could not cancel Ray task %s: %s", flight.name, exc)

    def close(self) -> None:
        """Cancel what is in flight, drop the payloads, give the actors left back to the pool."""
        import ray

        self.abort()
        if self._abandoned:
            self._read_abandoned(timeout=1.0)
        self._refs.clear()
        self._recent.clear()
        actors, self._actors = self._actors, []
        if ray.is_initialized():
            kept = [actor for actor in actors if actor.ready is not pool.BROKEN]
            pool.give_back(self._connection, self.max_retries, kept, self._idle_timeout)

    # -- the actors -----------------------------------------------------------------------

    def _actor(self, map_id: str) -> pool.Actor | None:
        """The warm actor for a batch of map `map_id`: up, and with room for it.

        The session's second map starts the actors it lacks (a session that maps once does
        not pay for them); until they are up, batches go as tasks.
        """
        actors = self._actors
        try:
            if len(actors) < self.workers:
                if self._first_map is None:
                    self._first_map = map_id
                elif map_id != self._first_map:
                    taken = [actor.node for actor in actors]
                    actors.extend(pool.start(self.workers - len(actors), self.max_retries, taken))
            return pool.pick(actors, self.depth)
        except Exception as exc:  # a Ray that cannot make or reach actors: tasks it is
            self._use_actors = False
            log.warning(
                "daglite could not use warm Ray actors (%s: %s); this session's batches "
                "run as Ray tasks",
                type(exc).__name__,
                exc,
            )
            return None

    def _kill_actor(self, actor: pool.Actor) -> None:
        """Kill `actor` for good; the batches queued behind on it are sent again."""
        if actor in self._actors:
            self._actors.remove(actor)
        for ticket, flight in list(self._flights.items()):
            if flight.actor is actor:
                del self._flights[ticket]
                self._requeued.append(ticket)
                self._abandoned.append(flight.ref)
        try:
            pool.kill(actor)
        except Exception as exc:  # already gone, or Ray is going away
            log.debug("could not kill a daglite Ray actor: %s", exc)

    # -- helpers --------------------------------------------------------------------------

    def _read_abandoned(self, timeout: float = 0.0) -> None:
        """Read the errors of the abandoned batches that ended (within `timeout` seconds)."""
        import ray

        refs, self._abandoned = self._abandoned, []
        try:
            ready, waiting = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        except Exception:  # Ray is going away, and they with it
            return
        self._abandoned = [*waiting, *(ref for ref in ready if not read_to_end(ray, ref))]

    def _ray_name(self, map_id: str) -> str:
        """`daglite-<task name>`: the name Ray's tools show for a batch of map `map_id`."""
        return f"daglite-{self.task_names.get(map_id, map_id)}"

    def _function(self, map_id: str, streaming: bool) -> Any:
        """The remote function, named for Ray's tools (`_ray_name`)."""
        name = self._ray_name(map_id)
        plain = self._stream if streaming else self._run
        return pool.kept(
            self._named, (name, streaming), _KEEP_NAMED, lambda: plain.options(name=name)
        )

    def _payload(self, key: str, value: Any) -> Any:
        """What a task carries of a spec or job: its pickled bytes, or their object ref."""

        def placed() -> Any:
            import ray

            data = value if isinstance(value, bytes) else pickle.dumps(value, protocol=5)
            return data if len(data) <= INLINE_BYTES else ray.put(data)

        return pool.kept(self._refs, key, _KEEP_REFS, placed)

    def _results(
        self, tickets: list[int], timeout: float | None = None
    ) -> list[tuple[Hashable, bytes | WorkerLost]]:
        """The results of plain tasks, with one `ray.get` for all (one each on an error).

        Nothing (an empty list) if they are not all done within `timeout` seconds
        (`None`: no limit).
        """
        import ray
        from ray.exceptions import GetTimeoutError

        flights = [self._flights[ticket] for ticket in tickets]
        try:
            values = ray.get([flight.ref for flight in flights], timeout=timeout)
        except GetTimeoutError:
            return []
        except Exception:  # one of them failed: each on its own
            return [(t, self._result(t, self._flights.pop(t))) for t in tickets]
        answers: list[tuple[Hashable, bytes | WorkerLost]] = []
        for ticket, flight, (attempt, flight.pid, flight.node, data) in zip(
            tickets, flights, values
        ):
            del self._flights[ticket]
            self._finished(ticket, flight, attempt)
            answers.append((ticket, data))
        return answers

    def _result(self, ticket: int, flight: Flight) -> bytes | WorkerLost:
        import ray

        try:
            attempt, flight.pid, flight.node, data = ray.get(flight.ref)
        except Exception as exc:
            return self._failure(flight, exc)
        self._finished(ticket, flight, attempt)
        return data

    def _drain(
        self, ticket: int, flight: Flight
    ) -> list[tuple[Hashable, bytes | WorkerLost | EarlyEvents]]:
        """Every message a streaming batch has ready, in order."""
        import ray

        answers: list[tuple[Hashable, bytes | WorkerLost | EarlyEvents]] = []
        generator = flight.ref
        while True:
            try:
                message = ray.get(next(generator))
            except StopIteration:  # ended without its result: Ray cancelled it
                del self._flights[ticket]
                answers.append((ticket, self._failure(flight, None)))
                return answers
            except Exception as exc:
                del self._flights[ticket]
                answers.append((ticket, self._failure(flight, exc)))
                return answers
            kind = message[0]
            if kind == "started":
                flight.started = time.monotonic()
                flight.pid, flight.node = message[2], message[3]
            elif kind == "item":
                flight.index = message[1]
            elif kind == "events":
                answers.append((ticket, EarlyEvents(message[1])))
            else:  # "done"
                del self._flights[ticket]
                _, attempt, flight.pid, flight.node, data = message
                self._finished(ticket, flight, attempt)
                answers.append((ticket, data))
                return answers
            if not ray.wait([generator], timeout=0)[0]:
                return answers

    def _finished(self, ticket: int, flight: Flight, attempt: int) -> None:
        if flight.actor is not None:
            flight.actor.load -= 1
        self._recent[ticket] = flight  # until the next wait, for `kill` of a tainted worker
        if attempt:
            rerun(flight, attempt, self.max_retries)

    def _failure(self, flight: Flight, exc: BaseException | None) -> WorkerLost:
        """A Ray error of a batch as a `WorkerLost`, or a `BackendError` if it is not one."""
        if flight.actor is not None:
            flight.actor.load -= 1
            if actor_died(exc) and flight.actor in self._actors:
                self._actors.remove(flight.actor)  # Ray will not bring it back: not used again
        return lost(flight, exc, self.max_retries)
