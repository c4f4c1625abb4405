"""The pieces of the live display: symbols, number formats, counters and progress columns.

Nothing here holds run state: the processor owns it and hands plain values (or a `Stats`
object the status row reads at render time) to these helpers.
"""

from __future__ import annotations

from typing import NamedTuple

import attrs
from rich.console import Console
from rich.progress import BarColumn
from rich.progress import MofNCompleteColumn
from rich.progress import Progress
from rich.progress import ProgressColumn
from rich.progress import SpinnerColumn
from rich.progress import Task
from rich.progress import TextColumn
from rich.progress import TimeElapsedColumn
from rich.text import Text


class Glyphs(NamedTuple):
    """The symbols in front of log lines (ASCII words when the output cannot encode Unicode)."""

    ok: str
    fail: str
    retry: str
    timeout: str
    cached: str
    start: str
    saved: str
    loaded: str
    progress: str


UNICODE = Glyphs("✔", "✘", "↻", "◷", "●", "▸", "↓", "↑", "…")
ASCII = Glyphs("ok", "FAILED", "retry", "timeout", "cached", ">", "saved", "loaded", "...")


def glyphs_for(console: Console) -> Glyphs:
    """Unicode symbols when the console's encoding can carry them, else ASCII words."""
    return UNICODE if console.encoding.lower().startswith("utf") else ASCII


@attrs.define
class Stats:
    """Session-wide counters, shown by the status row while running and by the summary."""

    run: int = 0
    failed: int = 0
    cached: int = 0
    retries: int = 0
    maps: int = 0


# -- numbers ------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """A short human duration: `0.04 ms`, `8.1 ms`, `2.31 s`, `3 min 04 s`, `1 h 02 min`."""
    if seconds < 0.001:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 0.1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def rate(per_second: float) -> str:
    """Items per second with sensible precision: `0.25/s`, `12.3/s`, `1520/s`."""
    if per_second < 1:
        return f"{per_second:.2f}/s"
    if per_second < 100:
        return f"{per_second:.1f}/s"
    return f"{per_second:.0f}/s"


def clock(seconds: float) -> str:
    """`H:MM:SS`, the layout of rich's own time columns."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def label(name: str, map_index: int | None) -> str:
    """`name[3]` for a map item, `name` otherwise."""
    return name if map_index is None else f"{name}[{map_index}]"


def first_line(message: str, limit: int = 200) -> str:
    """The first line of an error message, cut to `limit` characters."""
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 task`, `2 tasks`, `3 retries`."""
    return f"{count} {one if count == 1 else many or one + 's'}"


# -- progress columns ---------------------------------------------------------------------


class RateColumn(ProgressColumn):
    """Items per second of a map bar (blank until rich has two samples)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(rate(speed) if speed else "", style="progress.data.speed")


class RemainingColumn(ProgressColumn):
    """`eta 0:00:05`, or nothing when the total is unknown or no rate is known yet."""

    max_refresh = 0.5  # an ETA that changes every frame is unreadable

    def render(self, task: Task) -> Text:
        remaining = task.time_remaining
        return Text("" if remaining is None else f"eta {clock(remaining)}", "progress.remaining")


class OutcomeColumn(ProgressColumn):
    """Failed and cached item counts of a map bar (only when non-zero)."""

    def __init__(self, glyphs: Glyphs) -> None:
        super().__init__()
        self.glyphs = glyphs

    def render(self, task: Task) -> Text:
        text = Text()
        failures = task.fields.get("failures", 0)
        cached = task.fields.get("cached", 0)
        if failures:
            text.append(f"{self.glyphs.fail} {failures} failed", style="bold red")
        if cached:
            text.append(" " if failures else "")
            text.append(f"{self.glyphs.cached} {cached} cached", style="cyan")
        return text


class StatusColumn(ProgressColumn):
    """The detail of a status row: the session's counters, or what a workflow is running."""

    def render(self, task: Task) -> Text:
        stats = task.fields.get("stats")
        if stats is None:
            detail = task.fields.get("detail", "")
            return Text(f"running {detail}" if detail else "", style="dim")
        text = Text(plural(stats.run, "task") + " run", style="dim")
        if stats.cached:
            text.append(f" · {stats.cached} cached", style="cyan")
        if stats.failed:
            text.append(f" · {stats.failed} failed", style="bold red")
        if stats.retries:
            text.append(" · " + plural(stats.retries, "retry", "retries"), style="yellow")
        return text


# -- the two tables of the live region ----------------------------------------------------


def status_rows(console: Console) -> Progress:
    """Rows for the session and each running workflow: spinner, name, elapsed, detail."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        StatusColumn(),
        console=console,
    )


def map_bars(console: Console, glyphs: Glyphs) -> Progress:
    """One bar per running map: name, bar, done/total, rate, elapsed, eta, failed/cached."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        RemainingColumn(),
        OutcomeColumn(glyphs),
        console=console,
    )
