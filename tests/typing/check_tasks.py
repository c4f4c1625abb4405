"""Static typing contract of `@task`: checked by pyright and mypy, never run by pytest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Coroutine
from collections.abc import Iterator
from typing import Any

from typing_extensions import assert_type

from daglite import task
from daglite.tasks import AsyncTask
from daglite.tasks import AsyncTaskStream
from daglite.tasks import SyncTask
from daglite.tasks import SyncTaskStream


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task(name="scaled-{x}", retries=2, timeout=1.5)
def scale(x: float, factor: float) -> float:
    return x * factor


@task
async def fetch(url: str) -> bytes:
    return url.encode()


@task
def count(n: int) -> Iterator[int]:
    yield from range(n)


@task
async def stream(n: int) -> AsyncIterator[str]:
    for i in range(n):
        yield str(i)


# A sync task keeps its parameters and its return type.
add_type: SyncTask[[int, int], int] = add
assert_type(add(1, 2), int)
assert_type(add(1), int)
assert_type(add(x=1, y=2), int)
scale_type: SyncTask[[float, float], float] = scale
assert_type(scale(2.0, factor=3.0), float)

# Wrong arguments are errors, as for the plain function.
add("one", 2)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
add(1, 2, 3)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
add(1, z=2)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
scale(1.0)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]

# An async task returns a coroutine of its result.
fetch_type: AsyncTask[[str], bytes] = fetch
coro = assert_type(fetch("u"), Coroutine[Any, Any, bytes])
coro.close()
fetch(1).close()  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def awaiting() -> None:
    assert_type(await fetch("u"), bytes)
    async for item in stream(3):
        assert_type(item, str)


# Generator tasks return iterators.
count_type: SyncTaskStream[[int], int] = count
assert_type(count(3), Iterator[int])
stream_type: AsyncTaskStream[[int], str] = stream
assert_type(stream(3), AsyncIterator[str])
for number in count(3):
    assert_type(number, int)
count("3")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# Options in parentheses keep the same precise types.
@task(name="get-{url}", retries=1)
async def get(url: str) -> bytes:
    return url.encode()


@task(backend="thread")
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@task(description="Lines of a text.")
async def lines(text: str) -> AsyncIterator[str]:
    for line in text.splitlines():
        yield line


get_type: AsyncTask[[str], bytes] = get
numbers_type: SyncTaskStream[[int], int] = numbers
lines_type: AsyncTaskStream[[str], str] = lines
assert_type(numbers(2), Iterator[int])
assert_type(lines("a"), AsyncIterator[str])
get(b"u").close()  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# A task in a class binds like a method: the instance fills its first parameter.
class Scaler:
    factor: float = 2.0

    @task
    def apply(self, x: float) -> float:
        return x * self.factor

    @task
    async def later(self, x: float) -> float:
        return x * self.factor

    @staticmethod
    @task
    def negate(x: int) -> int:
        return -x

    @classmethod
    @task(retries=1)
    def label(cls, x: int) -> str:
        return f"{cls.__name__}-{x}"


scaler = Scaler()
assert_type(scaler.apply(1.5), float)
assert_type(Scaler.apply(scaler, 1.5), float)
later = assert_type(scaler.later(1.5), Coroutine[Any, Any, float])
later.close()
assert_type(Scaler.negate(1), int)
assert_type(scaler.label(1), str)
# Not asserted: pyright and mypy model a staticmethod or classmethod over a descriptor (the
# task) by the task's own binding, so they type `scaler.negate` as bound to `scaler` and
# `Scaler.label` as unbound; at run time both are what Python makes of them (`negate` is the
# task, `label` is bound to the class).
scaler.apply("x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
scaler.apply(1.0, 2.0)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
