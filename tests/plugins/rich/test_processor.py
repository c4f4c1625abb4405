"""The rich processor on a (recorded) terminal, driven by real sessions and maps."""

from __future__ import annotations

import logging
import re
import time

import pytest

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite import workflow
from daglite.settings import DagliteSettings
from daglite_rich import RichProcessor

from .conftest import screen
from .conftest import snapshot
from .conftest import terminal_console

BAR = "━"


@pytest.mark.parametrize("backend", ["inline", "thread"])
def test_bar_counts_items_and_failures_while_the_map_runs(console, backend, every_item_progress):
    processor = RichProcessor(console=console)
    seen: dict[int, str] = {}

    @task
    def square(x: int) -> int:
        if x == 2:
            raise ValueError("two is not welcome")
        if x == 6:
            time.sleep(0.05)  # let the other threads finish what they took
            seen[x] = snapshot(processor)
        return x * x

    with session(plugins=[processor], settings=DagliteSettings(max_workers=2)):
        results = map_tasks(square, range(8), backend=backend, return_exceptions=True)

    assert isinstance(results[2], Exception)
    row = next(line for line in seen[6].splitlines() if "square" in line)
    assert f"square ({backend})" in row
    assert BAR in row
    done = int(re.search(r"(\d+)/8", row).group(1))
    assert 1 <= done <= 7 if backend == "thread" else done == 6
    assert "✘ 1 failed" in row


def test_unknown_total_shows_a_count_without_total(console, every_item_progress):
    processor = RichProcessor(console=console)
    seen = []

    @task
    def item(x: int) -> int:
        if x == 3:
            seen.append(snapshot(processor))
        return x

    with session(plugins=[processor]):
        map_tasks(item, (n for n in range(5)))

    row = next(line for line in seen[0].splitlines() if "item (inline)" in line)
    assert "3/?" in row


def test_status_rows_show_the_session_counters_and_the_running_workflow_task(console):
    processor = RichProcessor(console=console)
    seen = []

    @task
    def double(x: int) -> int:
        return 2 * x

    @task
    def look() -> None:
        seen.append(snapshot(processor))

    @workflow
    def flow() -> None:
        map_tasks(double, range(4))
        look()

    with session(plugins=[processor], backend="thread"):
        flow()

    lines = seen[0].splitlines()
    assert re.search(r"daglite session \(thread\)\s+0:00:0\d\s+4 tasks run", lines[0])
    assert re.search(r"workflow flow\s+0:00:0\d\s+running look", lines[1])
    assert not any("double" in line for line in lines), "a finished map keeps no bar"


def test_nested_maps_get_an_indented_bar_of_their_own(console, every_item_progress):
    processor = RichProcessor(console=console)
    seen = []

    @task
    def leaf(x: int) -> int:
        if x == 1 and not seen:
            seen.append(snapshot(processor))
        return x

    @task
    def branch(n: int) -> list[int]:
        return map_tasks(leaf, range(3))

    with session(plugins=[processor]):
        map_tasks(branch, range(2))

    bars = [line for line in seen[0].splitlines() if BAR in line]
    assert bars[0].startswith("branch (inline)")
    assert bars[0].split(BAR)[-1].split()[0] == "0/2"
    assert bars[1].startswith("  leaf (inline)")
    assert "1/3" in bars[1]


def test_end_of_session_leaves_log_lines_and_summary_only(console):
    processor = RichProcessor(console=console)

    @task(retries=1, retry_delay=0.0)
    def shaky(x: int) -> int:
        if x == 1:
            raise KeyError("missing")
        return x

    @task
    def finish(values: list) -> int:
        return len(values)

    @workflow
    def flow() -> int:
        return finish(map_tasks(shaky, range(3), return_exceptions=True))

    with session(plugins=[processor], backend="thread"):
        assert flow() == 3
        assert processor.live

    assert not processor.live
    lines = screen(console)
    text = "\n".join(lines)
    assert BAR not in text
    assert "daglite session (" not in text, "the status rows are erased"
    assert re.search(r"↻ shaky\[1\] attempt 1 failed \(KeyError: 'missing'\) retrying in", text)
    assert re.search(r"✘ shaky\[1\] failed after 2 attempts \(.+\): KeyError: 'missing'", text)
    assert re.search(r"✘ map shaky: 3/3 items in .+ 1 failed", text)
    assert re.search(r"✔ finish \d", text)
    assert re.search(r"✔ workflow flow finished in", text)
    assert re.match(
        r"✔ daglite session finished in .+: 4 tasks run, 0 cache hits, 1 failure, 1 retry, 1 map$",
        lines[-1],
    )
    styled = console.export_text(styles=True)
    assert "\x1b[1;31m✘" in styled, "failures are bold red"
    assert "\x1b[33m↻" in styled, "retries are yellow"


def test_failed_session_summary_names_the_error(console):
    processor = RichProcessor(console=console)

    @task
    def boom() -> None:
        raise RuntimeError("the disk is full\nmore details")

    with pytest.raises(Exception, match="the disk is full"), session(plugins=[processor]):
        boom()

    last = screen(console)[-1]
    assert re.match(
        r"✘ daglite session failed after .+: 1 task run, 0 cache hits, 1 failure "
        r"\(TaskError: .*the disk is full\)$",
        last,
    )


