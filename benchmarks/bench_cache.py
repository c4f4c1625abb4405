"""Caching costs of daglite side by side with joblib.Memory and plain Python, in one run.

Run it with `python benchmarks/bench_cache.py` (add `--quick` for a fast, rough pass);
needs `joblib` (`pip install joblib`). Targets (issue 4 section 5): a cache hit on small
arguments <= 25 µs and <= 1/4 of joblib.Memory's hit; a miss that stores a 100,000-int
list costs <= 1 ms over computing it (on the reference machine, where computing it takes
1.7 ms: compare the overhead with the compute time of this run).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from daglite import session
from daglite import task
from daglite.settings import DagliteSettings

N = 100_000


def add(x: int, y: int) -> int:
    return x + y


OFFSET = 3


def add_offset(x: int, y: int) -> int:
    return x + y + OFFSET  # reads a global: its value is part of the key


def adder(offset: int) -> Callable[[int, int], int]:
    def add_closure(x: int, y: int) -> int:
        return x + y + offset  # a closure: `offset` is part of the key

    return add_closure


class Adder:
    def __init__(self, offset: int) -> None:
        self.offset = offset

    def add(self, x: int, y: int) -> int:
        return x + y + self.offset  # a bound method: the object is part of the key


def squares(seed: int) -> list[int]:
    return [i * i + seed for i in range(N)]


def per_call_us(func: Callable[[], Any], calls: int, repeats: int) -> float:
    """Median cost of one `func()` call in microseconds."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            func()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def interleaved_us(
    funcs: dict[str, tuple[Callable[[], Any], int]], repeats: int
) -> dict[str, float]:
    """Median per-call µs of each `(func, calls)`, the blocks of calls taking turns."""
    samples: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(repeats):
        for name, (func, calls) in funcs.items():
            start = time.perf_counter()
            for _ in range(calls):
                func()
            samples[name].append((time.perf_counter() - start) / calls * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def paired_ms(funcs: dict[str, Callable[[int], Any]], rounds: int) -> dict[str, list[float]]:
    """Per-call times in ms of each `func(seed)` (a new seed each call: every call a miss).

    The functions take turns, one call each per round, so that a machine busy with other
    work slows all of them alike; compare them round by round (paired differences).
    """
    seeds = itertools.count()
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(rounds):
        for name, func in funcs.items():
            start = time.perf_counter()
            func(next(seeds))
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def paired_overhead(times: dict[str, list[float]], name: str, base: str) -> float:
    """Median over rounds of `name`'s time minus `base`'s time in the same round."""
    return statistics.median(a - b for a, b in zip(times[name], times[base]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, rough figures")
    args = parser.parse_args()
    calls, repeats, big_calls = (500, 3, 7) if args.quick else (5000, 7, 41)

    import joblib

    with tempfile.TemporaryDirectory() as tmp:
        memory = joblib.Memory(location=f"{tmp}/joblib", verbose=0)
        joblib_add = memory.cache(add)
        joblib_squares = memory.cache(squares)
        daglite_add = task(cache=f"{tmp}/daglite")(add)
        daglite_squares = task(cache=f"{tmp}/daglite")(squares)

        daglite_global = task(cache=f"{tmp}/daglite")(add_offset)
        daglite_closure = task(cache=f"{tmp}/daglite")(adder(3))
        daglite_method = task(Adder(3).add, cache=f"{tmp}/daglite")
        for cached in (daglite_add, joblib_add, daglite_global, daglite_closure, daglite_method):
            cached(1, 2)
        hits = interleaved_us(
            {
                "plain": (lambda: add(1, 2), calls),
                "daglite": (lambda: daglite_add(1, 2), calls),
                "global": (lambda: daglite_global(1, 2), calls),
                "closure": (lambda: daglite_closure(1, 2), calls),
                "method": (lambda: daglite_method(1, 2), calls),
                "joblib": (lambda: joblib_add(1, 2), calls // 10 or 1),
            },
            repeats,
        )
        plain, bare_hit, joblib_hit = hits["plain"], hits["daglite"], hits["joblib"]
        with session(cache_store=f"{tmp}/daglite", settings=DagliteSettings(processors=())):
            session_hit = per_call_us(lambda: daglite_add(1, 2), calls, repeats)
        from bench_defaults import PipedStderr  # the default logging processor, as in CI

        stderr = PipedStderr()
        try:
            with session(cache_store=f"{tmp}/daglite", settings=DagliteSettings()):
                default_hit = per_call_us(lambda: daglite_add(1, 2), calls, repeats)
        finally:
            stderr.restore()

        times = paired_ms(
            {"compute": squares, "daglite": daglite_squares, "joblib": joblib_squares},
            big_calls,
        )
        compute = statistics.median(times["compute"])
        daglite_miss = statistics.median(times["daglite"])
        joblib_miss = statistics.median(times["joblib"])
        daglite_overhead = paired_overhead(times, "daglite", "compute")
        joblib_overhead = paired_overhead(times, "joblib", "compute")

        import json
        from pathlib import Path

        from daglite import load_dataset
        from daglite import save_dataset

        target = Path(tmp) / "plain.json"
        small = {"a": [1, 2, 3], "b": "text"}

        def plain_write() -> None:
            target.write_text(json.dumps(small))

        plain_save = per_call_us(plain_write, calls // 10 or 1, repeats)
        dataset_save = per_call_us(
            lambda: save_dataset("small.json", small, store=f"{tmp}/ds"), calls // 10 or 1, repeats
        )
        dataset_load = per_call_us(
            lambda: load_dataset("small.json", store=f"{tmp}/ds"), calls // 10 or 1, repeats
        )

    rows = [
        ("plain add(1, 2)", f"{plain:8.2f} µs", ""),
        ("daglite cache hit, bare call", f"{bare_hit:8.2f} µs", "target <= 25 µs"),
        ("daglite cache hit, in a session", f"{session_hit:8.2f} µs", "no processor"),
        (
            "  same, default settings",
            f"{default_hit:8.2f} µs",
            "logging at info, stderr piped; target <= 25 µs",
        ),
        ("  hit, task reads a global int", f"{hits['global']:8.2f} µs", "state read per call"),
        ("  hit, closure over an int", f"{hits['closure']:8.2f} µs", "state read per call"),
        ("  hit, bound method", f"{hits['method']:8.2f} µs", "object encoded per call"),
        ("joblib.Memory hit", f"{joblib_hit:8.2f} µs", ""),
        (
            "daglite hit / joblib hit",
            f"{bare_hit / joblib_hit:8.3f}",
            "target <= 0.25",
        ),
        (f"compute a {N:,}-int list", f"{compute:8.2f} ms", "reference machine: 1.7 ms"),
        ("daglite miss + store", f"{daglite_miss:8.2f} ms", ""),
        ("joblib miss + store", f"{joblib_miss:8.2f} ms", ""),
        (
            "daglite store overhead",
            f"{daglite_overhead:8.2f} ms",
            f"= {daglite_overhead / compute:.2f} x compute; target <= 1 ms at 1.7 ms (0.59 x)",
        ),
        (
            "joblib store overhead",
            f"{joblib_overhead:8.2f} ms",
            f"= {joblib_overhead / compute:.2f} x compute",
        ),
        ("json.dumps + Path.write_text", f"{plain_save:8.2f} µs", ""),
        ("save_dataset small .json", f"{dataset_save:8.2f} µs", "atomic (temp file + rename)"),
        ("load_dataset small .json", f"{dataset_load:8.2f} µs", ""),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value}  {note}")


if __name__ == "__main__":
    main()
