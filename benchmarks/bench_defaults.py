"""What a user gets by default: observation costs, side by side with no processor and the peers.

Run: `python benchmarks/bench_defaults.py` (needs joblib; add `--quick` for a rough pass).

Every daglite row runs with the DEFAULT settings (the `logging` processor at `info`) and
with standard error piped, as under CI or a scheduler: this script points its own file
descriptor 2 at a pipe, drained by a thread that counts the lines. Beside each default
figure is the same work with no processor (`DAGLITE_PLUGINS=`) and, where there is
one, the peer a user would pick instead. The targets are those of issue 15:

- task call inside `session()`: <= 5 µs over a plain call;
- `map_tasks` of 10,000 trivial items, thread backend: <= 1.0x `ThreadPoolExecutor.map`;
- same, process backend: <= 1.0x `joblib.Parallel(n_jobs=2)`;
- cache hit, small arguments: <= 25 µs;
- log lines written for that 10,000-item map: <= 20;
- the `jsonl` event log (every event): <= 3 µs per event written (the processor's cost;
  the whole pipeline's cost per event, building and dispatch included, is shown beside it).

All rows of one run take turns (interleaved), so a burst of load hits them alike; the
load average is printed with the table. Compare the rows of one run with each other.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.settings import DagliteSettings

DEFAULT = DagliteSettings()  # what a user gets: plugins=("logging",), log_level="info"
NONE = DagliteSettings(plugins=())
ITEMS = 10_000
WORKERS = 2


def add(x: int, y: int) -> int:
    return x + y


add_task = task(add)


def identity(x: int) -> int:
    return x


identity_task = task(identity)


# -- standard error, piped ------------------------------------------------------------------


class PipedStderr:
    """Points fd 2 (and `sys.stderr`) at a pipe whose lines a thread counts."""

    def __init__(self) -> None:
        self.lines = 0
        read, write = os.pipe()
        self._saved = os.dup(2)
        os.dup2(write, 2)
        os.close(write)
        self._reader = os.fdopen(read, "rb")
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()
        self._old = sys.stderr
        sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)

    def _drain(self) -> None:
        for _ in self._reader:
            self.lines += 1

    def count(self, func: Callable[[], Any]) -> int:
        """How many lines `func` writes to standard error."""
        sys.stderr.flush()
        before = self._settle()
        func()
        sys.stderr.flush()
        return self._settle() - before

    def _settle(self) -> int:
        # The reader thread lags the writer a little: wait until the count stops moving.
        last = -1
        while last != self.lines:
            last = self.lines
            time.sleep(0.05)
        return last

    def restore(self) -> None:
        sys.stderr.flush()
        sys.stderr = self._old
        os.dup2(self._saved, 2)


# -- measuring ------------------------------------------------------------------------------


def per_call_us(funcs: dict[str, Callable[[], Any]], calls: int, repeats: int) -> dict[str, float]:
    """Microseconds per call of each function: the best of `repeats` interleaved rounds."""
    best = dict.fromkeys(funcs, float("inf"))
    for _ in range(repeats):
        for name, func in funcs.items():
            start = time.perf_counter()
            for _ in range(calls):
                func()
            best[name] = min(best[name], (time.perf_counter() - start) / calls * 1e6)
    return best


def best_s(funcs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Seconds of each function: the best of `repeats` interleaved rounds (after a warm-up)."""
    best = dict.fromkeys(funcs, float("inf"))
    for round_ in range(repeats + 1):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            if round_:
                best[name] = min(best[name], time.perf_counter() - start)
    return best


# -- the rows -------------------------------------------------------------------------------


