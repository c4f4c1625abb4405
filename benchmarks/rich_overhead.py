"""What the rich processor costs per map item, side by side in one run.

Runs the same 20 000-item `map_tasks` over a trivial task with: a plain Python loop, a
session without processors, a session with a no-op processor (the cost of building
events), and the rich processor drawing plain lines and a live terminal display (into a
string buffer). Prints microseconds per item and the ratio to the plain loop. Then the
processor alone: the two events of every item fed straight to it, which isolates its own
cost from the (noisier) cost of running the items.

    python benchmarks/rich_overhead.py
"""

from __future__ import annotations

import io
import time

from rich.console import Console

from daglite import events
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.settings import DagliteSettings
from daglite_rich import RichProcessor

QUIET = DagliteSettings(processors=())  # measure the plugin alone, not the default logging

N = 20_000
ROUNDS = 7


@task
def inc(x: int) -> int:
    return x + 1


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
    noop = results["session, no-op processor"]
    print(f"{'case':28} {'us/item':>9} {'x plain':>9} {'x no-op':>9}")
    for name, seconds in results.items():
        per_item = seconds / N * 1e6
        print(f"{name:28} {per_item:9.2f} {seconds / base:9.1f} {seconds / noop:9.2f}")


def processor_alone() -> None:
    items = []
    for index in range(N):
        ids = {"session_id": "s", "task_id": f"t{index}", "name": "inc", "map_id": "m"}
        items += [
            events.TaskStarted(**ids, map_index=index),
            events.TaskSucceeded(**ids, map_index=index, duration=0.0),
        ]
    print(f"\n{'processor alone':28} {'us/item':>9}")
    for label, terminal in (("rich, plain lines", False), ("rich, live terminal", True)):
        best = float("inf")
        for _ in range(ROUNDS):
            (processor,) = rich(terminal)
            processor(events.SessionStarted(session_id="s", backend="inline"))
            processor(
                events.MapStarted(session_id="s", map_id="m", name="inc", backend="inline", total=N)
            )
            start = time.perf_counter()
            for event in items:
                processor(event)
            best = min(best, time.perf_counter() - start)
            processor.close()
        print(f"{label:28} {best / N * 1e6:9.2f}")


if __name__ == "__main__":
    main()
    processor_alone()
