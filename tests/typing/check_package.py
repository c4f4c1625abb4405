"""Static typing contract of the `daglite` package's lazily loaded names (`daglite.X`)."""

from __future__ import annotations

from typing_extensions import assert_type

import daglite
from daglite import SessionContext


@daglite.task
def add(x: int, y: int) -> int:
    return x + y


assert_type(add(1, 2), int)
assert_type(daglite.map_tasks(add, [1], [2]), list[int])
assert_type(daglite.__version__, str)

with daglite.session() as ctx:
    assert_type(ctx, SessionContext)

nope = daglite.nope  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
