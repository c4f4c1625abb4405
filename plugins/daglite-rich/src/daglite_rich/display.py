"""What the rich processor draws: progress columns, log lines, durations and the summary.

Nothing here holds run state: the processor owns it and hands plain values (or a `Stats`
object the status row reads at render time) to these helpers.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import attrs
from rich.console import Console
from rich.progress import ProgressColumn
from rich.progress import Task
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
    timeouts: int = 0
    maps: int = 0
    workflows: int = 0


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


# -- log lines ----------------------------------------------------------------------------


def log_line(timestamp: float, glyph: str, style: str, *parts: str | tuple[str, str]) -> Text:
    """One log line: a dim wall-clock time, a coloured symbol, then plain or styled parts."""
    text = Text()
    text.append(time.strftime("%H:%M:%S ", time.localtime(timestamp)), style="dim")
    text.append(glyph, style=style)
    for part in parts:
        text.append(" ")
        if isinstance(part, tuple):
            text.append(part[0], style=part[1])
        else:
            text.append(part)
    return text


def summary(
    stats: Stats,
    elapsed: float,
    glyphs: Glyphs,
    *,
    status: str = "success",
    error_type: str | None = None,
    error_message: str | None = None,
) -> Text:
    """The one line left on screen when a session ends."""
    text = Text()
    if status == "success":
        text.append(f"{glyphs.ok} daglite session finished in {duration(elapsed)}", "bold green")
    elif error_type == "KeyboardInterrupt":
        text.append(f"{glyphs.fail} daglite session interrupted after {duration(elapsed)}", "bold")
    else:
        text.append(f"{glyphs.fail} daglite session failed after {duration(elapsed)}", "bold red")
    text.append(": ")
    text.append(_plural(stats.run, "task") + " run, ")
    text.append(_plural(stats.cached, "cache hit") + ", ")
    text.append(
        _plural(stats.failed, "failure", "failures"), style="bold red" if stats.failed else ""
    )
    if stats.retries:
        text.append(", " + _plural(stats.retries, "retry", "retries"), style="yellow")
    if stats.maps:
        text.append(", " + _plural(stats.maps, "map"))
    if error_type is not None and error_type != "KeyboardInterrupt":
        text.append(f" ({error_type}: {first_line(error_message or '')})", style="red")
    return text


def _plural(count: int, one: str, many: str | None = None) -> str:
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
        text = Text(_plural(stats.run, "task") + " run", style="dim")
        if stats.cached:
            text.append(f" · {stats.cached} cached", style="cyan")
        if stats.failed:
            text.append(f" · {stats.failed} failed", style="bold red")
        if stats.retries:
            text.append(" · " + _plural(stats.retries, "retry", "retries"), style="yellow")
        return text
