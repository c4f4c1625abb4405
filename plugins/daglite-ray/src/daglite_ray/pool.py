"""Warm Ray actors for batches: kept per process and Ray connection, lent to a session.

A call to a warm actor goes straight to its worker process; a Ray task first asks the
raylet for a worker, and gives it back when it ends. On two cores a hand-written map of two
5,000-item batches takes 0.5-0.7x the time on warm actors that it takes as tasks
(`benchmarks/bench_ray.py`), so batches run on actors once the actors are up, but those
of a task with a `timeout` (a timed-out item may need its worker killed: a Ray task's
is replaced from Ray's idle workers, an actor's is started anew).

- The actors are `daglite_ray.remote.DagliteWorker`s with Ray's default actor resources:
  one CPU to be placed, none held while they live, so they never keep a CPU from Ray
  tasks, daglite's own included, and may sit idle between sessions. As Ray would not
  weigh them by CPUs, each is asked for the node with the most CPUs left over (`places`).
  A session's actors run one batch each; only while they come up mid-map do batches on
  tasks and on actors run side by side, briefly more than one per worker.
- Starting an actor starts a worker process (about 0.9 s on two cores). A session's
  transport starts its actors at its second map (a session that maps once does not pay for
  them) and keeps sending batches as tasks until they are up, so no map waits for them.
- When the session ends, the actors that did not die or get killed go back to the process's
  idle list, for the next session on the same Ray connection with the same `max_retries`.
  One idle for `idle_timeout` seconds (option, default `IDLE_TIMEOUT`) is killed by a
  timer thread, so a long-lived process that stopped mapping does not keep worker
  processes on the cluster; all end with the connection.
- A worker process that dies mid-batch is restarted by Ray, which re-runs the batch
  (`max_retries` times), as it does for a task.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import attrs

#: Task names whose `options(name=...)` an actor keeps (Ray's `options()` costs about as
#: much as a call), newest last.
_KEEP_NAMES = 16
#: The actor class per `max_retries`, made once per process.
_classes: dict[int, Any] = {}
#: Idle actors of the process, by `(connection, max_retries)`.
_idle: dict[tuple[str, int], list[Actor]] = {}
_lock = threading.Lock()
#: Seconds an actor stays on the idle list before it is killed (option `idle_timeout`).
IDLE_TIMEOUT = 300.0
_reaper: threading.Timer | None = None  # kills the actors idle too long, when next due
_reap_at = math.inf
#: `Actor.ready` of an actor that died before it was up.
BROKEN = "broken"


@attrs.define(eq=False)
class Actor:
    """A pool actor, the object ref that tells when it is up, and the batches it holds."""

    handle: Any
    ready: Any  # the object ref of its `ready()` call until it is known up, then None
    node: str | None = None  # the node it was placed on (asked for, then as it said)
    load: int = 0
    idle_until: float = 0.0  # on the idle list: when it is killed (`time.monotonic()`)
    names: dict[tuple[str, bool], Any] = attrs.Factory(dict)

    def call(self, name: str, streaming: bool) -> Any:
        """Its `run` (or `run_streaming`) method, named `name` for Ray's tools."""

        def named() -> Any:
            if streaming:
                return self.handle.run_streaming.options(name=name, num_returns="streaming")
            return self.handle.run.options(name=name)

        return kept(self.names, (name, streaming), _KEEP_NAMES, named)


def kept(cache: dict[Any, Any], key: Any, keep: int, make: Callable[[], Any]) -> Any:
    """`cache[key]`, made by `make()` the first time; `cache` keeps the newest `keep`.

    For Ray's `options(name=...)`, which costs about as much as the call it names.
    """
    value = cache.get(key)
    if value is None:
        if len(cache) >= keep:
            cache.pop(next(iter(cache)))
        value = cache[key] = make()
    return value


def connection(ray: Any) -> str:
    """The process's connection to Ray, which the actors live as long as.

    Its cluster's address, the node and the job: a job id alone comes back when the
    process connects to a new local Ray.
    """
    context = ray.get_runtime_context()
    parts = []
    for part in ("gcs_address", "get_node_id", "get_job_id"):
        try:  # Ray Client may not tell them all
            value = getattr(context, part)
            parts.append(str(value() if callable(value) else value))
        except Exception:
            parts.append("?")
    return "/".join(parts)


def drop(connection: str) -> None:
    """Forget the idle actors of `connection` (its Ray is shutting down: they end with it)."""
    with _lock:
        for key in [key for key in _idle if key[0] == connection]:
            del _idle[key]


def places(nodes: list[tuple[str, float]], taken: Sequence[str | None], count: int) -> list[str]:
    """The nodes for `count` new actors: each on the node with the most CPUs left over.

    Args:
        nodes: `(node id, CPUs)` of the cluster's nodes (those without CPUs get none).
        taken: The nodes of the actors there already.
        count: How many to place.
    """
    left = {node: cpus for node, cpus in nodes if cpus > 0}
    for node in taken:
        if node in left:
            left[node] -= 1
    chosen = []
    for _ in range(count if left else 0):
        node = max(left, key=lambda n: left[n])
        left[node] -= 1
        chosen.append(node)
    return chosen


