"""Core overheads of daglite, side by side with plain Python, in one run.

Run it with `python benchmarks/bench_core.py` (add `--quick` for a fast, rough pass).
Every figure is a median over several repeats; the targets come from issue 2 section 9
and the quality bar in DESIGN.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from daglite import TaskTimeoutError
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.settings import DagliteSettings

#: Sessions of this benchmark run no event processor unless a row says so; the rows
#: "default settings" run what a user gets (the `logging` processor at `info`, standard
#: error piped by `main`). `bench_defaults.py` has the issue 15 targets side by side.
QUIET = DagliteSettings(plugins=())
DEFAULT = DagliteSettings()


def add(x: int, y: int) -> int:
    return x + y


add_task = task(add)


def identity(x: int) -> int:
    return x


identity_task = task(identity)


# -- measuring ----------------------------------------------------------------------------


def per_call_us(funcs: dict[str, Callable[[], Any]], calls: int, repeats: int) -> dict[str, float]:
    """Cost of one call of each function in microseconds: the best of `repeats` rounds.

    The functions take turns in every round, so a burst of load on the machine hits all of
    them alike; the minimum is the figure least disturbed by other processes (as timeit).
    """
    best = dict.fromkeys(funcs, float("inf"))
    for _ in range(repeats):
        for name, func in funcs.items():
            start = time.perf_counter()
            for _ in range(calls):
                func()
            best[name] = min(best[name], (time.perf_counter() - start) / calls * 1e6)
    return best


def medians_s(funcs: list[Callable[[], Any]], repeats: int) -> list[float]:
    """Median seconds per call of each function, taking turns (after one warm-up round)."""
    samples: list[list[float]] = [[] for _ in funcs]
    for round_ in range(repeats + 1):
        for func, times in zip(funcs, samples):
            start = time.perf_counter()
            func()
            if round_:
                times.append(time.perf_counter() - start)
    return [statistics.median(times) for times in samples]


def median_s(func: Callable[[], Any], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


# -- the benchmarks -----------------------------------------------------------------------


def bench_calls(calls: int, repeats: int) -> list[tuple[str, str, str]]:
    def plain_call() -> int:
        return add(1, 2)

    def task_call() -> int:
        return add_task(1, 2)

    figures = per_call_us({"plain": plain_call, "bare": task_call}, calls, repeats)
    with session(settings=QUIET):
        figures |= per_call_us({"plain_s": plain_call, "session": task_call}, calls, repeats)
    with session(settings=QUIET, plugins=[lambda event: None]):
        figures |= per_call_us({"plain_e": plain_call, "events": task_call}, calls, repeats)
    with session(settings=DEFAULT):
        figures |= per_call_us({"plain_d": plain_call, "default": task_call}, calls, repeats)
    plain = min(figures["plain"], figures["plain_s"], figures["plain_e"], figures["plain_d"])
    bare, in_session, events = figures["bare"], figures["session"], figures["events"]
    default = figures["default"]
    return [
        ("plain function call", f"{plain:.3f} µs", ""),
        ("bare task call", f"{bare:.3f} µs", f"+{bare - plain:.3f} µs (target <= +1 µs)"),
        (
            "task call in a session",
            f"{in_session:.3f} µs",
            f"+{in_session - plain:.3f} µs (target <= +5 µs)",
        ),
        ("  same, default settings", f"{default:.3f} µs", f"+{default - plain:.3f} µs"),
        (
            "  same, a processor taking every event",
            f"{events:.3f} µs",
            f"+{events - plain:.3f} µs",
        ),
    ]


def bench_session(repeats: int) -> list[tuple[str, str, str]]:
    settings = QUIET

    def open_close() -> None:
        with session(settings=settings):
            pass

    def open_close_thread() -> None:
        with session(backend="thread", settings=settings):
            pass

    open_close()  # warm the registry's entry-point scan, as any real program would
    plain = median_s(open_close, repeats) * 1e3
    thread = median_s(open_close_thread, repeats) * 1e3
    return [
        ("session open + close", f"{plain:.3f} ms", "target <= 2 ms"),
        ("  same, backend='thread'", f"{thread:.3f} ms", ""),
    ]


def bench_map(items: int, repeats: int) -> list[tuple[str, str, str]]:
    data = list(range(items))
    settings = QUIET.evolve(backend="thread")
    workers = settings.max_workers or min(32, (os.cpu_count() or 1) + 4)

    def executor_map() -> None:
        with ThreadPoolExecutor(workers) as pool:
            result = list(pool.map(identity, data))
        assert result == data

    def daglite_map() -> None:
        with session(settings=settings):
            result = map_tasks(identity_task, data)
        assert result == data

    def daglite_map_events() -> None:
        with session(settings=settings, plugins=[lambda event: None]):
            map_tasks(identity_task, data)

    def daglite_map_default() -> None:
        with session(settings=DEFAULT, backend="thread"):
            map_tasks(identity_task, data)

    peer, ours, observed, default = (
        t * 1e3
        for t in medians_s(
            [executor_map, daglite_map, daglite_map_events, daglite_map_default], repeats
        )
    )
    return [
        (f"ThreadPoolExecutor.map, {items:,} items", f"{peer:.1f} ms", ""),
        (
            f"map_tasks thread backend, {items:,} items",
            f"{ours:.1f} ms",
            f"x{ours / peer:.2f} of the executor (target <= x1.00)",
        ),
        (
            "  same, default settings",
            f"{default:.1f} ms",
            f"x{default / peer:.2f} of the executor",
        ),
        (
            "  same, a processor taking every event",
            f"{observed:.1f} ms",
            f"x{observed / peer:.2f} of the executor",
        ),
    ]


def bench_process_map(items: int, repeats: int) -> list[tuple[str, str, str]]:
    """A warm process pool against a warm `backend="process"` session, same item count."""
    from concurrent.futures import ProcessPoolExecutor

    data = list(range(items))
    workers = os.cpu_count() or 1
    with ProcessPoolExecutor(workers) as pool, session(settings=QUIET.evolve(backend="process")):

        def executor_map() -> None:  # about as many batches as the process backend sends
            result = list(pool.map(identity, data, chunksize=max(1, items // (workers * 4))))
            assert result == data

        def daglite_map() -> None:
            result = map_tasks(identity_task, data)
            assert result == data

        peer, ours = (t * 1e3 for t in medians_s([executor_map, daglite_map], repeats))
    return [
        (f"ProcessPoolExecutor.map (warm), {items:,} items", f"{peer:.1f} ms", ""),
        (
            f"map_tasks process backend (warm), {items:,} items",
            f"{ours:.1f} ms",
            f"x{ours / peer:.2f} of the executor",
        ),
    ]


def bench_run_batch(items: int, repeats: int) -> list[tuple[str, str, str]]:
    """What a worker of any process-style backend pays per plain item (`run_batch`, here)."""
    import cloudpickle

    from daglite.backends.packing import pack_items
    from daglite.backends.packing import worker_spec
    from daglite.backends.transport import BatchRequest
    from daglite.backends.transport import JobInfo
    from daglite.backends.worker import run_batch
    from daglite.context import current_runtime

    chunk = [(i, (i,)) for i in range(items)]
    with session(settings=QUIET.evolve(backend="inline")):
        runtime = current_runtime.get()
        assert runtime is not None
        spec = worker_spec(runtime, "process")
        job = cloudpickle.dumps(JobInfo(identity_task, "bench-run-batch", None, False))
        request = BatchRequest(
            spec.key, spec, "bench-run-batch", job, pack_items(identity_task, chunk)
        )
        token = current_runtime.set(None)  # as in a worker: outside the session

        def plain() -> None:
            [identity(*args) for _, args in chunk]

        def batch() -> None:
            run_batch(request)

        try:
            peer, ours = (t / items * 1e6 for t in medians_s([plain, batch], repeats))
        finally:
            current_runtime.reset(token)
    return [
        (f"plain loop over {items} items, per item", f"{peer:.3f} µs", ""),
        (
            f"run_batch of {items} plain items, per item",
            f"{ours:.3f} µs",
            f"x{ours / peer:.1f} of the loop (target <= 0.5 µs)",
        ),
    ]


def bench_timeouts(repeats: int) -> list[tuple[str, str, str]]:
    timeout = 0.1

    @task(timeout=timeout)
    def spin() -> None:
        while True:
            pass

    @task(timeout=timeout)
    def sleepy(seconds: float) -> None:
        time.sleep(seconds)

    @task(timeout=timeout)
    async def waits() -> None:
        await asyncio.sleep(10)

    def overshoot(call: Callable[[], Any]) -> float:
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            try:
                call()
            except TaskTimeoutError:
                samples.append(time.perf_counter() - start - timeout)
            else:  # pragma: no cover - would be a bug
                raise AssertionError("no timeout")
        return statistics.median(samples) * 1e3

    def in_session() -> None:
        with session(settings=QUIET):
            spin()

    rows = [
        ("bare call, busy loop", overshoot(spin)),
        ("bare call, time.sleep(10 s)", overshoot(lambda: sleepy(10))),
        ("in session (inline), busy loop", overshoot(in_session)),
        ("map_tasks on thread backend, busy loop", overshoot(_map_spin)),
        ("async task, asyncio.sleep", overshoot(lambda: asyncio.run(waits()))),
    ]
    return [
        (f"timeout overshoot: {label}", f"{ms:.2f} ms", "target < 200 ms") for label, ms in rows
    ]


def _map_spin() -> None:
    @task(timeout=0.1)
    def spin_item(_: int) -> None:
        while True:
            pass

    with session(backend="thread", settings=QUIET):
        map_tasks(spin_item, [0])


def startup_ms(commands: list[list[str]], repeats: int) -> list[tuple[float, float, float]]:
    """(median wall, min wall, median CPU) milliseconds of each command as a fresh process.

    The commands take turns in every round (after one warm-up round, which also writes the
    bytecode as a first run would), so a burst of load hits all of them alike. CPU time is
    the child's user + system time: what the start-up costs even when the wall clock is
    noisy because other processes share the machine.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    wall: list[list[float]] = [[] for _ in commands]
    cpu: list[list[float]] = [[] for _ in commands]
    for round_ in range(repeats + 1):
        for command, walls, cpus in zip(commands, wall, cpu):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(command, check=True, env=env, capture_output=True)
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if round_:
                walls.append(elapsed * 1e3)
                used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                cpus.append(used * 1e3)
    return [(statistics.median(w), min(w), statistics.median(c)) for w, c in zip(wall, cpu)]


