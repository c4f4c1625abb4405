"""`daglite report`: build time, page size and time to draw, for runs of growing size.

Run it with `python benchmarks/bench_report.py` (`--quick` for the small runs only). Each
event log comes from a real run: a `map_tasks` of trivial items on the thread backend with
the jsonl event log on (two events per item, every 1,000th item fails). For each log it
prints, side by side:

- the events in the log and its size;
- the CPU time to read the log with nothing but `json.loads` per line (the floor any
  builder pays) and the CPU time `build_report` takes, and their ratio (best of 3; CPU
  time, not wall time, so that a busy machine disturbs the figures less);
- the page's size (the issue's bound: about 2 MB for a 10,000-item map);
- with the system's Chromium and the `playwright` package installed: the time from
  opening the page (from a local file, offline) until it has drawn itself, as the page
  measures it (`performance.now()`; the issue's bound: under a second).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.report import build_report
from daglite.settings import DagliteSettings


@task
def item(x: int) -> int:
    if x % 1_000 == 999:
        raise ValueError(f"item {x}")
    return x


def record(folder: Path, items: int) -> Path:
    """The event log of a real `items`-item map on the thread backend."""
    log = folder / f"map-{items}.jsonl"
    settings = DagliteSettings(processors=(), event_log=str(log))
    with session(backend="thread", settings=settings):
        map_tasks(item, range(items), return_exceptions=True)
    return log


def best_of(rounds: int, func) -> float:
    """The least CPU time of `rounds` runs of `func` (CPU time: steadier on a busy machine)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        func()
        best = min(best, time.process_time() - start)
    return best


def json_floor(log: Path) -> None:
    with log.open(encoding="utf-8") as file:
        for line in file:
            json.loads(line)


def draw_ms(pages: list[Path]) -> list[float | None]:
    """Milliseconds until each page has drawn itself in headless Chromium (None: no browser)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        return [None] * len(pages)
    times: list[float | None] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        for page_path in pages:
            best = float("inf")
            for _ in range(3):
                context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
                page = context.new_page()
                page.goto(page_path.resolve().as_uri())
                page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                best = min(best, float(page.locator("body").get_attribute("data-drawn-ms")))
                context.close()
            times.append(best)
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the 5,000-item run")
    args = parser.parse_args()
    sizes = [5_000] if args.quick else [5_000, 10_000, 50_000]
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = []
        for items in sizes:
            log = record(folder, items)
            out = folder / f"map-{items}.html"
            with log.open(encoding="utf-8") as file:
                events = sum(1 for _ in file)
            floor = best_of(3, lambda log=log: json_floor(log))
            build = best_of(3, lambda log=log, out=out: build_report(log, out))
            rows.append((items, events, log.stat().st_size, floor, build, out))
        drawn = draw_ms([row[-1] for row in rows])
        print(
            f"{'map items':>10} {'events':>8} {'log MB':>7} {'json.loads CPU s':>17} "
            f"{'build CPU s':>12} {'ratio':>6} {'page MB':>8} {'drawn ms':>9}"
        )
        for (items, events, log_size, floor, build, out), ms in zip(rows, drawn):
            print(
                f"{items:>10,} {events:>8,} {log_size / 1e6:>7.2f} {floor:>17.3f} "
                f"{build:>12.3f} {build / floor:>6.2f} {out.stat().st_size / 1e6:>8.2f} "
                f"{'-' if ms is None else f'{ms:.0f}':>9}"
            )


if __name__ == "__main__":
    main()
