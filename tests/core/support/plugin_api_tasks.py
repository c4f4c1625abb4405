"""Tasks for the plugin API tests, in a module that worker processes import."""

from __future__ import annotations

import os

import attrs

from daglite import hookimpl
from daglite import task
from daglite.events import Event
from daglite.plugin import DagliteSettings
from daglite.plugin import current_settings
from daglite.plugin import emit
from daglite.plugin import in_worker

DAGLITE_API_VERSION = 1


@attrs.frozen(kw_only=True)
class Pinged(Event):
    """A plugin's own event, emitted where a task runs."""

    value: int
    pid: int


@task
def where(x: int) -> tuple[int, bool]:
    return os.getpid(), in_worker()


@task
def ping(x: int) -> bool:
    """Emits one `Pinged` from a class and its fields, one from an instance."""
    sent = emit(Pinged, value=x, pid=os.getpid())
    if sent:
        emit(Pinged(session_id=current_session_id(), value=-x - 1, pid=os.getpid()))
    return sent


def current_session_id() -> str:
    from daglite import current_task

    meta = current_task()
    assert meta is not None
    return meta.session_id


@task
def settings_here(x: int) -> DagliteSettings:
    return current_settings()


@task
def exit_at(x: int, bad: int) -> int:
    if x == bad:
        os._exit(7)
    return x * 10


@task
def fail_at(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"item {x} is bad")
    return x


class WorkerStartRecorder:
    """A hook plugin that records `in_worker()` and the settings where `on_worker_start` runs."""

    def __init__(self, path: str) -> None:
        self.path = path

    @hookimpl
    def on_worker_start(self, settings: DagliteSettings) -> None:
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(f"{os.getpid()} {in_worker()} {current_settings() == settings}\n")


def run_batch_of_nothing(request):
    """A broken plugin's worker: it runs the batch with its items dropped."""
    import pickle

    import cloudpickle

    from daglite.plugin import run_batch

    items = pickle.loads(request.items)
    nothing = (items[0][:0], items[1][:0], *items[2:])
    return run_batch(attrs.evolve(request, items=cloudpickle.dumps(nothing)))
