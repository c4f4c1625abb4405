"""Start-up of the `daglite` command and the cost of the logging processor, side by side.

    PYTHONDONTWRITEBYTECODE= python benchmarks/bench_cli.py [--quick]

Rows:
- `python -c pass`, `import daglite`, `daglite --version`, `daglite --help`: median (and min) wall
  time of fresh subprocesses (target: `daglite --help` <= 250 ms, DESIGN.md);
- a task call in a session with no processor, with the `logging` processor at `info`
  (one line per start and finish, written to /dev/null) and at `warning` (lines filtered
  out), each against a plain function call.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from daglite import session
from daglite import task
from daglite.processors.logs import LoggingProcessor
from daglite.settings import DagliteSettings


def wall_ms(command: list[str], runs: int) -> tuple[float, float]:
    subprocess.run(command, capture_output=True, check=True)  # warm the OS cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, min(times) * 1e3


def per_call_us(func, calls: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            func(1, 2)
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def add(x: int, y: int) -> int:
    return x + y


add_task = task(add)


def main() -> None:
    quick = "--quick" in sys.argv
    runs = 5 if quick else 15
    calls = 2_000 if quick else 20_000
    script = Path(sys.executable).with_name("daglite")
    daglite = [str(script)] if script.exists() else [sys.executable, "-m", "daglite.cli"]
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("warning: PYTHONDONTWRITEBYTECODE is set: start-up figures include compiling")

    python = wall_ms([sys.executable, "-c", "pass"], runs)
    rows = [("python -c pass", python)]
    imported = wall_ms([sys.executable, "-c", "import daglite"], runs)
    rows.append(("python -c 'import daglite'", imported))
    rows.append(("daglite --version", wall_ms([*daglite, "--version"], runs)))
    rows.append(("daglite --help", wall_ms([*daglite, "--help"], runs)))
    print(f"{'start-up (wall)':<34}{'median ms':>10}{'min ms':>9}{'x python':>10}")
    for name, (median, fastest) in rows:
        print(f"{name:<34}{median:>10.1f}{fastest:>9.1f}{median / python[0]:>10.2f}")
    print("target: daglite --help <= 250 ms\n")

    plain = per_call_us(add, calls)
    quiet = DagliteSettings(processors=())
    with open(os.devnull, "w") as devnull:
        figures = []
        with session(settings=quiet):
            figures.append(("task call in a session, no processor", per_call_us(add_task, calls)))
        with session(settings=quiet, plugins=[LoggingProcessor("info", "console", devnull)]):
            figures.append(("  + logging, info (2 lines/call)", per_call_us(add_task, calls)))
        with session(settings=quiet, plugins=[LoggingProcessor("info", "json", devnull)]):
            figures.append(("  + logging, info, json", per_call_us(add_task, calls)))
        with session(settings=quiet, plugins=[LoggingProcessor("warning", "console", devnull)]):
            figures.append(("  + logging, warning (filtered)", per_call_us(add_task, calls)))
    print(f"{'per call':<40}{'µs':>9}{'x plain':>10}")
    print(f"{'plain function call':<40}{plain:>9.3f}{1:>10.1f}")
    for name, us in figures:
        print(f"{name:<40}{us:>9.3f}{us / plain:>10.1f}")


if __name__ == "__main__":
    main()
