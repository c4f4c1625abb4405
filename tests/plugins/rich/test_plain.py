"""The rich processor when its output is not a terminal: plain lines, no live region."""

from __future__ import annotations

import io
import re

from rich.console import Console

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite import workflow
from daglite_rich import RichProcessor


def plain_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=False, width=80)


def test_plain_output_has_no_bars_colours_or_cursor_moves(every_item_progress):
    console = plain_console()
    processor = RichProcessor(console=console, plain_interval=0)
    live_inside = []

    @task
    def square(x: int) -> int:
        live_inside.append(processor.live)
        if x == 2:
            raise ValueError("no twos")
        return x * x

    @workflow
    def flow() -> list:
        return map_tasks(square, range(4), return_exceptions=True)

    with session(plugins=[processor]):
        flow()

    assert live_inside == [False] * 4
    assert processor.display() is None
    out = console.file.getvalue()
    assert "\x1b" not in out
    lines = [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in out.splitlines()]
    assert lines[0] == "▸ workflow flow"
    assert lines[1] == "▸ map square: 4 items on inline"
    progress = [line for line in lines if line.startswith("… map square:")]
    assert [line.split()[3] for line in progress] == ["1/4", "2/4", "3/4", "4/4"]
    assert progress[-1].split()[4] == "(100%)"
    assert progress[-1].endswith("1 failed")
    assert any(re.fullmatch(r"✘ square\[2\] failed \(.+\): ValueError: no twos", x) for x in lines)
    assert re.fullmatch(r"✘ map square: 4/4 items in .+ 1 failed", lines[-3])
    assert re.fullmatch(r"✔ workflow flow finished in .+", lines[-2])
    assert re.fullmatch(
        r"✔ daglite session finished in .+: 4 tasks run, 0 cache hits, 1 failure, 1 map", lines[-1]
    )


def test_plain_progress_lines_are_rate_limited():
    console = plain_console()
    processor = RichProcessor(console=console)  # at most one line per map every 5 s

    @task
    def ident(x: int) -> int:
        return x

    with session(plugins=[processor]):
        map_tasks(ident, iter(range(50)))

    out = console.file.getvalue()
    assert "… map" not in out
    assert "map ident: unknown number of items on inline" in out
    assert re.search(r"✔ map ident: 50 items in ", out)


def test_long_lines_are_not_hard_wrapped_when_plain():
    console = plain_console()
    processor = RichProcessor(console=console)
    name = "a_task_with_a_really_long_name_" * 4

    @task(name=name)
    def long_named() -> int:
        return 1

    with session(plugins=[processor]):
        long_named()

    lines = console.file.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert re.fullmatch(rf"\d\d:\d\d:\d\d ✔ {name} \S+ m?s", lines[0])
    assert len(lines[0]) > 80


def test_ascii_symbols_when_the_output_cannot_encode_unicode():
    raw = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    console = Console(file=raw, force_terminal=False, width=80)
    processor = RichProcessor(console=console)

    @task
    def one() -> int:
        return 1

    with session(plugins=[processor]):
        one()

    raw.flush()
    out = raw.buffer.getvalue().decode("ascii")  # type: ignore[attr-defined]
    assert re.search(r"^\d\d:\d\d:\d\d ok one ", out, re.M)
    assert re.search(r"^ok daglite session finished in ", out, re.M)
