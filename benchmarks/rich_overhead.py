"""What the rich processor costs per map item, side by side in one run.

Runs the same 20 000-item `map_tasks` over a trivial task with: a plain Python loop, a
session without processors, a session with a processor that asks only for `MapEnded`
(the cost of keeping a map's counts), a session with a no-op processor that takes every
event (the cost of building an event per item), and the rich processor drawing plain
lines and a live terminal display (into a string buffer that rich treats as a terminal).
Prints microseconds per item and the ratios to the plain loop and to the session without
processors (issue 15's target for rich: at most 1.5x that).

The rich processor asks for no per-call event of map items (`Interest(map_items=False)`):
its bars follow `MapProgress`, so its cost per item is that of the counts.

    python benchmarks/rich_overhead.py
"""

from __future__ import annotations

import io
import time

from rich.console import Console

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.plugin import Interest
from daglite.settings import DagliteSettings
from daglite_rich import RichProcessor

QUIET = DagliteSettings(processors=())  # measure the plugin alone, not the default logging

N = 20_000
ROUNDS = 7


@task
def inc(x: int) -> int:
    return x + 1


class MapEndedOnly:
    """A processor that asks only for the end of maps (their counts are kept per item)."""

    interest = Interest(kinds={"MapEnded"})

    def __call__(self, event) -> None:
        pass


def plain_loop() -> None:
    [inc.__wrapped__(x) for x in range(N)]


def mapped(plugins: list) -> None:
    with session(plugins=plugins, settings=QUIET):
        map_tasks(inc, range(N))


def rich(terminal: bool) -> list:
    console = Console(file=io.StringIO(), force_terminal=terminal, width=120)
    return [RichProcessor(console=console)]


CASES = {
    "plain python loop": plain_loop,
    "session, no processor": lambda: mapped([]),
    "session, MapEnded only": lambda: mapped([MapEndedOnly()]),
    "session, no-op processor": lambda: mapped([lambda event: None]),
    "rich, plain lines": lambda: mapped(rich(False)),
    "rich, live terminal": lambda: mapped(rich(True)),
}


def main() -> None:
    results = dict.fromkeys(CASES, float("inf"))
    for _ in range(ROUNDS):  # interleaved, so drift of the machine hits every case alike
        for name, case in CASES.items():
            start = time.perf_counter()
            case()
            results[name] = min(results[name], time.perf_counter() - start)
    base = results["plain python loop"]
    bare = results["session, no processor"]
    print(f"{'case':28} {'us/item':>9} {'x plain':>9} {'x no proc':>10}")
    for name, seconds in results.items():
        per_item = seconds / N * 1e6
        print(f"{name:28} {per_item:9.2f} {seconds / base:9.1f} {seconds / bare:10.2f}")


if __name__ == "__main__":
    main()
