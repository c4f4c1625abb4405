"""The loky backend (daglite-loky) side by side with joblib.Parallel and the process backend.

Run: `python benchmarks/bench_loky.py` (needs daglite-loky and joblib). Prints, in one run,
the best of a few interleaved runs, pools warm, for 10,000 trivial items and for 100
CPU-bound items of about 10 ms each, with ratios against joblib.Parallel(n_jobs=2).
"""

from __future__ import annotations

import os
import sys

from bench_process import calibrate
from bench_process import cpu
from bench_process import cpu_fn
from bench_process import race
from bench_process import trivial
from bench_process import trivial_fn

from daglite import map_tasks
from daglite import session
from daglite.settings import DagliteSettings

WORKERS = 2


def row(label: str, seconds: float, joblib_time: float, inline_time: float) -> None:
    print(
        f"  {label:<28} {seconds * 1000:9.1f} ms   vs joblib x{joblib_time / seconds:5.2f}"
        f"   vs inline x{inline_time / seconds:5.2f}"
    )


def main() -> None:
    from joblib import Parallel
    from joblib import delayed

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {WORKERS} workers")
    print("ratios: the other's time / this time (> 1: this one is faster)")
    settings = DagliteSettings(max_workers=WORKERS, processors=())
    spin = calibrate()
    parallel = Parallel(n_jobs=WORKERS)
    joblib_times: dict[str, tuple[float, float]] = {}
    with session(backend="loky", settings=settings):
        parallel(delayed(trivial_fn)(i) for i in range(100))
        map_tasks(trivial, range(100))
        map_tasks(trivial, range(100), backend="process")
        for label, fn, task, items, repeat in (
            ("10,000 trivial items", trivial_fn, trivial, range(10_000), 7),
            ("100 CPU-bound items of ~10 ms", cpu_fn, cpu, [spin] * 100, 3),
        ):
            t = race(
                {
                    "inline": lambda task=task, items=items: map_tasks(
                        task, items, backend="inline"
                    ),
                    "loky": lambda task=task, items=items: map_tasks(task, items),
                    "process": lambda task=task, items=items: map_tasks(
                        task, items, backend="process"
                    ),
                    "joblib": lambda fn=fn, items=items: parallel(delayed(fn)(i) for i in items),
                },
                repeat,
            )
            print(f"\n{label}")
            for name in ("inline", "loky", "process", "joblib"):
                row(name, t[name], t["joblib"], t["inline"])
            joblib_times[label] = (t["joblib"], t["inline"])

    # What a user gets: the default `logging` processor (standard error piped, as in CI).
    from bench_defaults import PipedStderr

    stderr = PipedStderr()
    try:
        with session(backend="loky", settings=DagliteSettings(max_workers=WORKERS)):
            map_tasks(trivial, range(100))
            default = race({"loky": lambda: map_tasks(trivial, range(10_000))}, 7)["loky"]
    finally:
        stderr.restore()
    print("\n10,000 trivial items, default settings (logging at info, stderr piped)")
    row("loky", default, *joblib_times["10,000 trivial items"])


if __name__ == "__main__":
    main()