def bench_calls(calls: int, repeats: int) -> list[tuple[str, str, str]]:
    def plain() -> int:
        return add(1, 2)

    def call() -> int:
        return add_task(1, 2)

    figures = per_call_us({"plain": plain}, calls, repeats)
    with session(settings=DEFAULT):
        figures |= per_call_us({"default": call, "plain_d": plain}, calls, repeats)
    with session(settings=NONE):
        figures |= per_call_us({"none": call, "plain_n": plain}, calls, repeats)
    base = min(figures["plain"], figures["plain_d"], figures["plain_n"])
    return [
        ("plain function call", f"{base:.3f} µs", ""),
        (
            "task call in session(), default settings",
            f"{figures['default']:.3f} µs",
            f"+{figures['default'] - base:.3f} µs over plain (target <= +5 µs)",
        ),
        (
            "  same, no processor",
            f"{figures['none']:.3f} µs",
            f"+{figures['none'] - base:.3f} µs over plain",
        ),
    ]


def bench_thread_map(repeats: int) -> list[tuple[str, str, str]]:
    data = list(range(ITEMS))
    workers = min(32, (os.cpu_count() or 1) + 4)  # the thread backend's default too

    def executor() -> None:
        with ThreadPoolExecutor(workers) as pool:
            assert list(pool.map(identity, data)) == data

    def ours(settings: DagliteSettings) -> Callable[[], None]:
        def run() -> None:
            with session(settings=settings, backend="thread"):
                assert map_tasks(identity_task, data) == data

        return run

    t = best_s({"peer": executor, "default": ours(DEFAULT), "none": ours(NONE)}, repeats)
    return [
        (f"ThreadPoolExecutor.map, {ITEMS:,} items", f"{t['peer'] * 1e3:.1f} ms", ""),
        (
            "map_tasks thread backend, default settings",
            f"{t['default'] * 1e3:.1f} ms",
            f"x{t['default'] / t['peer']:.2f} of the executor (target <= x1.00)",
        ),
        (
            "  same, no processor",
            f"{t['none'] * 1e3:.1f} ms",
            f"x{t['none'] / t['peer']:.2f} of the executor",
        ),
    ]


