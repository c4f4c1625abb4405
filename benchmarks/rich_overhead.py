"""What the rich processor costs per map item, side by side in one run.

Runs the same 10 000-item `map_tasks` over a trivial task, on each of the inline, thread
and process backends, with: a plain Python loop, a
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

N = 10_000
ROUNDS = 5
BACKENDS = ("inline", "thread", "process")


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


def mapped(plugins: list, backend: str) -> None:
    with session(plugins=plugins, settings=QUIET, backend=backend):
        map_tasks(inc, range(N))


def rich(terminal: bool) -> list:
    console = Console(file=io.StringIO(), force_terminal=terminal, width=120)
    return [RichProcessor(console=console)]


CASES = {
    "session, no processor": lambda backend: mapped([], backend),
    "session, MapEnded only": lambda backend: mapped([MapEndedOnly()], backend),
    "session, no-op processor": lambda backend: mapped([lambda event: None], backend),
    "rich, plain lines": lambda backend: mapped(rich(False), backend),
    "rich, live terminal": lambda backend: mapped(rich(True), backend),
}


def best_of(case, *args) -> float:
    return min(_timed(case, *args) for _ in range(ROUNDS))


def _timed(case, *args) -> float:
    start = time.perf_counter()
    case(*args)
    return time.perf_counter() - start


def main() -> None:
    base = best_of(plain_loop)
    print(f"{'backend':8} {'case':28} {'us/item':>9} {'x plain':>9} {'x no proc':>10}")
    for backend in BACKENDS:
        results = dict.fromkeys(CASES, float("inf"))
        for _ in range(ROUNDS):  # interleaved, so drift of the machine hits every case alike
            for name, case in CASES.items():
                results[name] = min(results[name], _timed(case, backend))
        bare = results["session, no processor"]
        for name, seconds in results.items():
            ratios = f"{seconds / base:9.1f} {seconds / bare:10.2f}"
            print(f"{backend:8} {name:28} {seconds / N * 1e6:9.2f} {ratios}")


if __name__ == "__main__":
    main()
