"""Start-up of the `daglite` command and the cost of the logging processor, side by side.

    PYTHONDONTWRITEBYTECODE= python benchmarks/bench_cli.py [--quick]

Rows:
- `python -c pass`, `import daglite`, `daglite --version`, `daglite --help` and `daglite run`
  of a one-task workflow (log lines piped, so JSON): median and min wall time and median
  CPU time of fresh subprocesses taking turns, and how much more each costs than
  `python -c pass` (targets: `import daglite` <= 100 ms, `daglite --help` <= 250 ms,
  DESIGN.md);
- a task call in a session with no processor, with the `logging` processor at `info`
  (one line per start and finish, written to /dev/null) and at `warning` (lines filtered
  out), each against a plain function call.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from daglite import session
from daglite import task
from daglite.processors.logs import LoggingProcessor
from daglite.settings import DagliteSettings


def startup_ms(commands: list[list[str]], runs: int) -> list[tuple[float, float, float]]:
    """(median wall, min wall, median CPU) milliseconds of each command as a fresh process.

    The commands take turns in every round (after a warm-up round that also writes the
    bytecode), so a burst of load on a shared machine hits all of them alike; CPU time (the
    child's user + system time) is the steadier figure when the wall clock is noisy.
    """
    wall: list[list[float]] = [[] for _ in commands]
    cpu: list[list[float]] = [[] for _ in commands]
    for round_ in range(runs + 1):
        for command, walls, cpus in zip(commands, wall, cpu):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if round_:
                walls.append(elapsed * 1e3)
                used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                cpus.append(used * 1e3)
    return [(statistics.median(w), min(w), statistics.median(c)) for w, c in zip(wall, cpu)]


def per_call_us(func, calls: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            func(1, 2)
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


#: The workflow of the `daglite run` row: one task call, so the row is the command's start-up
#: (the log lines go to a pipe: JSON lines).
FLOWS = """
from daglite import task, workflow

@task
def double(x: int) -> int:
    return 2 * x

@workflow
def twice(x: int = 2) -> int:
    return double(x)
"""


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

    flows = Path(tempfile.mkdtemp()) / "flows.py"
    flows.write_text(FLOWS)
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("python -c 'import daglite'", [sys.executable, "-c", "import daglite"]),
        ("daglite --version", [*daglite, "--version"]),
        ("daglite --help", [*daglite, "--help"]),
        ("daglite run (1 task, piped)", [*daglite, "run", f"{flows}:twice", "--x", "3"]),
    ]
    figures = startup_ms([command for _, command in rows], runs)
    shutil.rmtree(flows.parent)
    base_wall, _, base_cpu = figures[0]
    print(f"{'start-up':<28}{'median ms':>10}{'min ms':>8}{'CPU ms':>8}{'+wall':>8}{'+CPU':>8}")
    for (name, _), (wall, fastest, cpu) in zip(rows, figures):
        print(
            f"{name:<28}{wall:>10.1f}{fastest:>8.1f}{cpu:>8.1f}"
            f"{wall - base_wall:>+8.1f}{cpu - base_cpu:>+8.1f}"
        )
    print("(+wall, +CPU: more than python -c pass; targets: import daglite <= 100 ms,")
    print(" daglite --help <= 250 ms)\n")

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