def bench_process_map(repeats: int) -> list[tuple[str, str, str]]:
    """Pools warm on both sides: joblib reuses loky's executor, a session keeps its pool.

    A session's pool lives as long as the session, so each side runs its maps inside one
    session (after a warm-up map); the sides take turns round by round.
    """
    from joblib import Parallel
    from joblib import delayed

    data = list(range(ITEMS))

    def joblib_map() -> None:
        result = Parallel(n_jobs=WORKERS)(delayed(identity)(x) for x in data)
        assert result == data

    def ours() -> None:
        assert map_tasks(identity_task, data) == data

    best = {"peer": float("inf"), "default": float("inf"), "none": float("inf")}
    joblib_map()
    for _ in range(max(1, repeats // 2)):
        best["peer"] = min(best["peer"], best_s({"x": joblib_map}, 2)["x"])
        for label, settings in (("default", DEFAULT), ("none", NONE)):
            with session(settings=settings.evolve(max_workers=WORKERS), backend="process"):
                best[label] = min(best[label], best_s({"x": ours}, 2)["x"])
    t = best
    return [
        (
            f"joblib.Parallel(n_jobs={WORKERS}), {ITEMS:,} items",
            f"{t['peer'] * 1e3:.1f} ms",
            "",
        ),
        (
            "map_tasks process backend, default settings",
            f"{t['default'] * 1e3:.1f} ms",
            f"x{t['default'] / t['peer']:.2f} of joblib (target <= x1.00)",
        ),
        (
            "  same, no processor",
            f"{t['none'] * 1e3:.1f} ms",
            f"x{t['none'] / t['peer']:.2f} of joblib",
        ),
    ]


def bench_cache_hit(calls: int, repeats: int) -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory() as tmp:

        @task(cache=True)
        def cached(x: int, y: int) -> int:
            return x + y

        figures: dict[str, float] = {}
        for label, settings in (("default", DEFAULT), ("none", NONE)):
            with session(settings=settings.evolve(cache_store=f"{tmp}/{label}")):
                cached(1, 2)  # the entry every later call hits
                figures |= per_call_us({label: lambda: cached(1, 2)}, calls, repeats)
    return [
        (
            "cache hit, small arguments, default settings",
            f"{figures['default']:.1f} µs",
            "target <= 25 µs",
        ),
        ("  same, no processor", f"{figures['none']:.1f} µs", ""),
    ]


def bench_lines(stderr: PipedStderr) -> list[tuple[str, str, str]]:
    data = list(range(ITEMS))
    rows = []
    for level, note in (
        ("info", "target <= 20 (default level)"),
        ("warning", "-q"),
        ("debug", "-v"),
    ):

        def run(level: str = level) -> None:
            with session(settings=DEFAULT.evolve(log_level=level), backend="thread"):
                map_tasks(identity_task, data)

        rows.append(
            (f"log lines for a {ITEMS:,}-item map, level {level}", f"{stderr.count(run)}", note)
        )
    return rows


def bench_jsonl(repeats: int) -> list[tuple[str, str, str]]:
    """The `jsonl` event log's cost per event written, measured two ways.

    - processor: the `JsonlProcessor` alone, fed the events of a real map (built
      beforehand): encoding, buffering and writing to the file, closing included.
    - pipeline: a whole session with the event log over the same session with no
      processor, divided by the events written: the processor plus building and
      dispatching every event, which nobody asks for without a processor.
    - the part of that which is not the event log: the same session with a processor
      that wants every event and does nothing, over the session with none.
    """
    from daglite.processors.eventlog import JsonlProcessor
    from daglite.testing import EventCapture

    data = list(range(ITEMS))
    capture = EventCapture()
    with session(settings=NONE, plugins=[capture]):
        map_tasks(identity_task, data)
    events = capture.events

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "events.jsonl")
        jsonl = NONE.evolve(event_log=path)  # the event log alone: every event

        def logged() -> None:
            with session(settings=jsonl):
                map_tasks(identity_task, data)

        def bare() -> None:
            with session(settings=NONE):
                map_tasks(identity_task, data)

        def ignored() -> None:
            with session(settings=NONE, plugins=[lambda event: None]):
                map_tasks(identity_task, data)

        def processor_alone() -> None:
            processor = JsonlProcessor(os.path.join(tmp, "alone.jsonl"))
            for event in events:
                processor(event)
            processor.close()

        funcs = {"jsonl": logged, "none": bare, "ignored": ignored, "alone": processor_alone}
        t = best_s(funcs, repeats)
    pipeline = (t["jsonl"] - t["none"]) / len(events) * 1e6
    building = (t["ignored"] - t["none"]) / len(events) * 1e6
    alone = t["alone"] / len(events) * 1e6
    label = f"jsonl event log, {ITEMS:,}-item map ({len(events):,} events)"
    return [
        (f"{label}: processor", f"{alone:.2f} µs", "per event written (target <= 3 µs)"),
        (f"{label}: pipeline", f"{pipeline:.2f} µs", "per event, building and dispatch included"),
        (
            f"{label}: pipeline, a do-nothing processor",
            f"{building:.2f} µs",
            "per event: building and dispatch alone",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (rough figures)")
    parser.add_argument("--only", choices=["jsonl"], help="run only these rows")
    options = parser.parse_args()
    quick = options.quick
    calls, repeats = (5_000, 5) if quick else (20_000, 20)
    map_repeats = 2 if quick else 5

    stderr = PipedStderr()
    rows: list[tuple[str, str, str]] = []
    try:
        if options.only is None:
            rows += bench_calls(calls, repeats)
            rows += bench_thread_map(map_repeats)
            rows += bench_process_map(map_repeats)
            rows += bench_cache_hit(calls // 4, repeats)
            rows += bench_lines(stderr)
        rows += bench_jsonl(map_repeats)
    finally:
        stderr.restore()

    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(
        f"daglite defaults benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
        f"{load}; standard error piped)"
    )
    print("-" * (width + value_width + 40))
    for label, value, note in rows:
        print(f"{label:<{width}}  {value:>{value_width}}  {note}")


if __name__ == "__main__":
    main()
