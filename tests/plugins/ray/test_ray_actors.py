"""Batches on warm Ray actors (`daglite_ray.pool`), on a real local Ray (127.0.0.1).

A session's second map starts its actors; batches go as Ray tasks until the actors are up,
then on them. When the session ends they wait, idle, for the next session of the process.
"""

from __future__ import annotations

import logging

import pytest
import ray_tasks as t
from pool_actors import Actors

from daglite import DagliteSettings
from daglite import map_tasks
from daglite import session

pytestmark = pytest.mark.timeout(300)

QUIET = DagliteSettings(backend="ray", processors=())


def _idle(ray, max_retries=3):
    """The process's idle actors (taken off the list: give them back to keep them)."""
    from daglite_ray import pool

    connection = pool.connection(ray)
    return connection, pool.lend(connection, max_retries, 1_000)


def test_a_session_that_maps_once_starts_no_actors(local_ray):
    Actors(local_ray).cold()
    with session(settings=QUIET):
        assert set(map_tasks(t.ray_actor, range(40), chunksize=5)) == {None}  # Ray tasks
    assert _idle(local_ray)[1] == []


def test_the_second_map_starts_the_actors_and_the_next_session_runs_on_them(local_ray):
    Actors(local_ray).cold()
    with session(settings=QUIET) as ctx:
        assert set(map_tasks(t.ray_actor, range(4))) == {None}
        map_tasks(t.square, range(4))  # the second map: the actors start
        actors = ctx.get_backend("ray").transport._actors
        assert len(actors) == 2  # one per worker (2 CPUs)
        local_ray.get([actor.ready for actor in actors if actor.ready is not None])
        ids = {actor.handle._actor_id.hex() for actor in actors}
        assert set(map_tasks(t.ray_actor, range(40), chunksize=5)) == ids  # both, once up
    connection, idle = _idle(local_ray)
    assert {actor.handle._actor_id.hex() for actor in idle} == ids  # back on the idle list
    from daglite_ray import pool

    pool.give_back(connection, 3, idle)
    with session(settings=QUIET):  # the next session's first map runs on them
        assert set(map_tasks(t.ray_actor, range(40), chunksize=5)) == ids


def test_actors_are_kept_apart_by_max_retries(local_ray):
    ids = Actors(local_ray, max_retries=3).warm()
    Actors(local_ray, max_retries=1).cold()
    settings = DagliteSettings(backend="ray", processors=(), options={"ray": {"max_retries": 1}})
    with session(settings=settings):
        assert set(map_tasks(t.ray_actor, range(8))) == {None}  # Ray re-runs differently
    with session(settings=QUIET):
        assert set(map_tasks(t.ray_actor, range(40), chunksize=5)) == ids


def test_the_batches_of_a_task_with_a_timeout_stay_ray_tasks(local_ray):
    ids = Actors(local_ray).warm()
    with session(settings=QUIET):
        assert set(map_tasks(t.timed_actor, range(40), chunksize=5)) == {None}
        assert set(map_tasks(t.ray_actor, range(40), chunksize=5)) == ids  # the others not


def test_actors_off_sends_every_batch_as_a_ray_task(local_ray):
    Actors(local_ray).warm()
    off = DagliteSettings(backend="ray", processors=(), options={"ray": {"actors": False}})
    with session(settings=off) as ctx:
        assert set(map_tasks(t.ray_actor, range(40), chunksize=5)) == {None}
        assert set(map_tasks(t.ray_actor, range(40), chunksize=5)) == {None}
        assert ctx.get_backend("ray").transport._actors == []  # none lent, none started
    assert len(_idle(local_ray)[1]) == 2  # the idle ones were left alone


def test_actors_go_to_the_nodes_with_cpus_left_over():
    from collections import Counter

    from daglite_ray.pool import places

    uneven = [("head", 2.0), ("big", 32.0)]
    assert Counter(places(uneven, [], 34)) == {"head": 2, "big": 32}  # not 17 and 17
    assert Counter(places(uneven, [], 4)) == {"big": 4}
    assert places([("head", 0.0), ("w", 4.0)], [], 4) == ["w"] * 4  # no CPUs, no actor
    assert places([("a", 2.0), ("b", 2.0)], ["a", "a", None], 2) == ["b", "b"]  # counted
    assert places([("head", 0.0)], [], 2) == []  # no node has CPUs: Ray places them


def test_an_actor_is_placed_on_a_node_and_says_which(local_ray):
    from daglite_ray import pool

    (actor,) = pool.start(1, 3)
    node = local_ray.get_runtime_context().get_node_id()
    assert actor.node == node  # asked for the one node with CPUs
    assert local_ray.get(actor.ready, timeout=60) == node
    assert pool.pick([actor], 2) is actor and actor.node == node
    pool.kill(actor)


def test_an_actor_that_died_before_it_was_up_is_never_picked_nor_kept(local_ray):
    from ray.exceptions import RayActorError

    from daglite_ray import pool
    from daglite_ray.transport import RayTransport

    (actor,) = pool.start(1, 3)
    pool.kill(actor)
    with pytest.raises(RayActorError):
        local_ray.get(actor.ready, timeout=60)
    assert pool.pick([actor], 2) is None
    assert actor.ready is pool.BROKEN
    Actors(local_ray).cold()
    transport = RayTransport(1, 3)
    transport._actors.append(actor)
    transport.close()
    assert _idle(local_ray)[1] == []  # not given back for another session to skip


