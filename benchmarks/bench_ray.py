"""daglite's `ray` backend against hand-written Ray code, side by side on one local Ray.

Workloads, each variant warmed up once, then the median of `--repeat` runs kept:

1. 10,000 trivial items: `map_tasks(..., backend="ray")` in an open session, and with the
   session opened and closed around it; the same items hand-batched into as many
   `ray.remote` tasks as daglite used (the baseline: chunking, the tasks, and the results
   flattened into one list in input order, as `map_tasks` returns them), run alternately
   with daglite's map so both see the same machine load (`--rounds` times: a map takes a
   few milliseconds, and a median of a hundred turns is steadier than one of nine); the
   same batches on warm actors (the alternative design); one `ray.remote` task per item
   (run once: it is slow); and, for scale, the same map on daglite's own `process`
   backend (same per-item pipeline).
   To tell the transport's cost from the per-item pipeline's, a third variant runs in the
   same alternation: the same hand-written batches, each running daglite's pipeline on its
   items (`map_tasks` on the inline backend inside the Ray task).
   On Linux, the CPU time a map costs this process and the local Ray's processes (raylet,
   GCS, workers) is shown too: unlike times, it barely depends on the machine's load.
2. 100 CPU-bound items of about 10 ms: plain Python inline, one `ray.remote` task per
   item, and `map_tasks`; the speedup of each over inline.
3. Session start with the backend's own local Ray (Ray's start-up, paid once per session)
   and the cost of a second map in the same session.

Sessions run with no event processor (`processors=()`), like the raw Ray code they are
compared with; one row shows the same map with the default settings (the `logging`
processor at `info`, standard error piped, as under CI).

    python benchmarks/bench_ray.py [--workers 2] [--repeat 3] [--rounds 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
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


def inc_batch(xs):
    return [inc(x) for x in xs]


inc_task = task(name="inc")(inc)
burn_task = task(name="burn")(burn)

PIPELINE_ONLY = DagliteSettings(backend="inline", processors=())


def inc_batch_pipeline(xs):
    """A hand-written batch whose items go through daglite's per-item pipeline."""
    with session(settings=PIPELINE_ONLY):
        return map_tasks(inc_task, xs)


def median(func, repeat):
    func()  # warm-up: imports and cached payloads on the workers
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def alternate(funcs, repeat):
    """Median seconds of each of `funcs`, run in turn `repeat` times, and its mean CPU
    seconds (summed over the runs: /proc counts in 10 ms ticks)."""
    for func in funcs:
        func()  # warm-up
    times: list[list[float]] = [[] for _ in funcs]
    cpus = [0.0 for _ in funcs]
    for _ in range(repeat):
        for n, func in enumerate(funcs):
            before = cpu_seconds()
            start = time.perf_counter()
            func()
            times[n].append(time.perf_counter() - start)
            after = cpu_seconds()
            cpus[n] += sum(after[pid] - used for pid, used in before.items() if pid in after)
    return [(statistics.median(t), cpu / repeat) for t, cpu in zip(times, cpus)]


