"""Static typing contract of sessions and the execution context: checked by pyright and mypy."""

from __future__ import annotations

from typing_extensions import assert_type

from daglite import SessionContext
from daglite import TaskMetadata
from daglite import async_session
from daglite import current_task
from daglite import session
from daglite.settings import DagliteSettings

with session(backend="thread") as ctx:
    assert_type(ctx, SessionContext)
    assert_type(ctx.settings, DagliteSettings)
    assert_type(current_task(), TaskMetadata | None)

session(backend=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
session("thread")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]


async def main() -> None:
    async with async_session() as actx:
        assert_type(actx, SessionContext)
