"""`daglite report`: reports built from real runs (inline, thread and process backends).

These tests read the data the page draws (embedded in it as JSON); `tests/report` opens
the pages in a real browser.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.report import build_report
from daglite.settings import DagliteSettings

from ..support.report_tasks import pipeline
from ..support.report_tasks import work
from .conftest import page_data
from .conftest import settings_for


def run_pipeline(tmp_path: Path, backend: str, **changes) -> tuple[Path, Path]:
    log, html = tmp_path / "run.jsonl", tmp_path / "run.html"
    settings = settings_for(tmp_path, event_log=str(log), **changes)
    with session(backend=backend, settings=settings, report=html):
        result = pipeline(6)
    assert result["failed"] == 1
    return log, html


@pytest.fixture(scope="module", params=["inline", "thread", "process"])
def real_run(request, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp(request.param)
    log, html = run_pipeline(tmp_path, request.param)
    return request.param, log, html, page_data(html)


def test_the_header_counts_every_call(real_run):
    backend, _, _, data = real_run
    (s,) = data["sessions"]
    # 6 work + 6 flaky + 3 cached + 2 nested + 5 work inside them
    assert s["counts"] == {
        "calls": 22,
        "succeeded": 20,
        "cached": 1,
        "failed": 1,
        "retried": 1,
        "timed out": 0,
        "running": 0,
    }
    assert s["status"] == "success"
    assert s["backend"] == backend
    assert s["entry"] == "pipeline"
    assert s["pid"] == os.getpid()
    assert s["host"]
    assert s["command"] == [*sys.argv]
    assert data["notes"] == [] and s["notes"] == []


def test_lanes_are_the_workers_that_ran_the_calls(real_run):
    backend, _, _, data = real_run
    (s,) = data["sessions"]
    lanes = s["lanes"]
    coordinator = f"pid {os.getpid()} · MainThread (coordinator)"
    assert lanes[0]["label"] == coordinator
    workers = lanes[1:]
    if backend == "inline":
        assert workers == []
    elif backend == "thread":
        assert workers and all(lane["pid"] == os.getpid() for lane in workers)
        assert all(lane["thread"].startswith("daglite-thread") for lane in workers)
    else:
        assert workers and all(lane["pid"] != os.getpid() for lane in workers)
        assert all(lane["thread"] == "MainThread" for lane in workers)
    bars = s["bars"]
    assert len(bars["s"]) == bars["total"] == 22
    names = [bars["names"][n] for n in bars["n"]]
    on_coordinator = {names[i] for i, lane in enumerate(bars["l"]) if lane == 0}
    if backend == "inline":
        assert on_coordinator == {"work", "flaky", "cached", "nested"}
    else:  # only the direct calls ran on the coordinator
        assert on_coordinator == {"cached"}


def test_a_nested_map_is_drawn_under_the_call_that_made_it(real_run):
    _, _, _, data = real_run
    bars = data["sessions"][0]["bars"]
    names = [bars["names"][n] for n in bars["n"]]
    nested = [i for i, name in enumerate(names) if name == "nested"]
    inner = [i for i, name in enumerate(names) if name == "work" and bars["z"][i] == 1]
    assert len(inner) == 5  # the items of the maps run inline inside `nested`
    assert all(bars["z"][i] == 0 for i in nested)
    assert {bars["l"][i] for i in inner} <= {bars["l"][i] for i in nested}
    outcome = [bars["outcomes"][o] for o in bars["o"]]
    assert outcome.count("failed") == 1 and outcome.count("cached") == 1
    failed = outcome.index("failed")
    assert (names[failed], bars["i"][failed], bars["a"][failed]) == ("flaky", 3, 2)
    assert bars["keys"][bars["k"][outcome.index("cached")]]  # the cache key of the hit


def test_failures_carry_the_traceback_the_retries_and_no_secret(real_run):
    _, log, html, data = real_run
    (failure,) = data["sessions"][0]["failures"]
    assert failure["name"] == "flaky" and failure["map_index"] == 3
    assert (failure["error_type"], failure["error_message"]) == ("ValueError", "bad item 3")
    assert failure["attempts"] == 2
    assert failure["arguments"] == {"x": "3", "api_key": "***"}
    assert [r["attempt"] for r in failure["retries"]] == [1]
    assert failure["retries"][0]["error_message"] == "bad item 3"
    assert 'raise ValueError(f"bad item {x}")' in failure["traceback"]
    assert "hunter2-secret" not in html.read_text() and "hunter2-secret" not in log.read_text()


def test_per_task_statistics(real_run):
    _, _, _, data = real_run
    stats = {t["name"]: t for t in data["sessions"][0]["tasks"]}
    assert sorted(stats) == ["cached", "flaky", "nested", "work"]
    work_stats = stats["work"]
    assert (work_stats["count"], work_stats["ran"], work_stats["failed"]) == (11, 11, 0)
    assert work_stats["p50"] <= work_stats["p90"] <= work_stats["p99"] <= work_stats["max"]
    assert work_stats["p50"] >= 2.0  # each call sleeps 2 ms
    assert len(work_stats["slowest"]) == 5
    assert work_stats["slowest"][0]["duration"] == work_stats["max"]
    assert stats["cached"]["hit_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert (stats["cached"]["count"], stats["cached"]["cached"]) == (3, 1)
    assert stats["flaky"]["retries"] == 1 and stats["flaky"]["failed"] == 1


def test_per_map_throughput_and_batches(real_run):
    backend, _, _, data = real_run
    maps = data["sessions"][0]["maps"]
    top = [m for m in maps if m["name"] in ("work", "flaky") and m["total"] == 6]
    assert [m["name"] for m in top] == ["work", "flaky"]
    for m in top:
        assert m["ran"] == 6 and m["backend"] == backend
        assert sum(m["throughput"]) > 0 and m["items_per_s"] > 0
        if backend == "inline":
            assert m["batches"] == []
        else:
            assert sum(size * count for size, count in m["batches"]) == 6
    assert top[1]["failures"] == 1


def test_datasets_and_log_records(real_run):
    _, _, _, data = real_run
    s = data["sessions"][0]
    (saved,) = s["datasets"]
    assert (saved["op"], saved["key"], saved["format"]) == ("saved", "summary.json", "json")
    assert saved["size"] == len(json.dumps({"doubled": [0, 2, 4, 6, 8, 10]}))
    levels = [r["level"] for r in s["logs"]]
    assert levels.count("info") == 5 and levels.count("error") == 2  # item 3, two attempts
    assert {r["name"] for r in s["logs"]} == {"flaky"}


def test_the_same_log_always_gives_the_same_page(real_run, tmp_path):
    _, log, _, _ = real_run
    first = build_report(log, tmp_path / "a.html").read_bytes()
    second = build_report(log, tmp_path / "b.html").read_bytes()
    assert first == second


def test_the_page_is_self_contained(real_run):
    _, _, html, _ = real_run
    text = html.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "default-src 'none'" in text  # the browser refuses any request the page makes
    assert re.findall(r"<script[^>]*\ssrc=", text) == []


# -- the command line --------------------------------------------------------------------


def daglite(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAGLITE_PROCESSORS": ""}
    return subprocess.run(
        [sys.executable, "-m", "daglite.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_daglite_report_writes_the_page(tmp_path):
    log, _ = run_pipeline(tmp_path, "inline")
    done = daglite("report", str(log), "-o", "out/page.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(Path("out/page.html"))
    assert page_data(tmp_path / "out/page.html")["sessions"][0]["counts"]["calls"] == 22
    default = daglite("report", str(log), cwd=tmp_path)
    assert default.returncode == 0 and (tmp_path / "run.html").is_file()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,name\n1,a\n", "input.txt is not a daglite event log (no line is a JSON event); "),
        ("", "input.txt is empty: there are no events to report"),
        (None, "cannot read input.txt: No such file or directory"),
    ],
)
def test_daglite_report_refuses_what_is_not_an_event_log(tmp_path, content, message):
    if content is not None:
        (tmp_path / "input.txt").write_text(content)
    done = daglite("report", "input.txt", "-o", "out.html", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"daglite: error: {message}")
    assert done.stderr.count("\n") == 1  # one line
    assert not (tmp_path / "out.html").exists()


@pytest.mark.parametrize(
    ("out", "message"),
    [
        (".", "daglite: error: . is a folder: name an .html file to write the report to"),
        ("log.txt/run.html", "daglite: error: cannot write the report log.txt/run.html: "),
    ],
)
def test_daglite_report_says_when_it_cannot_write(tmp_path, out, message):
    log, _ = run_pipeline(tmp_path, "inline")
    (tmp_path / "log.txt").write_text("a file, not a folder")
    done = daglite("report", str(log), "-o", out, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1


def test_daglite_report_of_one_session(tmp_path):
    log = tmp_path / "two.jsonl"
    settings = settings_for(tmp_path, event_log=str(log))
    with session(settings=settings) as first:
        work(1)
    with session(settings=settings) as second:
        work(2)
        work(3)
    done = daglite("report", str(log), "--session", second.session_id, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [s["id"] for s in page_data(tmp_path / "two.html")["sessions"]] == [second.session_id]
    unknown = daglite("report", str(log), "--session", "nope", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr == (
        f"daglite: error: {log} has no events of session 'nope'; its sessions: "
        f"{first.session_id}, {second.session_id}\n"
    )


def test_daglite_run_report_option(tmp_path):
    (tmp_path / "flow.py").write_text(
        "from daglite import task, workflow, map_tasks\n"
        "@task\ndef inc(x: int) -> int:\n    return x + 1\n"
        "@workflow\ndef flow(n: int = 4) -> list[int]:\n    return map_tasks(inc, range(n))\n"
    )
    done = daglite("run", "flow.py:flow", "--n", "5", "--report", "r/run.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    s = page_data(tmp_path / "r/run.html")["sessions"][0]
    assert s["entry"] == "flow" and s["counts"]["succeeded"] == 5
    assert s["command"][-5:] == ["flow.py:flow", "--n", "5", "--report", "r/run.html"]
    assert not list(tmp_path.glob("*.jsonl"))  # no event log was asked for, none is left


# -- large runs and cut logs ------------------------------------------------------------


def test_a_large_run_draws_a_sample_and_says_so(tmp_path):
    log = tmp_path / "run.jsonl"
    with session(backend="thread", settings=settings_for(tmp_path, event_log=str(log))):
        map_tasks(pipeline_item, range(400), return_exceptions=True)
    data = page_data(build_report(log, tmp_path / "run.html", max_bars=100))
    s = data["sessions"][0]
    bars = s["bars"]
    assert (len(bars["s"]), bars["total"]) == (100, 400)
    outcomes = [bars["outcomes"][o] for o in bars["o"]]
    assert outcomes.count("failed") == 40  # every failure is kept
    assert s["counts"]["calls"] == 400 and s["counts"]["failed"] == 40
    assert any(n.startswith("The timeline draws 100 of 400 task calls") for n in s["notes"])


@task
def pipeline_item(x: int) -> int:
    if x % 10 == 0:
        raise ValueError(x)
    return x


def test_a_log_cut_by_a_killed_run_still_gives_a_report(tmp_path):
    log, _ = run_pipeline(tmp_path, "inline")
    text = log.read_bytes()
    log.write_bytes(text[: text.index(b'"MapEnded"') + 40])  # killed while writing a line
    data = page_data(build_report(log, tmp_path / "cut.html"))
    (note,) = data["notes"]
    assert note.startswith("The log ends in a cut line")
    s = data["sessions"][0]
    assert s["status"] == "incomplete"
    assert any(n.startswith("The session has no end in the log") for n in s["notes"])
    assert s["counts"]["calls"] >= 6


def test_a_10000_item_map_makes_a_page_under_2_mb(tmp_path):
    log = tmp_path / "run.jsonl"
    with session(backend="thread", settings=settings_for(tmp_path, event_log=str(log))):
        map_tasks(pipeline_item, range(10_000), return_exceptions=True)
    html = build_report(log, tmp_path / "run.html")
    s = page_data(html)["sessions"][0]
    assert s["bars"]["total"] == len(s["bars"]["s"]) == 10_000  # all drawn, none sampled
    assert html.stat().st_size < 2_000_000


_meeting = threading.Barrier(70, timeout=60)


@task
def meet(x: int) -> int:
    _meeting.wait()  # all 70 items at once: 70 pool threads ran calls
    return x


def test_more_than_64_worker_threads_share_a_lane_per_process(tmp_path):
    log = tmp_path / "run.jsonl"
    settings = settings_for(tmp_path, event_log=str(log), max_workers=70)
    with session(backend="thread", settings=settings):
        map_tasks(meet, range(70), chunksize=1)
    s = page_data(build_report(log, tmp_path / "run.html"))["sessions"][0]
    assert [lane["label"] for lane in s["lanes"]] == [
        f"pid {os.getpid()} · 70 threads (coordinator)"
    ]
    assert any(n.startswith("More than 64 worker threads ran calls") for n in s["notes"])
    assert s["bars"]["l"] == [0] * 70


def test_store_credentials_never_reach_the_page(tmp_path):
    log = tmp_path / "run.jsonl"
    sid = record_one(log)
    saved = {
        "event": "DatasetSaved",
        "session_id": sid,
        "timestamp": 1e9,
        "key": "k.json",
        "store": "s3://AKIA:S3CRET@bucket/data",
        "format": "json",
        "duration": 0.1,
    }
    with log.open("a") as file:
        file.write(json.dumps(saved) + "\n")
    html = build_report(log, tmp_path / "run.html")
    assert "S3CRET" not in html.read_text()
    (row,) = page_data(html)["sessions"][0]["datasets"]
    assert row["store"] == "s3://***@bucket/data"


def record_one(log: Path) -> str:
    with session(settings=DagliteSettings(processors=(), event_log=str(log))) as ctx:
        work(1)
    return ctx.session_id


def test_events_with_missing_fields_are_skipped_and_noted(tmp_path):
    log = tmp_path / "run.jsonl"
    sid = record_one(log)
    broken = [
        {"event": "TaskSucceeded", "session_id": sid, "timestamp": 1e9},  # no task_id
        {"event": "MapEnded", "session_id": sid, "timestamp": 1e9, "map_id": []},
        {"event": "TaskFailed", "session_id": sid, "timestamp": 1e9, "task_id": "x",
         "duration": "long"},
        {"event": "TaskStarted", "session_id": sid, "timestamp": 1e9, "task_id": "y",
         "pid": "abc", "thread": 7, "parent_id": [1], "map_id": {}, "map_index": "z"},
    ]  # fmt: skip
    with log.open("a") as file:
        file.writelines(json.dumps(event) + "\n" for event in broken)
    s = page_data(build_report(log, tmp_path / "run.html"))["sessions"][0]
    assert s["counts"]["calls"] == 2  # the odd fields of "y" are left out, the call is kept
    assert "Events with missing or unreadable fields were skipped: MapEnded (1), " in " ".join(
        s["notes"]
    )


def test_workers_on_other_machines_get_lanes_of_their_own(tmp_path):
    # A run on two machines whose worker processes happen to share a pid (containers):
    # the log of a real process run, with one worker's events moved to another host.
    log, _ = run_pipeline(tmp_path, "process", max_workers=2)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    workers = sorted({e["pid"] for e in events if e.get("pid") and e["pid"] != os.getpid()})
    assert len(workers) == 2
    for event in events:
        if event.get("pid") == workers[1]:
            event.update(host="node-b", pid=workers[0])
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    s = page_data(build_report(log, tmp_path / "two-hosts.html"))["sessions"][0]
    here = os.uname().nodename
    assert sorted(lane["label"] for lane in s["lanes"]) == sorted([
        f"{here} · pid {os.getpid()} · MainThread (coordinator)",
        f"{here} · pid {workers[0]} · MainThread",
        f"node-b · pid {workers[0]} · MainThread",
    ])  # fmt: skip
    assert s["lanes"][0]["label"].endswith("(coordinator)")
