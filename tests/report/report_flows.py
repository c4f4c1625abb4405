"""The pipeline the browser tests picture, in a module that worker processes can import.

It makes every outcome the timeline colours: succeeded, cached, failed (after a retry),
retried then succeeded, and timed out; a nested map, a dataset and log records.
"""

from __future__ import annotations

import time
from pathlib import Path

from daglite import TaskError
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


@task(retries=2)
def wobbly(x: int, marks: str) -> int:
    """Fails its first attempt (a mark file remembers it across worker processes)."""
    mark = Path(marks) / f"{x}.tried"
    if not mark.exists():
        mark.touch()
        get_logger().warning("first attempt fails", x=x)
        raise ConnectionError(f"flaky network for {x}")
    return x


@task(cache=True)
def cached(x: int) -> int:
    return x + 1


@task(timeout=0.3)
def stuck() -> None:
    while True:  # pure Python: the timeout stops it
        pass


@task
def nested(x: int) -> int:
    return sum(map_tasks(work, range(x)))


@workflow
def pipeline(marks: str, n: int = 6, backend: str | None = None) -> dict[str, object]:
    doubled = map_tasks(work, range(n), backend=backend)
    tried = map_tasks(flaky, range(n), backend=backend, return_exceptions=True)
    steady = map_tasks(wobbly, [0, 1], [marks, marks], backend=backend)
    hits = [cached(i) for i in (1, 2, 1)]
    inner = map_tasks(nested, [2, 3], backend=backend)
    try:
        stuck()
    except TaskError:
        pass
    save_dataset("summary.json", {"doubled": doubled})
    return {"failed": sum(isinstance(t, Exception) for t in tried), "steady": steady,
            "hits": hits, "inner": inner}  # fmt: skip
