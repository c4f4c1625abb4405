"""`daglite.get_logger()`: records become `LogRecorded` events bound to the task."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from daglite import get_logger
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.settings import DagliteSettings


class Capture:
    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)

    def logs(self):
        return [e for e in self.events if e.kind == "LogRecorded"]


@task
def noisy(x: int) -> int:
    log = get_logger()
    log.debug("detail", x=x)
    log.info("working", x=x, payload={"n": [x, object]})
    if x == 1:
        log.warning("odd one", why="one")
    return x


QUIET = DagliteSettings(processors=())


def test_records_are_events_bound_to_the_task():
    capture = Capture()
    with session(plugins=[capture], settings=QUIET, backend="thread") as ctx:
        map_tasks(noisy, [0, 1])
    logs = capture.logs()
    starts = {e.map_index: e.task_id for e in capture.events if e.kind == "TaskStarted"}
    working = sorted((e for e in logs if e.message == "working"), key=lambda e: e.map_index)
    assert [e.map_index for e in working] == [0, 1]
    for record in working:
        assert record.session_id == ctx.session_id
        assert record.name == "noisy"
        assert record.task_id == starts[record.map_index]
        assert record.level == "info"
        # plain data is kept; what JSON cannot hold becomes its repr
        payload = {"n": [record.map_index, repr(object)]}
        assert record.fields == {"x": record.map_index, "payload": payload}
    warning = [e for e in logs if e.level == "warning"]
    assert [(e.message, e.fields) for e in warning] == [("odd one", {"why": "one"})]
    assert not [e for e in logs if e.level == "debug"]  # below the session's level


def test_log_level_setting_filters_where_records_are_made():
    capture = Capture()
    with session(plugins=[capture], settings=QUIET.evolve(log_level="debug")):
        noisy(0)
    assert [e.message for e in capture.logs()] == ["detail", "working"]
    capture = Capture()
    with session(plugins=[capture], settings=QUIET.evolve(log_level="error")):
        noisy(1)
    assert capture.logs() == []


def test_bound_values_and_exceptions():
    capture = Capture()

    @task
    def failing_inside() -> None:
        log = get_logger("custom", stage="load").bind(attempt_note="first")
        try:
            raise RuntimeError("disk full")
        except RuntimeError:
            log.exception("could not write")

    with session(plugins=[capture], settings=QUIET):
        failing_inside()
    (record,) = capture.logs()
    assert record.level == "error"
    assert record.logger == "custom"
    assert record.fields["stage"] == "load"
    assert record.fields["attempt_note"] == "first"
    assert "RuntimeError: disk full" in record.fields["exception"]


def test_outside_a_session_records_are_rendered_directly(tmp_path):
    code = (
        "from daglite import get_logger\n"
        "get_logger('plain').warning('no session', n=3)\n"
        "get_logger('plain').debug('hidden')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "DAGLITE_LOG_FORMAT": "json"},
        check=True,
    )
    (line,) = done.stderr.splitlines()
    record = json.loads(line)
    assert (record["event"], record["level"], record["n"]) == ("no session", "warning", 3)


def test_import_daglite_loads_no_structlog_cli_or_stevedore():
    code = (
        "import sys, daglite\n"
        "heavy = [m for m in ('structlog', 'cyclopts', 'rich', 'stevedore') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_records_carry_the_attempt_of_their_own_call():
    tries = []

    @task
    def inner() -> None:
        get_logger().info("inner")

    @task(retries=2)
    def flaky() -> str:
        tries.append(1)
        inner()
        get_logger().info("trying")
        if len(tries) < 3:
            raise ValueError("not yet")
        return "ok"

    capture = Capture()
    with session(plugins=[capture], settings=QUIET):
        assert flaky() == "ok"
        get_logger().info("outside")
    logs = capture.logs()
    assert [e.attempt for e in logs if e.message == "trying"] == [1, 2, 3]
    assert [e.attempt for e in logs if e.message == "inner"] == [1, 1, 1]
    assert [e.attempt for e in logs if e.message == "outside"] == [None]
    assert all("attempt" not in e.fields for e in logs)


def test_records_of_an_async_task_carry_its_attempt_too():
    tries = []

    @task(retries=1)
    async def flaky() -> str:
        tries.append(1)
        get_logger().info("trying")
        if len(tries) < 2:
            raise ValueError("not yet")
        return "ok"

    capture = Capture()
    with session(plugins=[capture], settings=QUIET):
        assert asyncio.run(flaky()) == "ok"
        get_logger().info("outside")
    logs = capture.logs()
    assert [e.attempt for e in logs if e.message == "trying"] == [1, 2]
    assert [e.attempt for e in logs if e.message == "outside"] == [None]


class Unprintable:
    def __str__(self) -> str:
        raise AssertionError("a filtered record was formatted")

    __repr__ = __str__


def test_a_record_below_the_level_is_neither_formatted_nor_built():
    capture = Capture()
    with session(plugins=[capture], settings=QUIET.evolve(log_level="warning")):
        log = get_logger()
        log.info("not %s", Unprintable())
        log.debug("nor this", value=Unprintable())
        log.bind(x=1).info("nor bound")
        log.warning("kept %s", "here")
    assert [(e.level, e.message) for e in capture.logs()] == [("warning", "kept here")]


def test_what_nobody_asks_for_is_not_recorded():
    from daglite.testing import EventCapture

    failures_only = EventCapture(kinds={"TaskFailed"})
    records_only = EventCapture(kinds={"LogRecorded"})
    with session(plugins=[failures_only], settings=QUIET):
        get_logger().error("nobody wants %s", Unprintable())
    with session(plugins=[records_only], settings=QUIET):
        get_logger().info("wanted")
    assert failures_only.events == []
    assert [e.message for e in records_only.events] == ["wanted"]


def test_the_logger_has_structlogs_bound_logger_interface():
    import asyncio

    capture = Capture()
    with session(plugins=[capture], settings=QUIET.evolve(log_level="debug")):
        log = get_logger("mine", a=1)
        log.bind(b=2).unbind("a").msg("msg")
        log.new(c=3).warn("warn")
        log.try_unbind("zzz").log(40, "numeric %d", 7)
        asyncio.run(log.ainfo("async"))
        assert log.is_enabled_for(10) and log.get_effective_level() == 10
        with pytest.raises(KeyError):
            log.unbind("zzz")
    records = [(e.level, e.message, e.fields) for e in capture.logs()]
    assert records == [
        ("info", "msg", {"b": 2}),
        ("warning", "warn", {"c": 3}),
        ("error", "numeric 7", {"a": 1}),
        ("info", "async", {"a": 1}),
    ]


def test_the_first_logger_imports_nothing_heavy():
    code = (
        "import sys, time\n"
        "from daglite import get_logger, session, task\n"
        "from daglite.settings import DagliteSettings\n"
        "@task\n"
        "def f():\n"
        "    get_logger().warning('first')\n"
        "with session(settings=DagliteSettings(plugins=('logging',), log_format='json')):\n"
        "    f()\n"
        "print([m for m in ('structlog', 'rich', 'asyncio') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert '"event": "first"' in done.stderr
