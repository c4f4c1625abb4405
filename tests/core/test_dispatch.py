"""The event dispatcher: in-order delivery, one event at a time, broken processors disabled."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.dispatch import EventDispatcher
from daglite.events import SessionStarted
from daglite.settings import DagliteSettings


@task
def ident(x: int) -> int:
    return x


def started(session_id: str = "s") -> SessionStarted:
    return SessionStarted(session_id=session_id, backend="inline")


def test_processors_get_every_event_in_order():
    first, second = [], []
    dispatch = EventDispatcher([first.append, second.append])
    events = [started("a"), started("b")]
    for event in events:
        dispatch(event)
    assert first == events and second == events


def test_failing_processor_is_logged_once_disabled_and_the_others_keep_going(caplog, events):
    calls = []

    def broken(event):
        calls.append(event.kind)
        raise RuntimeError("processor bug")

    with caplog.at_level(logging.ERROR, logger="daglite"), session(plugins=[broken, events]):
        ident(1)
    assert calls == ["SessionStarted"]  # called once, then skipped
    assert events.kinds() == ["SessionStarted", "TaskStarted", "TaskSucceeded", "SessionEnded"]
    (record,) = caplog.records
    assert record.name == "daglite"
    assert record.getMessage() == (
        f"event processor {broken!r} failed on SessionStarted and is disabled for this session"
    )
    assert record.exc_info[0] is RuntimeError


def test_close_reaches_every_processor_even_if_one_fails(caplog):
    closed = []

    class Closing:
        def __init__(self, name, fail=False):
            self.name, self.fail = name, fail

        def __call__(self, event):
            pass

        def close(self):
            closed.append(self.name)
            if self.fail:
                raise OSError("disk full")

    bad = Closing("a", fail=True)
    dispatch = EventDispatcher([bad, Closing("b"), print])
    with caplog.at_level(logging.ERROR, logger="daglite"):
        dispatch.close()
    assert closed == ["a", "b"]
    assert [r.getMessage() for r in caplog.records] == [f"event processor {bad!r} failed to close"]


def test_processors_never_see_two_events_at_once():
    inside = threading.Lock()
    overlaps = []
    seen = []

    def slow(event):
        if not inside.acquire(blocking=False):
            overlaps.append(event)
            return
        try:
            time.sleep(0.0005)
            seen.append(event)
        finally:
            inside.release()

    settings = DagliteSettings(max_workers=4)
    with session(backend="thread", settings=settings, plugins=[slow]):
        map_tasks(ident, range(100), chunksize=1)
    assert overlaps == []
    assert len(seen) == 2 + 2 + 2 * 100  # session, map and two events per item


def test_events_module_is_not_imported_when_nobody_listens():
    code = (
        "import sys\n"
        "from daglite import map_tasks, session, task, workflow\n"
        "@task\n"
        "def f(x):\n"
        "    return x\n"
        "@workflow\n"
        "def w():\n"
        "    return map_tasks(f, [1, 2])\n"
        "with session(backend='thread'):\n"
        "    f(1); map_tasks(f, [1]); w()\n"
        "assert 'daglite.events' not in sys.modules, 'events imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
