"""What each log line says: one function per kind of line, returning a styled `Text`.

The processor decides when a line is printed; these only word it. Every line starts with
the event's wall-clock time and a coloured symbol, and is printed without hard wrapping,
so a log file or a narrow terminal gets it whole.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text

from daglite_rich.display import Glyphs
from daglite_rich.display import Stats
from daglite_rich.display import clock
from daglite_rich.display import duration
from daglite_rich.display import first_line
from daglite_rich.display import label
from daglite_rich.display import plural
from daglite_rich.display import rate

if TYPE_CHECKING:
    from daglite import events as ev

Part = str | tuple[str, str]  # plain text, or (text, style)


def log_line(timestamp: float, glyph: str, style: str, *parts: Part) -> Text:
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


def _error(error_type: str | None, message: str | None) -> str:
    return f"{error_type}: {first_line(message or '')}"


# -- workflows ----------------------------------------------------------------------------


def workflow_started(event: ev.WorkflowStarted, g: Glyphs) -> Text:
    """`▸ workflow NAME` (plain output only: a terminal shows a status row instead)."""
    return log_line(event.timestamp, g.start, "cyan", "workflow", (event.name, "bold"))


def workflow_ended(event: ev.WorkflowEnded, g: Glyphs) -> Text:
    """`✔ workflow NAME finished in 2.40 s`, or `✘ ... failed after ...: Error: message`."""
    took = duration(event.duration)
    if event.status == "success":
        return log_line(
            event.timestamp, g.ok, "green", "workflow", (event.name, "bold"), f"finished in {took}"
        )
    return log_line(
        event.timestamp,
        g.fail,
        "bold red",
        "workflow",
        (event.name, "bold"),
        f"failed after {took}:",
        (_error(event.error_type, event.error_message), "red"),
    )


# -- task calls ---------------------------------------------------------------------------


def task_succeeded(event: ev.TaskSucceeded, g: Glyphs) -> Text:
    """`✔ NAME 12.0 ms` for a task that finished outside a map."""
    return log_line(
        event.timestamp,
        g.ok,
        "green",
        (label(event.name, event.map_index), "bold"),
        (duration(event.duration), "dim"),
    )


def task_failed(event: ev.TaskFailed, g: Glyphs) -> Text:
    """`✘ NAME[3] failed after 2 attempts (0.21 s): ValueError: message`."""
    attempts = "" if event.attempts == 1 else f" after {event.attempts} attempts"
    return log_line(
        event.timestamp,
        g.fail,
        "bold red",
        (label(event.name, event.map_index), "bold"),
        f"failed{attempts} ({duration(event.duration)}):",
        (_error(event.error_type, event.error_message), "red"),
    )


def task_retried(event: ev.TaskRetried, g: Glyphs) -> Text:
    """`↻ NAME[3] attempt 1 failed (ValueError: message) retrying in 0.50 s`."""
    return log_line(
        event.timestamp,
        g.retry,
        "yellow",
        (label(event.name, event.map_index), "bold"),
        f"attempt {event.attempt} failed",
        (f"({_error(event.error_type, event.error_message)})", "yellow"),
        f"retrying in {duration(event.delay)}",
    )


def task_timed_out(event: ev.TaskTimedOut, g: Glyphs) -> Text:
    """`◷ NAME attempt 1 timed out after 5.00 s`."""
    return log_line(
        event.timestamp,
        g.timeout,
        "yellow",
        (label(event.name, event.map_index), "bold"),
        f"attempt {event.attempt} timed out after {duration(event.timeout)}",
    )


def cache_hit(event: ev.CacheHit, g: Glyphs) -> Text:
    """`● NAME cache hit` for a task outside a map."""
    return log_line(
        event.timestamp,
        g.cached,
        "cyan",
        (label(event.name, event.map_index), "bold"),
        ("cache hit", "cyan"),
    )


def dataset(event: ev.DatasetSaved | ev.DatasetLoaded, g: Glyphs) -> Text:
    """`↓ saved dataset KEY (STORE, FORMAT) in 3.1 ms` (`↑ loaded dataset ...`)."""
    saved = event.kind == "DatasetSaved"
    fmt = f", {event.format}" if event.format else ""
    return log_line(
        event.timestamp,
        g.saved if saved else g.loaded,
        "blue",
        "saved dataset" if saved else "loaded dataset",
        (event.key, "bold"),
        (f"({event.store}{fmt}) in {duration(event.duration)}", "dim"),
    )


# -- user records -------------------------------------------------------------------------

#: Style of each record level (the symbol is the level's first letter, like `W`).
_LEVEL_STYLES = {
    "debug": "dim",
    "info": "blue",
    "warning": "yellow",
    "error": "bold red",
    "critical": "bold red reverse",
}


def log_record(event: ev.LogRecorded) -> Text:
    """`W clean[3] dropped rows count=2`: a record logged with `get_logger()`."""
    style = _LEVEL_STYLES.get(event.level, "")
    parts: list[Part] = []
    if event.name is not None:
        parts.append((label(event.name, event.map_index), "bold"))
    parts.append((event.message, style if event.level != "info" else ""))
    parts.extend((f"{key}={value}", "dim") for key, value in event.fields.items())
    return log_line(event.timestamp, event.level[:1].upper(), style, *parts)


# -- maps ---------------------------------------------------------------------------------


def map_started(event: ev.MapStarted, g: Glyphs) -> Text:
    """`▸ map NAME: 100 items on thread` (plain output only: a terminal shows a bar)."""
    count = "unknown number of" if event.total is None else str(event.total)
    return log_line(
        event.timestamp,
        g.start,
        "cyan",
        "map",
        (event.name + ":", "bold"),
        f"{count} items on {event.backend}",
    )


def map_progress(
    timestamp: float,
    name: str,
    *,
    done: int,
    total: int | None,
    failures: int,
    elapsed: float,
    g: Glyphs,
) -> Text:
    """The periodic progress line of a map when there are no bars."""
    speed = done / elapsed if elapsed > 0 else 0.0
    parts: list[Part] = ["map", (name + ":", "bold")]
    parts.append(f"{done}/{total} ({done * 100 // total}%)" if total else f"{done} items")
    parts.append(rate(speed))
    if total and speed > 0:
        parts.append(f"eta {clock((total - done) / speed)}")
    if failures:
        parts.append((f"{failures} failed", "red"))
    return log_line(timestamp, g.progress, "dim", *parts)


def map_ended(event: ev.MapEnded, g: Glyphs, *, expected: int | None, cached: int) -> Text:
    """`✔ map NAME: 100/100 items in 2.31 s (43.3/s)`, plus failed and cached counts."""
    finished = event.total - event.skipped  # items that did not finish are not counted
    count = f"{finished}/{expected}" if expected is not None else str(finished)
    noun = "item" if count == "1" else "items"
    parts: list[Part] = [
        "map",
        (event.name + ":", "bold"),
        f"{count} {noun} in {duration(event.duration)}",
    ]
    if event.duration > 0 and event.total:
        parts.append((f"({rate(event.total / event.duration)})", "dim"))
    if event.failures:
        parts.append((f"{event.failures} failed", "bold red"))
    if cached:
        parts.append((f"{cached} cached", "cyan"))
    if event.failures:
        return log_line(event.timestamp, g.fail, "bold red", *parts)
    return log_line(event.timestamp, g.ok, "green", *parts)


# -- the session --------------------------------------------------------------------------


def summary(
    stats: Stats,
    elapsed: float,
    g: Glyphs,
    *,
    status: str = "success",
    error_type: str | None = None,
    error_message: str | None = None,
) -> Text:
    """The one line left on screen when a session ends."""
    text = Text()
    if status == "success":
        text.append(f"{g.ok} daglite session finished in {duration(elapsed)}", "bold green")
    elif error_type == "KeyboardInterrupt":
        text.append(f"{g.fail} daglite session interrupted after {duration(elapsed)}", "bold")
    else:
        text.append(f"{g.fail} daglite session failed after {duration(elapsed)}", "bold red")
    text.append(": ")
    text.append(plural(stats.run, "task") + " run, ")
    text.append(plural(stats.cached, "cache hit") + ", ")
    text.append(plural(stats.failed, "failure"), style="bold red" if stats.failed else "")
    if stats.retries:
        text.append(", " + plural(stats.retries, "retry", "retries"), style="yellow")
    if stats.maps:
        text.append(", " + plural(stats.maps, "map"))
    if error_type is not None and error_type != "KeyboardInterrupt":
        text.append(f" ({_error(error_type, error_message)})", style="red")
    return text