def test_interrupted_session_says_so(console):
    processor = RichProcessor(console=console)
    with pytest.raises(KeyboardInterrupt), session(plugins=[processor]):
        raise KeyboardInterrupt

    assert re.match(r"✘ daglite session interrupted after .+: 0 tasks run", screen(console)[-1])


def test_timeouts_are_logged(console):
    processor = RichProcessor(console=console)

    @task(timeout=0.05)
    def slow() -> None:
        time.sleep(1)

    with pytest.raises(Exception, match="timed out"), session(plugins=[processor]):
        slow()

    text = "\n".join(screen(console))
    assert "◷ slow attempt 1 timed out after 50.0 ms" in text


def test_many_items_on_threads_with_fast_redraws_lose_no_event(caplog):
    console = terminal_console()
    processor = RichProcessor(console=console, refresh_per_second=100)

    @task
    def tick(x: int) -> int:
        time.sleep(0.0005)
        return x

    with (
        caplog.at_level(logging.ERROR, logger="daglite"),
        session(plugins=[processor], backend="thread"),
    ):
        for _ in range(3):
            assert map_tasks(tick, range(300), chunksize=4) == list(range(300))

    assert not caplog.records, "the processor was never disabled"
    lines = screen(console)
    assert sum("map tick: 300/300 items" in line for line in lines) == 3
    assert "900 tasks run, 0 cache hits, 0 failures, 3 maps" in lines[-1]


def _written(console) -> str:
    """All the console wrote so far, without its escape codes."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", console.file.getvalue())


def _wait_until_drawn(console) -> None:
    """Wait (bounded) until the live region is on screen: the session's status row shows."""
    deadline = time.monotonic() + 60
    while "daglite session (" not in _written(console):  # drawn by rich's thread
        assert time.monotonic() < deadline, "the region was never drawn"
        time.sleep(0.01)


def test_task_prints_land_above_the_live_region_as_whole_lines(console, capsys):
    processor = RichProcessor(console=console, redirect=True, refresh_per_second=50)

    @task
    def chatty(x: int) -> int:
        print(f"item {x} says hello")
        return x

    with session(plugins=[processor], backend="thread"):
        _wait_until_drawn(console)  # prints are moved once the display is live
        map_tasks(chatty, range(6))

    assert capsys.readouterr().out == "", "prints went to the console while it was live"
    lines = screen(console)
    assert sorted(line for line in lines if "says hello" in line) == [
        f"item {x} says hello" for x in range(6)
    ]


def test_one_processor_serves_consecutive_sessions(console):
    processor = RichProcessor(console=console, show_tasks=False)

    @task
    def one() -> int:
        return 1

    for _ in range(2):
        with session(plugins=[processor]):
            one()
            one()

    summaries = [line for line in screen(console) if "daglite session finished" in line]
    assert len(summaries) == 2
    assert all(": 2 tasks run," in line for line in summaries)
    assert not any(line.startswith("✔ one") for line in screen(console)), "show_tasks=False"


def test_gather_tasks_gets_a_bar_too(console, every_item_progress):
    import asyncio

    from daglite import gather_tasks

    processor = RichProcessor(console=console)
    seen = []

    @task
    async def fetch(x: int) -> int:
        await asyncio.sleep(0.01 * x)
        if x == 3:
            seen.append(snapshot(processor))
        return x

    async def main() -> list:
        with session(plugins=[processor]):
            return await gather_tasks(fetch, range(5))

    assert asyncio.run(main()) == list(range(5))
    row = next(line for line in seen[0].splitlines() if "fetch (asyncio)" in line)
    assert "3/5" in row
    assert re.search(r"✔ map fetch: 5/5 items in ", "\n".join(screen(console)))


@task
def inc(x: int) -> int:
    return x + 1


def test_a_session_shorter_than_one_refresh_period_never_draws_the_region(console):
    processor = RichProcessor(console=console, refresh_per_second=0.001)  # one frame per 1000 s
    with session(plugins=[processor], backend="thread"):
        assert map_tasks(inc, range(50)) == list(range(1, 51))
        assert processor.live
        assert "daglite session (thread)" in snapshot(processor), "ready, only not drawn"
        assert "daglite session (" not in _written(console)
    assert BAR not in _written(console) and "daglite session (" not in _written(console)
    lines = screen(console)
    assert re.search(r"✔ map inc: 50/50 items in ", lines[0])
    assert re.match(r"✔ daglite session finished in .+: 50 tasks run", lines[1])
    assert len(lines) == 2


def test_the_region_is_drawn_from_the_first_refresh_and_erased_at_the_end(console):
    processor = RichProcessor(console=console, refresh_per_second=1000)
    with session(plugins=[processor], backend="inline"):
        _wait_until_drawn(console)
        assert map_tasks(inc, range(5)) == list(range(1, 6))
    lines = screen(console)
    assert "daglite session (" not in "\n".join(lines), "the region is erased"
    assert re.search(r"✔ map inc: 5/5 items in ", lines[0])
    assert re.match(r"✔ daglite session finished in .+: 5 tasks run", lines[1])
    assert len(lines) == 2
