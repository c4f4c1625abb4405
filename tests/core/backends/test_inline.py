"""The `inline` backend: map items one after another in the calling thread."""

from __future__ import annotations

import threading

from daglite import map_tasks
from daglite import session
from daglite import task


@task
def where(x: int) -> str:
    return threading.current_thread().name


def test_inline_backend_runs_items_in_the_calling_thread():
    with session(backend="inline"):
        names = map_tasks(where, range(3))
    assert set(names) == {threading.current_thread().name}
