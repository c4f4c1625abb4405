"""Static typing contract of `@workflow`: checked by pyright and mypy, never run by pytest."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from typing_extensions import assert_type

from daglite import task
from daglite import workflow
from daglite.workflows import AsyncWorkflow
from daglite.workflows import SyncWorkflow


@task
def add(x: int, y: int) -> int:
    return x + y


@workflow
def pipeline(x: int, y: int = 2) -> int:
    return add(x, y)


@workflow(name="named", description="A named workflow.")
def labelled(text: str) -> list[str]:
    return text.split()


@workflow
async def async_pipeline(x: int) -> str:
    return str(x)


pipeline_type: SyncWorkflow[[int, int], int] = pipeline
assert_type(pipeline(1), int)
assert_type(pipeline(1, y=3), int)
labelled_type: SyncWorkflow[[str], list[str]] = labelled
assert_type(labelled("a b"), list[str])
pipeline("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
pipeline(1, 2, 3)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]

async_pipeline_type: AsyncWorkflow[[int], str] = async_pipeline
coro = assert_type(async_pipeline(1), Coroutine[Any, Any, str])
coro.close()
async_pipeline(x="1").close()  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def awaiting() -> None:
    assert_type(await async_pipeline(1), str)


@workflow()
async def parenthesised(flag: bool) -> bool:
    return flag


parenthesised_type: AsyncWorkflow[[bool], bool] = parenthesised