def _nodes(ray: Any) -> list[tuple[str, float]]:
    """`(node id, CPUs)` of the cluster's live nodes (none if Ray does not say)."""
    try:
        return [
            (node["NodeID"], float(node.get("Resources", {}).get("CPU", 0)))
            for node in ray.nodes()
            if node.get("Alive")
        ]
    except Exception:  # then Ray spreads them
        return []


def start(count: int, max_retries: int, taken: Sequence[str | None] = ()) -> list[Actor]:
    """Start `count` actors (without waiting for them to be up).

    Actors hold no CPU, so Ray would not spread them by CPUs: each is asked for the node
    with the most CPUs left over once the actors there (`taken`, and those placed before
    it) are counted, softly (Ray places it elsewhere if that node cannot take it).
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor_class = _classes.get(max_retries)
    if actor_class is None:
        from daglite_ray import remote

        actor_class = _classes[max_retries] = ray.remote(
            max_restarts=-1,  # a worker process that died is replaced...
            max_task_retries=max_retries,  # ...and the batch it ran is re-run this many times
            scheduling_strategy="SPREAD",
        )(remote.DagliteWorker)
    chosen: list[str | None] = list(places(_nodes(ray), taken, count))
    actors = []
    for node in chosen + [None] * (count - len(chosen)):
        placed = actor_class
        if node is not None:
            placed = actor_class.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=True)
            )
        handle: Any = placed.remote()
        actors.append(Actor(handle, handle.ready.remote(), node))
    return actors


def lend(connection: str, max_retries: int, count: int) -> list[Actor]:
    """Up to `count` idle actors of `connection`, taken from the idle list."""
    with _lock:
        for key in [key for key in _idle if key[0] != connection]:  # of a Ray since left
            del _idle[key]
        idle = _idle.get((connection, max_retries), [])
        lent, idle[:] = idle[:count], idle[count:]
    return lent


def give_back(
    connection: str, max_retries: int, actors: list[Actor], idle_timeout: float = IDLE_TIMEOUT
) -> None:
    """Put `actors` (with nothing in flight) back on the idle list of `connection`.

    Those still there `idle_timeout` seconds later are killed.
    """
    if actors:
        until = time.monotonic() + idle_timeout
        for actor in actors:
            actor.idle_until = until
        with _lock:
            _idle.setdefault((connection, max_retries), []).extend(actors)
            _reap_by(until)


def _reap_by(at: float) -> None:
    """Have the reaper run by `at` (`time.monotonic()`); `_lock` held."""
    global _reaper, _reap_at
    if at >= _reap_at:
        return
    if _reaper is not None:
        _reaper.cancel()
    _reap_at = at
    _reaper = threading.Timer(max(0.0, at - time.monotonic()), _reap)
    _reaper.name = "daglite-ray-idle-actors"
    _reaper.daemon = True
    _reaper.start()


def _reap() -> None:
    """Kill the idle actors whose time is up; run again when the next one's is."""
    global _reaper, _reap_at
    now = time.monotonic()
    expired: list[Actor] = []
    with _lock:
        _reaper, _reap_at = None, math.inf
        for key, actors in list(_idle.items()):
            expired += [actor for actor in actors if actor.idle_until <= now]
            actors[:] = [actor for actor in actors if actor.idle_until > now]
            if not actors:
                del _idle[key]
        due = [actor.idle_until for actors in _idle.values() for actor in actors]
        if due:
            _reap_by(min(due))
    for actor in expired:
        try:
            kill(actor)
        except Exception:  # Ray is gone (and the actor with it)
            pass


def kill(actor: Actor) -> None:
    """Kill `actor` for good (Ray does not restart it)."""
    import ray

    ray.kill(actor.handle, no_restart=True)


def pick(actors: list[Actor], depth: int) -> Actor | None:
    """The least busy of `actors` that is up and holds fewer than `depth` batches."""
    # by the ref itself: Ray Client's `ray.wait` returns equal refs, not the same objects
    starting = {a.ready: a for a in actors if a.ready is not None and a.ready is not BROKEN}
    if starting:  # which are up by now (`ready` goes None), or never will be
        import ray

        refs = [actor.ready for actor in starting.values()]
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in done:
            actor = starting[ref]
            try:
                actor.node = ray.get(ref)
            except Exception:  # it died before it was up: never used
                actor.ready = BROKEN
            else:
                actor.ready = None
    up = [actor for actor in actors if actor.ready is None and actor.load < depth]
    return min(up, key=_load) if up else None


def _load(actor: Actor) -> int:
    return actor.load
