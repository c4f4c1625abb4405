"""Tasks of the report tests, in a module that worker processes can import."""

from __future__ import annotations

import time

from daglite import get_logger
from daglite import map_tasks
from daglite import save_dataset
from daglite import task
from daglite import workflow


@task
def work(x: int) -> int:
    time.sleep(0.002)  # the work itself: a few ms, so bars have a length
    return x * 2


@task(retries=1)
def flaky(x: int, api_key: str = "hunter2-secret") -> int:
    if x == 3:
        get_logger().error("item failed", x=x)
        raise ValueError(f"bad item {x}")
    get_logger().info("item done", x=x)
    return x


@task(cache=True)
def cached(x: int) -> int:
    return x + 1


@task
def nested(x: int) -> int:
    return sum(map_tasks(work, range(x)))


@workflow
def pipeline(n: int = 6, backend: str | None = None) -> dict[str, object]:
    """Every kind of call a report shows: a map with a failure, cache, nesting, a dataset."""
    doubled = map_tasks(work, range(n), backend=backend)
    tried = map_tasks(flaky, range(n), backend=backend, return_exceptions=True)
    hits = [cached(i) for i in (1, 2, 1)]
    inner = map_tasks(nested, [2, 3], backend=backend)
    save_dataset("summary.json", {"doubled": doubled})
    return {"doubled": doubled, "failed": sum(isinstance(t, Exception) for t in tried),
            "hits": hits, "inner": inner}  # fmt: skip
