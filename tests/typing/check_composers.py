"""Static typing contract of `map_tasks` and `gather_tasks`: checked by pyright and mypy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Iterator

from typing_extensions import assert_type

from daglite import gather_tasks
from daglite import map_tasks
from daglite import task


@task
def square(x: int) -> int:
    return x * x


@task
async def shout(text: str) -> str:
    return text.upper()


@task
def count(n: int) -> Iterator[int]:
    yield from range(n)


@task
async def stream(n: int) -> AsyncIterator[float]:
    for i in range(n):
        yield i / 2


# map_tasks returns list[R] for plain and async tasks, list[list[R]] for generator tasks.
assert_type(map_tasks(square, range(3)), list[int])
assert_type(map_tasks(square, [1, 2], backend="thread"), list[int])
assert_type(map_tasks(shout, ["a", "b"]), list[str])
assert_type(map_tasks(count, [1, 2]), list[list[int]])
assert_type(map_tasks(stream, [1, 2]), list[list[float]])
map_tasks(square, [1], backend=1)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]


async def gathering() -> None:
    # gather_tasks awaits to list[R] (list[list[R]] for async generator tasks).
    assert_type(await gather_tasks(shout, ["a", "b"]), list[str])
    assert_type(await gather_tasks(shout, ["a"], return_exceptions=True), list[str])
    assert_type(await gather_tasks(stream, [1, 2]), list[list[float]])