def test_a_ray_that_cannot_make_actors_runs_the_batches_as_tasks(local_ray, monkeypatch, caplog):
    from daglite_ray import pool

    def refused(count, max_retries, taken=()):
        raise RuntimeError("no actors here")

    Actors(local_ray).cold()
    monkeypatch.setattr(pool, "start", refused)
    with caplog.at_level(logging.WARNING, logger="daglite"), session(settings=QUIET):
        assert map_tasks(t.square, range(4)) == [0, 1, 4, 9]
        assert set(map_tasks(t.ray_actor, range(40), chunksize=5)) == {None}
        assert map_tasks(t.square, range(4)) == [0, 1, 4, 9]
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "daglite"]
    assert warning == (
        "daglite could not use warm Ray actors (RuntimeError: no actors here); this "
        "session's batches run as Ray tasks"
    )


def test_an_actor_killed_from_outside_is_dropped_and_blames_no_item(local_ray):
    Actors(local_ray).warm()
    with session(settings=QUIET) as ctx:
        transport = ctx.get_backend("ray").transport
        dead, alive = transport._actors
        local_ray.kill(dead.handle, no_restart=True)  # by someone else: Ray says so later
        assert map_tasks(t.square, range(40), chunksize=5) == [x * x for x in range(40)]
        assert transport._actors == [alive]  # the dead one is not used again


def _one_actor_transport(local_ray, sent):
    """A transport lent one warm actor, and a quick batch (1 s nap) to send it."""
    from daglite_ray.transport import RayTransport

    Actors(local_ray, count=1).warm()
    with session(settings=QUIET):
        assert map_tasks(t.nap, [1.0]) == [1.0]
    transport = RayTransport(1, 3)
    (actor,) = transport._actors
    return transport, actor, sent[0]


def test_killing_an_actor_sends_the_batches_queued_behind_it_again(local_ray, sent):
    from ray.exceptions import RayActorError

    from daglite.plugin import WorkerLost

    transport, actor, request = _one_actor_transport(local_ray, sent)
    running, queued = transport.submit(request), transport.submit(request)
    assert actor.load == 2  # both on the one actor: one runs, one waits behind it
    transport.kill(running)
    assert transport.wait(None) == [(queued, WorkerLost(started=False))]
    assert transport._actors == []
    with pytest.raises(RayActorError):  # killed for good: Ray does not restart it
        local_ray.get(actor.handle.ready.remote(), timeout=60)
    transport.close()
    assert actor not in _idle(local_ray)[1]


def test_abort_kills_the_actors_running_batches(local_ray, sent):
    from ray.exceptions import RayActorError

    transport, actor, request = _one_actor_transport(local_ray, sent)
    transport.submit(request)
    transport.abort()
    with pytest.raises(RayActorError):
        local_ray.get(actor.handle.ready.remote(), timeout=60)
    transport.close()
    assert actor not in _idle(local_ray)[1]


def test_closing_gives_the_actors_that_ran_nothing_back(local_ray):
    from daglite_ray.transport import RayTransport

    (kept,) = Actors(local_ray, count=1).warm()
    transport = RayTransport(1, 3)
    transport.close()
    assert {actor.handle._actor_id.hex() for actor in _idle(local_ray)[1]} == {kept}


def _idle_for(seconds):
    return DagliteSettings(backend="ray", processors=(), options={"ray": {"idle_timeout": seconds}})


def _warm_session(ray, settings):
    """The actors a session with `settings` started at its second map, once up."""
    Actors(ray).cold()
    with session(settings=settings) as ctx:
        map_tasks(t.square, range(4))
        map_tasks(t.square, range(4))  # the second map starts them
        actors = list(ctx.get_backend("ray").transport._actors)
        ray.get([actor.handle.ready.remote() for actor in actors], timeout=60)
    assert len(actors) == 2
    return actors


def _alive(ray, actor):
    from ray.exceptions import RayActorError

    try:
        ray.get(actor.handle.ready.remote(), timeout=60)
    except RayActorError:
        return False
    return True


def test_actors_idle_longer_than_the_idle_timeout_are_killed(local_ray):
    import time

    actors = _warm_session(local_ray, _idle_for(0.5))
    deadline = time.monotonic() + 30
    while any(_alive(local_ray, actor) for actor in actors):
        assert time.monotonic() < deadline, "the idle actors were never killed"
        time.sleep(0.1)
    assert _idle(local_ray)[1] == []  # and off the idle list


def test_actors_lent_again_before_their_idle_timeout_are_not_killed(local_ray):
    import time

    from daglite_ray import pool

    actors = _warm_session(local_ray, _idle_for(0.5))
    ids = {actor.handle._actor_id.hex() for actor in actors}
    due = time.monotonic()  # they are due for the reaper by 0.5 s from now
    with session(settings=QUIET):  # lends them at once
        assert set(map_tasks(t.ray_actor, range(40), chunksize=5)) == ids
        deadline = time.monotonic() + 30
        while pool._reap_at <= due + 0.5:  # the reaper has run, with them lent
            assert time.monotonic() < deadline, "the reaper never ran"
            time.sleep(0.05)
        assert set(map_tasks(t.ray_actor, range(40), chunksize=5)) == ids
    assert all(_alive(local_ray, actor) for actor in actors)
    connection, idle = _idle(local_ray)
    assert {actor.handle._actor_id.hex() for actor in idle} == ids
    assert min(actor.idle_until for actor in idle) > time.monotonic() + 200  # QUIET's 300 s
    pool.give_back(connection, 3, idle)
