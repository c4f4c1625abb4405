"""Result caching of one call: `CachePlan` (which store, which key, lookup and save).

`@task(cache=...)` makes the pipeline build a plan for each call (`CachePlan.for_call`):
the store (`task_cache_store`: the task's `cache=` path or store, else its `cache_store=`,
else the session's, else the settings'), the key (`daglite.taskkeys`: the task's name,
code, callable state, arguments), the lookup before the call and the save after it.

The entries themselves (their format, corruption checks, expiry, markers, clearing) are
the business of `daglite.cachestore.CacheStore`, re-exported here with `open_cache_store`;
`cache_key` (the key a call would use) lives here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

from daglite.cachestore import MARKER as MARKER  # re-exported: users import these from here
from daglite.cachestore import CacheStore as CacheStore
from daglite.cachestore import open_cache_store as open_cache_store
from daglite.errors import StoreError
from daglite.taskkeys import TaskKeys
from daglite.taskspec import TaskSpec
from daglite.taskspec import unbind

if TYPE_CHECKING:
    from daglite.context import Runtime
    from daglite.context import TaskMetadata

#: A custom key function: `(func, inputs) -> str` (any string; it is hashed into the key).
CacheHashFn = Callable[[Callable[..., Any], dict[str, Any]], str]

log = logging.getLogger("daglite")


def cache_key(task: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The cache key a call `task(*args, **kwargs)` would use (`task` may be bound: `obj.m`).

    Raises:
        TypeError: `task` is not a task, or an argument cannot be hashed (the message names it).
    """
    found = unbind(task)
    if found is None:
        raise TypeError(f"cache_key requires a `@task`-decorated callable, got {task!r}.")
    spec, bound = found
    return spec.keys.key(spec.bind((*bound, *args), kwargs))


def task_cache_store(task: TaskSpec, runtime: Runtime) -> CacheStore:
    """The cache store of `task` when run in `runtime`.

    `cache=` a path or store wins, then the task's `cache_store=`, then the session's.
    """
    cache = task.cache
    if cache is not True and cache is not False:
        spec = cache
    elif task.cache_store is not None:
        spec = task.cache_store
    else:
        spec = runtime.cache_store
        if spec is None:
            spec = runtime.settings.cache_store
    return open_cache_store(spec)


class CachePlan:
    """The cache side of one task call: its key, lookup and store.

    Attributes:
        key: The entry's key (a hex digest).
        miss_reason: Why `lookup()` found nothing (`"absent"`, `"expired"`, `"corrupt: ..."`).
    """

    __slots__ = ("before", "cache", "key", "keys", "miss_reason", "ttl")

    def __init__(
        self, cache: CacheStore, key: str, ttl: float | None, keys: TaskKeys | None = None
    ) -> None:
        self.cache = cache
        self.key = key
        self.ttl = ttl
        self.keys = keys
        self.before: tuple[bytes, ...] = ()
        self.miss_reason = ""

    @classmethod
    def for_call(cls, task: TaskSpec, runtime: Runtime, meta: TaskMetadata) -> CachePlan:
        """The plan of one call of `task` (its bound arguments are `meta.inputs`).

        Raises:
            TypeError: An argument cannot be part of the key (the message names it), or
                `cache_hash` returned something other than a string.
        """
        keys = task.keys
        return cls(task_cache_store(task, runtime), keys.key(meta.inputs), task.cache_ttl, keys)

    def lookup(self) -> tuple[bool, Any]:
        """`(True, value)` on a hit, else `(False, None)` with `miss_reason` set."""
        found, value, self.miss_reason = self.cache.get(self.key, self.ttl)
        keys = self.keys
        if not found and keys is not None and keys.state and not keys.warned:
            self.before = keys.snapshot()  # to tell whether the call changes it (see store)
        return found, value

    def store(self, value: Any) -> None:
        """Save the call's `value`.

        A value that cannot be pickled is logged, not raised (the call still returns it).

        Raises:
            StoreError: The store failed (e.g. a missing bucket, bad credentials, a full disk).
        """
        keys = self.keys
        if self.before and keys is not None and not keys.warned:
            changed = keys.changed_since(self.before)
            if changed:
                keys.warned = True
                log.warning(
                    "task '%s' changed %s while it ran: that is part of its cache key, so its "
                    "calls keep missing the cache. Keep what a task records out of what it "
                    "reads (a daglite.testing.CallLog for a list of calls), or give the "
                    "object a __cache_key__() method",
                    keys.name,
                    " and ".join(changed),
                )
        try:
            self.cache.put(self.key, value)
        except StoreError:
            raise
        except Exception as exc:
            log.warning(
                "cannot cache the result under %s in %s: %s: %s",
                self.key,
                self.cache.bytes.url,
                type(exc).__name__,
                exc,
            )
