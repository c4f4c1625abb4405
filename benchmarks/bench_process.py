"""The process backend side by side with inline, a chunked ProcessPoolExecutor and joblib.

Run: `python benchmarks/bench_process.py` (needs joblib). Prints seconds and ratios for:

1. 10,000 trivial items (per-item overhead), pools warm;
2. 100 CPU-bound items of about 10 ms each (speedup over inline), pools warm;
3. the first map of a session (pool start-up included);
4. peak memory (tracemalloc) of an inline map over 200,000 small items vs a list
   comprehension, in bytes per item.

Every figure is the best of a few runs, interleaved, all taken in this one run. The
ProcessPoolExecutor uses the platform's default start method (fork on Linux before 3.14),
so it pays no pickling of the function and no start-up.
"""

from __future__ import annotations

import os
import sys
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.settings import DagliteSettings

WORKERS = 2


def trivial_fn(x: int) -> int:
    return x + 1


trivial = task(trivial_fn)


def cpu_fn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


cpu = task(cpu_fn)


def calibrate(target: float = 0.010) -> int:
    n = 10_000
    while True:
        start = time.perf_counter()
        cpu_fn(n)
        took = time.perf_counter() - start
        if took > 0.002:
            return int(n * target / took)
        n *= 4


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def race(candidates: dict[str, object], repeat: int) -> dict[str, float]:
    """Best time of each candidate, runs interleaved so a busy moment hits all of them."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()  # type: ignore[operator]
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def row(label: str, seconds: float, reference: float, note: str = "") -> None:
    print(f"  {label:<38} {seconds * 1000:9.1f} ms   x{reference / seconds:6.2f} {note}")


def main() -> None:
    from joblib import Parallel
    from joblib import delayed

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {WORKERS} workers")
    settings = DagliteSettings(max_workers=WORKERS, processors=())
    spin = calibrate()
    with ProcessPoolExecutor(WORKERS) as ppe, session(backend="process", settings=settings):
        parallel = Parallel(n_jobs=WORKERS)
        list(ppe.map(trivial_fn, range(100)))
        parallel(delayed(trivial_fn)(i) for i in range(100))
        map_tasks(trivial, range(100))  # start every pool before timing

        n = 10_000
        items = range(n)
        chunk = max(1, n // (WORKERS * 4))
        t = race(
            {
                "inline": lambda: map_tasks(trivial, items, backend="inline"),
                "process": lambda: map_tasks(trivial, items),
                "ppe": lambda: list(ppe.map(trivial_fn, items, chunksize=chunk)),
                "joblib": lambda: parallel(delayed(trivial_fn)(i) for i in items),
            },
            7,
        )
        t_inline, t_process, t_ppe, t_joblib = t["inline"], t["process"], t["ppe"], t["joblib"]
        print(f"\n{n:,} trivial items (ratio: joblib time / this time; >= 1 beats joblib)")
        row("inline map", t_inline, t_joblib)
        row("process backend", t_process, t_joblib, f"({t_process / n * 1e6:.1f} us/item)")
        row(f"ProcessPoolExecutor chunksize={chunk}", t_ppe, t_joblib)
        row("joblib.Parallel(n_jobs=2)", t_joblib, t_joblib)
        t_joblib_10k = t_joblib

        m = 100
        work = [spin] * m
        t = race(
            {
                "inline": lambda: map_tasks(cpu, work, backend="inline"),
                "process": lambda: map_tasks(cpu, work),
                "ppe": lambda: list(ppe.map(cpu_fn, work)),
                "joblib": lambda: parallel(delayed(cpu_fn)(s) for s in work),
            },
            3,
        )
        t_inline, t_process, t_ppe, t_joblib = t["inline"], t["process"], t["ppe"], t["joblib"]
        print(f"\n{m} CPU-bound items of ~10 ms (ratio: speedup over inline; target >= 1.8)")
        row("inline map", t_inline, t_inline)
        row("process backend", t_process, t_inline)
        row("ProcessPoolExecutor", t_ppe, t_inline)
        row("joblib.Parallel(n_jobs=2)", t_joblib, t_inline)

    def cold() -> None:
        with session(backend="process", settings=settings):
            map_tasks(trivial, range(100))

    # What a user gets: the default `logging` processor (standard error piped, as in CI).
    from bench_defaults import PipedStderr

    stderr = PipedStderr()
    try:
        defaults = DagliteSettings(max_workers=WORKERS)
        with session(backend="process", settings=defaults):
            map_tasks(trivial, range(100))
            t_default = best(lambda: map_tasks(trivial, range(10_000)), 7)
    finally:
        stderr.restore()
    print("\n10,000 trivial items with the default settings (logging at info, stderr piped)")
    row("process backend, default settings", t_default, t_joblib_10k)

    t_cold = best(cold, 2)
    print(f"\nsession start + first map of 100 items, cold pool: {t_cold * 1000:.1f} ms")

    k = 200_000
    data = list(range(k))
    tracemalloc.start()
    [trivial_fn(x) for x in data]
    comprehension = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    map_tasks(trivial, data, backend="inline")
    mapped = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    extra = (mapped - comprehension) / k
    print(f"\ninline map over {k:,} items: peak {mapped / k:.0f} B/item, list comprehension ")
    print(f"  {comprehension / k:.0f} B/item: {extra:.0f} B/item more (target <= 300)")


if __name__ == "__main__":
    main()
