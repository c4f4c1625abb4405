"""Test helper: the process's idle Ray actors of `daglite_ray.pool`, warmed or emptied."""

from __future__ import annotations


class Actors:
    """The process's idle pool actors (`daglite_ray.pool`) of one `max_retries`.

    `warm()` makes sure `count` are up and idle, so the next session's batches run on them
    from its first map; `cold()` kills the idle ones, so they run as Ray tasks.
    """

    def __init__(self, ray, max_retries=3, count=2):
        self.ray, self.max_retries, self.count = ray, max_retries, count

    def _connection(self):
        from daglite_ray import pool

        return pool.connection(self.ray)

    def warm(self):
        from daglite_ray import pool

        actors = pool.lend(self._connection(), self.max_retries, self.count)
        actors += pool.start(self.count - len(actors), self.max_retries)
        self.ray.get([actor.ready for actor in actors if actor.ready is not None])
        for actor in actors:
            actor.ready = None
        pool.give_back(self._connection(), self.max_retries, actors)
        return {actor.handle._actor_id.hex() for actor in actors}

    def cold(self):
        from daglite_ray import pool

        for actor in pool.lend(self._connection(), self.max_retries, 1_000):
            pool.kill(actor)
        return set()
