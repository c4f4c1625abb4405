"""Tasks defined in classes, for the descriptor tests (workers import this module by name)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

from daglite import task


class Scaler:
    """An object whose methods are tasks; its `factor` is part of what they compute."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    @task
    def scale(self, x: int) -> int:
        return self.factor * x

    @task
    def where(self, x: int) -> tuple[int, int]:
        return os.getpid(), self.factor * x

    @task(cache=True)
    def cached(self, x: int) -> tuple[int, int]:
        return os.getpid(), self.factor * x

    @task
    async def later(self, x: int) -> int:
        await asyncio.sleep(0)
        return self.factor * x

    @task
    def upto(self, n: int) -> Iterator[int]:
        for i in range(n):
            yield self.factor * i

    @staticmethod
    @task
    def negate(x: int) -> int:
        return -x

    @classmethod
    @task
    def label(cls, x: int) -> str:
        return f"{cls.__name__}:{x}"


class Locked:
    """An object that cannot be part of a cache key (it holds a lock) and does not say why."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    @task(cache=True)
    def run(self, x: int) -> int:
        return x

    @task
    def plain(self, x: int) -> int:
        return x


class Keyed:
    """An object that names what identifies it (`__cache_key__`): the lock is left out."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.lock = threading.Lock()

    def __cache_key__(self) -> int:
        return self.k

    @task(cache=True)
    def run(self, x: int) -> int:
        return self.k + x
