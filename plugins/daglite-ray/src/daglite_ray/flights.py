"""A batch in flight on Ray, and what the end of one means when its worker died.

- `Flight`: the Ray reference of a batch sent as a task or an actor call, and what its
  worker told so far (when it started, its pid and node, the item it runs);
- `lost(flight, exc, max_retries)`: the Ray error of a batch as the core's `WorkerLost`
  (its worker process died and Ray gave up re-running it), or a `BackendError` for an
  error that is not a lost worker;
- `rerun(flight, attempt, max_retries)`: the warning on the `daglite` logger for a batch
  that Ray re-ran after its worker died, and that then succeeded;
- `read_to_end(ray, ref)`: read what a batch given up on left, its error included (Ray
  prints an error nobody read as an "Unhandled error").
"""

from __future__ import annotations

import logging
from typing import Any

import attrs

from daglite.errors import BackendError
from daglite.plugin import WorkerLost
from daglite_ray import pool

log = logging.getLogger("daglite")


@attrs.define(eq=False)
class Flight:
    """One batch in flight: its Ray reference and what its worker said so far."""

    ref: Any  # an ObjectRef (plain call) or an ObjectRefGenerator (streaming)
    name: str
    streaming: bool
    started: float | None = None
    pid: int | None = None
    node: str | None = None
    index: int | None = None  # map index the worker is running, when streamed
    actor: pool.Actor | None = None  # the pool actor it was sent to (else it is a task)


def actor_died(exc: BaseException | None) -> bool:
    """Whether `exc` says an actor is dead for good (Ray will not restart it)."""
    import ray.exceptions as rex

    dead = getattr(rex, "ActorDiedError", ())
    return bool(dead) and isinstance(exc, dead)


def lost(flight: Flight, exc: BaseException | None, max_retries: int) -> WorkerLost:
    """The Ray error `exc` of `flight` as a `WorkerLost`.

    Raises:
        BackendError: `exc` is not a lost worker (Ray cancelled the batch from outside, or
            could not run it).
    """
    import ray.exceptions as rex

    workers = (rex.WorkerCrashedError, rex.RayActorError, rex.NodeDiedError, rex.ObjectLostError)
    oom = getattr(rex, "OutOfMemoryError", ())
    if exc is None or isinstance(exc, rex.TaskCancelledError):
        raise BackendError(
            f"Ray cancelled batch {flight.name} (Ray task name), which daglite did not "
            "ask for: was the cluster stopped, or the task cancelled from outside?"
        )
    if isinstance(exc, workers) or (oom and isinstance(exc, oom)):
        tries = max_retries + 1
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return WorkerLost(
            pid=flight.pid,
            index=flight.index,
            # An actor's calls die with it, the one running and those queued behind:
            # only a batch that said it started is sure to be the one that killed it.
            certain=flight.actor is None or flight.started is not None,
            detail=(
                f"Ray reported {type(exc).__name__} for batch {flight.name} and gave up "
                f"after {tries} attempt{'s' if tries > 1 else ''} (max_retries="
                f"{max_retries})" + (f": {first}" if first else "")
            ),
        )
    raise BackendError(
        f"Ray could not run batch {flight.name}: {type(exc).__name__}: {exc}"
    ) from exc


def rerun(flight: Flight, attempt: int, max_retries: int) -> None:
    """Say that Ray re-ran `flight` `attempt` times after its worker died, then it succeeded."""
    log.warning(
        "Ray re-ran batch %s %d time%s after the worker process %s died; "
        "the re-run succeeded (max_retries=%d)",
        flight.name,
        attempt,
        "s" if attempt > 1 else "",
        "running it" if flight.actor is None else "of its actor",  # maybe queued behind
        max_retries,
    )


def read_to_end(ray: Any, ref: Any) -> bool:
    """Read what an abandoned batch left, so Ray does not print its error as unhandled.

    Returns whether it is all read (a streaming batch may have more to come).
    """
    try:
        if isinstance(ref, ray.ObjectRef):
            ray.get(ref)
            return True
        while ray.wait([ref], timeout=0)[0]:  # a streaming batch: its messages, then its end
            ray.get(next(ref))
        return False
    except Exception:  # its error (or StopIteration): read
        return True
