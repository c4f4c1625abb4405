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

N = 100_000


def add(x: int, y: int) -> int:
    return x + y


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


def per_fresh_call_ms(func: Callable[[int], Any], seeds: Any, calls: int, repeats: int) -> float:
    """Median cost in ms of `func(seed)` with a new seed each call (every call a miss)."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            func(next(seeds))
        samples.append((time.perf_counter() - start) / calls * 1e3)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, rough figures")
    args = parser.parse_args()
    calls, repeats, big_calls = (500, 3, 5) if args.quick else (5000, 7, 20)

    import joblib

    with tempfile.TemporaryDirectory() as tmp:
        memory = joblib.Memory(location=f"{tmp}/joblib", verbose=0)
        joblib_add = memory.cache(add)
        joblib_squares = memory.cache(squares)
        daglite_add = task(cache=f"{tmp}/daglite")(add)
        daglite_squares = task(cache=f"{tmp}/daglite")(squares)

        daglite_add(1, 2)
        joblib_add(1, 2)
        plain = per_call_us(lambda: add(1, 2), calls, repeats)
        bare_hit = per_call_us(lambda: daglite_add(1, 2), calls, repeats)
        with session(cache_store=f"{tmp}/daglite"):
            session_hit = per_call_us(lambda: daglite_add(1, 2), calls, repeats)
        joblib_hit = per_call_us(lambda: joblib_add(1, 2), calls // 5 or 1, repeats)

        seeds = itertools.count()
        compute = per_fresh_call_ms(squares, seeds, big_calls, repeats)
        daglite_miss = per_fresh_call_ms(daglite_squares, seeds, big_calls, repeats)
        joblib_miss = per_fresh_call_ms(joblib_squares, seeds, big_calls, repeats)
        compute_again = per_fresh_call_ms(squares, seeds, big_calls, repeats)
        compute = min(compute, compute_again)

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
        ("daglite cache hit, in a session", f"{session_hit:8.2f} µs", "target <= 25 µs"),
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
            f"{daglite_miss - compute:8.2f} ms",
            f"= {(daglite_miss - compute) / compute:.2f} x compute; target <= 1 ms at 1.7 ms",
        ),
        (
            "joblib store overhead",
            f"{joblib_miss - compute:8.2f} ms",
            f"= {(joblib_miss - compute) / compute:.2f} x compute",
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