def cpu_seconds():
    """CPU seconds used so far by this process and each of its descendants (a local Ray's
    raylet, GCS and workers), by pid, read from /proc (empty where there is none). Compare
    two readings over the pids in both: a worker that starts or ends in between (its whole
    start-up, or its time lost) is left out."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    parents, used = {}, {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(name)] = int(fields[1])
        used[int(name)] = (int(fields[11]) + int(fields[12])) / tick  # user + system
    mine = {os.getpid()}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                grew = True
    return {pid: used[pid] for pid in mine if pid in used}


def calibrate(seconds=0.010):
    """`n` for which `burn(n)` takes about `seconds` here (best of several timings)."""
    n = 100_000
    took = min(_timed(burn, n) for _ in range(5))
    return max(1, int(n * seconds / took))


def _timed(func, *args):
    start = time.perf_counter()
    func(*args)
    return time.perf_counter() - start


def count_batches(settings, items):
    """How many Ray tasks daglite submits for one map of `items` (its batch count)."""
    from daglite_ray.transport import RayTransport

    submitted = []
    real = RayTransport.submit

    def counting(self, request):
        submitted.append(1)
        return real(self, request)

    RayTransport.submit = counting
    try:
        with session(settings=settings):
            map_tasks(inc_task, items)
    finally:
        RayTransport.submit = real
    return len(submitted)


def session_start(workers):
    """Seconds for a session's first map with the backend's own local Ray, then a second map."""
    settings = DagliteSettings(backend="ray", processors=(), max_workers=workers)
    start = time.perf_counter()
    with session(settings=settings):
        map_tasks(inc_task, range(10))
        first = time.perf_counter() - start
        start = time.perf_counter()
        map_tasks(inc_task, range(10))
        second = time.perf_counter() - start
        opened = time.perf_counter()
    closed = time.perf_counter() - opened
    return first, second, closed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=100, help="alternations, trivial map")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")

    first, second, closed = session_start(args.workers)

    import ray

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="WARNING")
    settings = DagliteSettings(backend="ray", processors=(), max_workers=args.workers)

    # -- 1. trivial items ------------------------------------------------------------------
    items = list(range(10_000))
    batches = count_batches(settings, items)
    size = -(-len(items) // batches)
    remote_inc = ray.remote(num_cpus=1)(inc)
    remote_batch = ray.remote(num_cpus=1)(inc_batch)
    remote_pipeline = ray.remote(num_cpus=1)(inc_batch_pipeline)

    @ray.remote(num_cpus=1)
    class Runner:
        def run(self, xs):
            return inc_batch(xs)

    def daglite_map():  # in the session opened below
        assert map_tasks(inc_task, items)[-1] == 10_000

    def daglite_session():
        with session(settings=settings):
            assert map_tasks(inc_task, items)[-1] == 10_000

    process = DagliteSettings(backend="process", processors=(), max_workers=args.workers)

    def daglite_process():  # the same pipeline per item on the core's own worker processes
        assert map_tasks(inc_task, items)[-1] == 10_000

    def chunks():
        return [items[i : i + size] for i in range(0, len(items), size)]

    def batched_tasks():  # chunk, run, and return the values in input order, as map_tasks
        out = [x for part in ray.get([remote_batch.remote(c) for c in chunks()]) for x in part]
        assert out[-1] == 10_000

    def batched_pipeline():  # the same batches, each item through daglite's pipeline
        refs = [remote_pipeline.remote(c) for c in chunks()]
        assert [x for part in ray.get(refs) for x in part][-1] == 10_000

    def batched_actors():
        refs = [actors[n % len(actors)].run.remote(c) for n, c in enumerate(chunks())]
        assert [x for part in ray.get(refs) for x in part][-1] == 10_000

    def per_item():
        assert ray.get([remote_inc.remote(x) for x in items])[-1] == 10_000

    t_inline = median(lambda: [inc(x) for x in items], args.repeat)
    with session(settings=settings) as ctx:
        daglite_map()
        daglite_map()  # a session's second map starts its actors: wait until they are up
        ray.get([a.ready for a in ctx.get_backend("ray").transport._actors if a.ready])
        (t_daglite, c_daglite), (t_batched, c_batched), (t_piped, c_piped) = alternate(
            [daglite_map, batched_tasks, batched_pipeline], args.rounds
        )
    # The same map as Ray tasks, as before a session's actors are up.
    tasks_only = DagliteSettings(
        backend="ray", processors=(), max_workers=args.workers, options={"ray": {"actors": False}}
    )
    with session(settings=tasks_only):
        (t_tasks, _), (t_batched2, _) = alternate([daglite_map, batched_tasks], args.rounds)
    t_session = median(daglite_session, args.repeat)
    from bench_defaults import PipedStderr  # what CI and schedulers do with log lines

    stderr = PipedStderr()
    try:  # what a user gets: the `logging` processor at `info`, standard error piped
        with session(settings=DagliteSettings(backend="ray", max_workers=args.workers)):
            t_default = median(daglite_map, args.repeat)
    finally:
        stderr.restore()
    with session(settings=process):  # a warm pool, like the Ray workers
        t_process = median(daglite_process, args.repeat)
    t_per_item = median(per_item, 1)
    actors = [Runner.remote() for _ in range(args.workers)]  # they hold the CPUs: last
    ray.get([a.run.remote([]) for a in actors])
    t_actors = median(batched_actors, args.repeat)
    for actor in actors:
        ray.kill(actor)

    # -- 2. CPU-bound items ----------------------------------------------------------------
    n = calibrate()
    work = [n] * 100
    remote_burn = ray.remote(num_cpus=1)(burn)

    def inline_cpu():
        [burn(x) for x in work]

    def raw_cpu():
        ray.get([remote_burn.remote(x) for x in work])

    def daglite_cpu():
        with session(settings=settings):
            map_tasks(burn_task, work)

    c_inline = median(inline_cpu, args.repeat)
    c_raw = median(raw_cpu, args.repeat)
    c_burn = median(daglite_cpu, args.repeat)
    ray.shutdown()

    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"\n10,000 trivial items, {args.workers} workers; daglite used {batches} batches")
    print(f"  inline (plain Python)          {t_inline * 1e3:9.1f} ms")
    print(
        f"  daglite map_tasks              {t_daglite * 1e3:9.1f} ms  CPU {c_daglite * 1e3:.0f} ms"
        "  (warm actors)"
    )
    print(
        f"  ray.remote, hand-batched       {t_batched * 1e3:9.1f} ms  CPU {c_batched * 1e3:.0f} ms"
    )
    print(
        f"  hand-batched, daglite inline   {t_piped * 1e3:9.1f} ms  CPU {c_piped * 1e3:.0f} ms"
        "  (each batch's items through the per-item pipeline)"
    )
    print(f"  daglite, session + map         {t_session * 1e3:9.1f} ms  (session opened per map)")
    print(
        f"  daglite, default settings      {t_default * 1e3:9.1f} ms  (log processor, stderr piped)"
    )
    print(f"  daglite, process backend       {t_process * 1e3:9.1f} ms  (warm pool, for scale)")
    print(f"  same batches on warm actors    {t_actors * 1e3:9.1f} ms")
    print(f"  ray.remote per item            {t_per_item * 1e3:9.1f} ms")
    print(f"  daglite / hand-batched         {t_daglite / t_batched:9.2f}x  (target <= 1.0x)")
    print(
        f"  same, as Ray tasks             {t_tasks / t_batched2:9.2f}x  ({t_tasks * 1e3:.1f} "
        f"against {t_batched2 * 1e3:.1f} ms: before a session's actors are up)"
    )
    if c_batched:
        print(f"  CPU, daglite / hand-batched    {c_daglite / c_batched:9.2f}x")
    print(f"  daglite / hand-batched+inline  {t_daglite / t_piped:9.2f}x  (the transport alone)")
    print(f"  daglite / per item             {t_daglite / t_per_item:9.3f}x")
    print(f"  actors / tasks, hand-batched   {t_actors / t_batched:9.2f}x")
    print(f"\n100 CPU-bound items of {c_inline * 10:.1f} ms (inline), {args.workers} workers")
    print(f"  inline                         {c_inline * 1e3:9.1f} ms")
    print(
        f"  ray.remote per item            {c_raw * 1e3:9.1f} ms  speedup {c_inline / c_raw:.2f}x"
    )
    print(
        f"  daglite map_tasks              {c_burn * 1e3:9.1f} ms  speedup {c_inline / c_burn:.2f}x"
    )
    print(f"  daglite speedup / raw speedup  {c_raw / c_burn:9.2f}  (target >= 0.90)")
    print("\nsession with the backend's own local Ray")
    print(f"  first map (starts Ray)         {first:9.2f} s")
    print(f"  second map, same session       {second * 1e3:9.1f} ms")
    print(f"  session end (Ray shut down)    {closed:9.2f} s")


if __name__ == "__main__":
    main()
