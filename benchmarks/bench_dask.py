"""daglite's `dask` backend against raw `client.map`, side by side on one LocalCluster.

Two workloads: 10,000 trivial items (overhead-bound) and 100 CPU-bound items (~20 ms each).
Each is timed as plain Python in this process, raw `client.map` + `gather` (one dask task
per item), and `map_tasks(..., backend="dask")` in a session using the same client. Every
variant runs once to warm up, then the best of `--repeat` runs is kept.

    python benchmarks/bench_dask.py [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.settings import DagliteSettings


def inc(x):
    return x + 1


def burn(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


inc_task = task(name="inc")(inc)
burn_task = task(name="burn")(burn)


def best(func, repeat):
    func()  # warm-up: imports on the workers, first connections
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from distributed import Client
    from distributed import LocalCluster

    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,  # the default client: the dask backend uses it
    ):
        burn_n = 200_000
        start = time.perf_counter()
        burn(burn_n)
        print(f"one CPU-bound item takes {1000 * (time.perf_counter() - start):.1f} ms here")
        workloads = [
            ("10,000 trivial items", inc, inc_task, list(range(10_000))),
            ("100 CPU-bound items", burn, burn_task, [burn_n] * 100),
        ]
        print(f"{args.workers} worker processes x 1 thread; best of {args.repeat}\n")
        header = f"{'workload':<22}{'plain':>10}{'client.map':>12}{'daglite':>10}"
        print(header + f"{'daglite/client.map':>20}{'daglite/plain':>15}")
        with session(backend="dask", settings=DagliteSettings(processors=())):
            for label, func, wrapped, items in workloads:
                plain = best(lambda f=func, i=items: [f(x) for x in i], args.repeat)
                raw = best(
                    lambda f=func, i=items: client.gather(client.map(f, i, pure=False)),
                    args.repeat,
                )
                ours = best(lambda t=wrapped, i=items: map_tasks(t, i), args.repeat)
                print(
                    f"{label:<22}{plain:>9.3f}s{raw:>11.3f}s{ours:>9.3f}s"
                    f"{ours / raw:>20.3f}{ours / plain:>15.1f}"
                )


if __name__ == "__main__":
    main()
