"""`session(report=...)` and the report setting: a session writes its report when it ends."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.errors import SettingsError
from daglite.report import build_report
from daglite.settings import set_global_settings

from ..support.report_tasks import work
from .conftest import page_data
from .conftest import settings_for


@task
def boom(x: int) -> int:
    raise RuntimeError(f"boom {x}")


def test_a_failed_session_still_writes_its_report(tmp_path):
    html = tmp_path / "run.html"
    with (
        pytest.raises(Exception, match="boom 1"),
        session(settings=settings_for(tmp_path), report=html),
    ):
        boom(1)
    s = page_data(html)["sessions"][0]
    assert s["status"] == "failure"
    assert s["error"].startswith("TaskError: task 'boom' failed: RuntimeError: boom 1")
    assert [f["error_message"] for f in s["failures"]] == ["boom 1"]
    assert data_source(html) == "the events of the session"


def data_source(html: Path) -> str:
    return page_data(html)["source"]


def test_ctrl_c_still_writes_the_report(tmp_path):
    html = tmp_path / "run.html"
    with pytest.raises(KeyboardInterrupt), session(settings=settings_for(tmp_path), report=html):
        map_tasks(work, range(3))
        raise KeyboardInterrupt
    s = page_data(html)["sessions"][0]
    assert (s["status"], s["error"]) == ("failure", "KeyboardInterrupt:")
    assert s["counts"]["succeeded"] == 3


def test_the_report_setting_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGLITE_REPORT", str(tmp_path / "env.html"))
    set_global_settings(None)
    try:
        with session():
            work(1)
    finally:
        set_global_settings(None)
    assert page_data(tmp_path / "env.html")["sessions"][0]["counts"]["calls"] == 1


def test_a_session_reports_only_itself_from_a_shared_event_log(tmp_path):
    log = tmp_path / "shared.jsonl"
    settings = settings_for(tmp_path, event_log=str(log))
    with session(settings=settings):
        work(1)
    with session(settings=settings, report=tmp_path / "second.html") as ctx:
        work(2)
        work(3)
    data = page_data(tmp_path / "second.html")
    assert [s["id"] for s in data["sessions"]] == [ctx.session_id]
    assert data["sessions"][0]["counts"]["calls"] == 2
    both = page_data(build_report(log, tmp_path / "both.html"))  # the CLI's default: all
    assert [s["counts"]["calls"] for s in both["sessions"]] == [1, 2]


def test_a_report_path_that_is_a_folder_is_refused_when_the_session_opens(tmp_path):
    with (
        pytest.raises(SettingsError) as info,
        session(settings=settings_for(tmp_path), report=tmp_path),
    ):
        pass
    assert str(info.value) == f"report {str(tmp_path)!r} is a folder: name an .html file"


def test_a_report_that_cannot_be_written_is_logged_not_raised(tmp_path, caplog):
    folder = tmp_path / "gone"
    report = folder / "run.html"
    with caplog.at_level(logging.ERROR, logger="daglite"), session(report=report):
        work(1)
        folder.rmdir()
        folder.write_text("a file where the report's folder was")
    assert f"could not write the report {folder / 'run.html'}: " in caplog.text
    assert not list(tmp_path.glob("daglite-events-*"))


def test_no_report_is_written_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with session(settings=settings_for(tmp_path)) as ctx:
        work(1)
    assert ctx._recorder is None
    assert not list(tmp_path.rglob("*.html"))


def test_ctrl_c_on_daglite_run_still_writes_the_report(tmp_path):
    import signal
    import time

    (tmp_path / "slow.py").write_text(
        "import time\n"
        "from pathlib import Path\n"
        "from daglite import task, workflow\n"
        "@task\ndef quick(x: int) -> int:\n    return x\n"
        "@task\ndef wait() -> None:\n"
        "    Path('started').touch()\n"
        "    while True:\n        time.sleep(0.05)\n"
        "@workflow\ndef slow() -> None:\n    quick(1)\n    wait()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "daglite.cli", "run", "slow.py:slow", "--report", "r.html"],
        cwd=tmp_path,
        env={**os.environ, "DAGLITE_PROCESSORS": ""},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():  # the task is running
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        proc.kill()
        proc.communicate()
    s = page_data(tmp_path / "r.html")["sessions"][0]
    assert (s["status"], s["error"]) == ("failure", "KeyboardInterrupt:")
    assert s["counts"]["succeeded"] == 1 and s["counts"]["failed"] == 1
    assert [f["error_type"] for f in s["failures"]] == ["KeyboardInterrupt"]
