"""Helpers for testing code that uses daglite (public API, like structlog's `testing`)."""

from __future__ import annotations

# -- in-memory stores (stores helper) -------------------------------------------------------
from collections.abc import Callable

from daglite.caching import CacheStore
from daglite.datasets import DatasetStore
from daglite.stores import ByteStore
from daglite.stores import open_store


def memory_store(name: str | None = None) -> ByteStore:
    """A byte store in this process's memory, under a fresh root (or `memory://<name>`)."""
    import uuid

    return open_store(f"memory://{name or 'daglite-test-' + uuid.uuid4().hex}")


def memory_cache_store(
    *, ttl: float | None = None, clock: Callable[[], float] | None = None
) -> CacheStore:
    """A `CacheStore` in memory, empty, with an optional TTL and injectable clock."""
    return CacheStore(memory_store(), ttl=ttl, clock=clock)


def memory_dataset_store() -> DatasetStore:
    """A `DatasetStore` in memory, empty."""
    return DatasetStore(memory_store())


class ManualClock:
    """A clock for TTL tests: call it for the time, `advance(seconds)` to move it."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`."""
        self.now += seconds
