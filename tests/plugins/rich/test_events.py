"""Event sequences the core emits for features built elsewhere (caching, datasets, relays).

These feed the processor the same event objects the run pipeline builds, in the order it
emits them, so they pin down what the screen shows for each.
"""

from __future__ import annotations

import re

from daglite import events
from daglite_rich import RichProcessor

from .conftest import screen
from .conftest import snapshot

S = "s-1"


def ids(task_id: str, name: str, map_id: str | None = None, index: int | None = None) -> dict:
    return {"session_id": S, "task_id": task_id, "name": name, "map_id": map_id, "map_index": index}


def test_cache_hits_in_a_map_are_counted_on_its_bar_and_in_the_summary(console):
    processor = RichProcessor(console=console)
    progress = {"session_id": S, "map_id": "m", "name": "fetch", "total": 4, "retried": 0}
    processor(events.SessionStarted(session_id=S, backend="thread"))
    processor(events.MapStarted(session_id=S, map_id="m", name="fetch", backend="thread", total=4))
    processor(events.MapProgress(**progress, done=0, cached=2, failures=0, elapsed=0.1))
    processor(
        events.DatasetSaved(
            session_id=S,
            key="fetch/2.pkl",
            store="file",
            format="pickle",
            duration=0.01,
            task_id="t2",
            map_index=2,
        )
    )
    processor(events.MapProgress(**progress, done=1, cached=2, failures=0, elapsed=0.3))

    row = next(line for line in snapshot(processor).splitlines() if "fetch (thread)" in line)
    assert "3/4" in row
    assert "● 2 cached" in row
    assert "failed" not in row

    processor(
        events.MapEnded(
            session_id=S,
            map_id="m",
            name="fetch",
            total=4,
            done=2,
            cached=2,
            failures=0,
            duration=0.5,
        )
    )
    processor(events.SessionEnded(session_id=S, duration=0.6, status="success"))

    lines = screen(console)
    assert not any("saved dataset" in line for line in lines), "no line per map item dataset"
    assert re.search(r"✔ map fetch: 4/4 items in 0.50 s \(8.0/s\) 2 cached$", lines[0])
    assert lines[-1] == (
        "✔ daglite session finished in 0.60 s: 2 tasks run, 2 cache hits, 0 failures, 1 map"
    )


def test_map_counts_are_totals_and_item_failures_are_not_counted_twice(console):
    processor = RichProcessor(console=console, show_tasks=False)
    progress = {"session_id": S, "map_id": "m", "name": "fetch", "total": 3, "retried": 0}
    processor(events.SessionStarted(session_id=S, backend="thread"))
    processor(events.MapStarted(session_id=S, map_id="m", name="fetch", backend="thread", total=3))
    processor(events.MapProgress(**progress, done=1, cached=0, failures=0, elapsed=0.1))
    processor(
        events.TaskFailed(
            **ids("t1", "fetch", "m", 1),
            duration=0.1,
            attempts=1,
            error_type="ValueError",
            error_message="bad item",
        )
    )
    processor(events.MapProgress(**progress, done=1, cached=0, failures=1, elapsed=0.2))

    row = next(line for line in snapshot(processor).splitlines() if "fetch (thread)" in line)
    assert "2/3" in row and "✘ 1 failed" in row

    processor(
        events.MapEnded(
            session_id=S, map_id="m", name="fetch", total=3, done=2, failures=1, duration=0.3
        )
    )
    processor(events.SessionEnded(session_id=S, duration=0.4, status="success"))

    lines = screen(console)
    assert sum("ValueError: bad item" in line for line in lines) == 1
    assert lines[-1] == (
        "✔ daglite session finished in 0.40 s: 3 tasks run, 0 cache hits, 1 failure, 1 map"
    )


def test_cache_hits_and_datasets_outside_maps_get_a_line(console):
    processor = RichProcessor(console=console)
    processor(events.SessionStarted(session_id=S, backend="inline"))
    processor(events.CacheHit(**ids("t1", "load"), key="abc"))
    processor(events.TaskSucceeded(**ids("t1", "load"), duration=0.001, cached=True))
    processor(events.TaskStarted(**ids("t2", "report")))
    processor(
        events.DatasetLoaded(
            session_id=S,
            key="raw.csv",
            store="memory://",
            format="csv",
            duration=0.25,
            task_id="t2",
        )
    )
    processor(
        events.DatasetSaved(
            session_id=S,
            key="out/report.txt",
            store="file",
            format=None,
            duration=0.002,
            task_id="t2",
        )
    )
    processor(events.TaskSucceeded(**ids("t2", "report"), duration=0.3))
    processor.close()

    lines = [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in screen(console)]
    assert lines == [
        "● load cache hit",
        "↑ loaded dataset raw.csv (memory://, csv) in 0.25 s",
        "↓ saved dataset out/report.txt (file) in 2.0 ms",
        "✔ report 0.30 s",
        lines[-1],
    ]
    assert re.match(
        r"✔ daglite session finished in .+: 1 task run, 1 cache hit, 0 failures$", lines[-1]
    )


def test_events_of_a_map_that_already_ended_are_still_counted(console):
    processor = RichProcessor(console=console)
    processor(events.SessionStarted(session_id=S, backend="process"))
    processor(
        events.MapStarted(session_id=S, map_id="m", name="work", backend="process", total=None)
    )
    processor(
        events.MapEnded(session_id=S, map_id="m", name="work", total=1, failures=1, duration=0.1)
    )
    processor(
        events.TaskFailed(
            **ids("t", "work", "m", 0),
            duration=0.05,
            attempts=1,
            error_type="OSError",
            error_message="gone",
        )
    )
    processor(
        events.SessionEnded(
            session_id=S,
            duration=0.2,
            status="failure",
            error_type="TaskError",
            error_message="task 'work' failed",
        )
    )

    lines = [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in screen(console)]
    assert lines[0] == "✘ map work: 1 item in 0.10 s (10.0/s) 1 failed"
    assert re.fullmatch(r"✘ work\[0\] failed \(50.0 ms\): OSError: gone", lines[1])
    assert lines[-1] == (
        "✘ daglite session failed after 0.20 s: 1 task run, 0 cache hits, 1 failure, "
        "1 map (TaskError: task 'work' failed)"
    )


def test_a_nested_session_sharing_the_processor_does_not_end_the_display(console):
    processor = RichProcessor(console=console)
    processor(events.SessionStarted(session_id=S, backend="inline"))
    processor(events.SessionStarted(session_id="inner", backend="inline"))
    processor(events.SessionEnded(session_id="inner", duration=0.1, status="success"))
    assert processor.live
    processor(events.SessionEnded(session_id=S, duration=0.3, status="success"))
    assert not processor.live
    assert len(screen(console)) == 1
