"""What the rich processor costs on a map, side by side in one run.

Runs the same 10 000-item `map_tasks` over a trivial task, in a session of its own, on each
of the inline, thread and process backends, with:

- no processor (the reference of the ratios);
- a processor that asks only for `MapEnded` (the cost of keeping a map's counts);
- a no-op processor that takes every event (the cost of building an event per item);
- `plugins=["rich"]` with standard error piped (to /dev/null): rich prints plain lines;
- `plugins=["rich"]` with standard error on a pseudo-terminal (`os.openpty()`, 120x40,
  `TERM=xterm-256color`): rich keeps its live region of status rows and bars. The
  terminal's side is another process that reads everything written, as a terminal
  emulator would, so writes never block and its reading costs this process nothing.

A plain Python loop over the same items is shown too. Prints microseconds per item, and
the ratios to the plain loop and to the session without processors (issue 15's target
for rich on a pseudo-terminal: at most 1.5x). Each case's figure is the best of `--rounds`
sessions, interleaved with the other cases so drift of the machine hits all alike; with
`--runs N` the whole table is measured N times and the medians and ranges of the ratios
follow, each run with the load average it started at.

    python benchmarks/rich_overhead.py [--runs 3] [--rounds 5]

Unix only (a pseudo-terminal).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import statistics
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from contextlib import contextmanager

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.plugin import Interest
from daglite.settings import DagliteSettings

QUIET = DagliteSettings(processors=())  # no default logging: each case names its processors

N = 10_000
BACKENDS = ("inline", "thread", "process")
ROWS, COLUMNS = 40, 120

#: The terminal's side of the pseudo-terminal: reads until the other side closes.
DRAIN = """
import os
while True:
    try:
        if not os.read(0, 1 << 16):
            break
    except OSError:
        break
"""


@task
def inc(x: int) -> int:
    return x + 1


class MapEndedOnly:
    """A processor that asks only for the end of maps (their counts are kept per item)."""

    interest = Interest(kinds={"MapEnded"})

    def __call__(self, event) -> None:
        pass


def plain_loop(backend: str) -> None:
    [inc.__wrapped__(x) for x in range(N)]


def mapped(plugins: list, backend: str) -> None:
    with session(plugins=plugins, settings=QUIET, backend=backend):
        map_tasks(inc, range(N))


@contextmanager
def stderr_to(fd: int):
    """Standard error (file descriptor 2, and so `sys.stderr`) goes to `fd` meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def open_terminal() -> tuple[int, subprocess.Popen]:
    """A pseudo-terminal of `ROWS` x `COLUMNS`: its program side, and the reader of the other."""
    terminal, program = os.openpty()
    fcntl.ioctl(program, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    reader = subprocess.Popen([sys.executable, "-c", DRAIN], stdin=terminal)
    os.close(terminal)
    return program, reader


def cases(piped: int, tty: int) -> dict[str, Callable[[str], None]]:
    def rich_on(fd: int) -> Callable[[str], None]:
        def case(backend: str) -> None:
            with stderr_to(fd):
                mapped(["rich"], backend)

        return case

    return {
        "plain loop": plain_loop,
        "session, no processor": lambda backend: mapped([], backend),
        "session, MapEnded only": lambda backend: mapped([MapEndedOnly()], backend),
        "session, no-op processor": lambda backend: mapped([lambda event: None], backend),
        "rich, stderr piped": rich_on(piped),
        "rich, stderr a pty": rich_on(tty),
    }


def _timed(case: Callable[[str], None], backend: str) -> float:
    start = time.perf_counter()
    case(backend)
    return time.perf_counter() - start


def measure(table: dict[str, Callable[[str], None]], rounds: int) -> dict[str, dict[str, float]]:
    """Seconds per map, best of `rounds`, for each backend and case."""
    results: dict[str, dict[str, float]] = {}
    for backend in BACKENDS:
        best = dict.fromkeys(table, float("inf"))
        for _ in range(rounds):  # interleaved, so drift of the machine hits every case alike
            for name, case in table.items():
                best[name] = min(best[name], _timed(case, backend))
        results[backend] = best
    return results


def print_run(results: dict[str, dict[str, float]], load: float) -> None:
    print(f"load average (1 min) at the start: {load:.2f}")
    print(f"{'backend':8} {'case':26} {'us/item':>9} {'x plain':>9} {'x no proc':>10}")
    for backend, best in results.items():
        plain, bare = best["plain loop"], best["session, no processor"]
        for name, seconds in best.items():
            ratios = f"{seconds / plain:9.1f} {seconds / bare:10.2f}"
            print(f"{backend:8} {name:26} {seconds / N * 1e6:9.2f} {ratios}")
    print()


def print_summary(runs: list[dict[str, dict[str, float]]], loads: list[float]) -> None:
    starts = ", ".join(f"{load:.2f}" for load in loads)
    print(f"{len(runs)} runs, load averages at their starts: {starts}")
    print(f"{'backend':8} {'case':26} {'x no proc: median':>18} {'range':>13}")
    for backend in BACKENDS:
        for name in runs[0][backend]:
            if name == "plain loop":
                continue
            ratios = [run[backend][name] / run[backend]["session, no processor"] for run in runs]
            low, high = min(ratios), max(ratios)
            print(
                f"{backend:8} {name:26} {statistics.median(ratios):18.2f} {low:6.2f}-{high:<6.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="measure the whole table N times")
    parser.add_argument("--rounds", type=int, default=5, help="sessions per case (best of)")
    args = parser.parse_args()
    os.environ["TERM"] = "xterm-256color"  # what a terminal emulator sets: rich draws live
    piped = os.open(os.devnull, os.O_WRONLY)
    tty, reader = open_terminal()
    try:
        table = cases(piped, tty)
        runs, loads = [], []
        for _ in range(args.runs):
            loads.append(os.getloadavg()[0])
            runs.append(measure(table, args.rounds))
            print_run(runs[-1], loads[-1])
        if len(runs) > 1:
            print_summary(runs, loads)
    finally:
        os.close(tty)
        os.close(piped)
        reader.wait(timeout=30)


if __name__ == "__main__":
    main()