#: Start-up rows: what a script, a worker process or a library user pays before its work.
STARTUP = [
    ("python -c pass", "pass"),
    ("import daglite", "import daglite"),
    ("from daglite import task + 1 call", "from daglite import task\ntask(abs)(-1)"),
    (
        "task, workflow, session, map_tasks",
        "from daglite import map_tasks, session, task, workflow",
    ),
    (
        "session + 1 call, JSON log lines",
        "from daglite import session, task\nwith session():\n    task(abs)(-1)",
    ),
]


def bench_import(repeats: int) -> list[tuple[str, str, str]]:
    commands = [[sys.executable, "-c", code] for _, code in STARTUP]
    figures = startup_ms(commands, repeats)
    base_wall, _, base_cpu = figures[0]
    rows = [("start-up (median wall, min; CPU)", "", "target: import daglite <= 100 ms")]
    for (name, _), (wall, fastest, cpu) in zip(STARTUP, figures):
        extra = f"{wall - base_wall:+.1f} ms wall, {cpu - base_cpu:+.1f} ms CPU vs python"
        rows.append((f"  {name}", f"{wall:.1f} ms", f"min {fastest:.1f}, CPU {cpu:.1f}; {extra}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (rough figures)")
    quick = parser.parse_args().quick
    # Many short rounds: the best of them is the likeliest to miss other processes' bursts.
    calls, repeats = (10_000, 5) if quick else (20_000, 30)

    from bench_defaults import PipedStderr  # what CI and schedulers do with log lines

    stderr = PipedStderr()
    rows: list[tuple[str, str, str]] = []
    rows += bench_calls(calls, repeats)
    rows += bench_session(200 if quick else 2000)
    rows += bench_map(10_000, 3 if quick else 9)
    rows += bench_process_map(10_000, 3 if quick else 9)
    rows += bench_run_batch(910, 20 if quick else 200)
    rows += bench_timeouts(3 if quick else 7)
    stderr.restore()
    rows += bench_import(5 if quick else 15)

    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"daglite core benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs{load})")
    print("-" * (width + value_width + 40))
    for label, value, note in rows:
        print(f"{label:<{width}}  {value:>{value_width}}  {note}")


if __name__ == "__main__":
    main()
