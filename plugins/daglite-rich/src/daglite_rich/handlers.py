"""How the `rich` processor takes each event: stats, map bars, status rows and log lines.

One function per event kind, each given the processor and the event (`HANDLERS` maps the
kind's name to it). They run under the processor's lock, one event at a time, after the
processor began the session (`RichProcessor._begin`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import attrs
from rich.markup import escape
from rich.progress import TaskID

from daglite_rich import display
from daglite_rich import lines

if TYPE_CHECKING:
    from daglite import events as ev
    from daglite_rich.processor import RichProcessor


@attrs.define
class RunningMap:
    """A running `map_tasks`/`gather_tasks` call."""

    name: str
    total: int | None
    started: float
    last_line: float
    depth: int = 0
    done: int = 0  # items finished (succeeded, cached or failed)
    failures: int = 0
    cached: int = 0
    row: TaskID | None = None
    drawn: tuple[int, int, int] = (0, 0, 0)


# -- sessions and workflows -------------------------------------------------------


def _session_started(processor: RichProcessor, event: ev.SessionStarted) -> None:
    pass  # `_begin` did the work; a nested session's start changes nothing on screen


def _session_ended(processor: RichProcessor, event: ev.SessionEnded) -> None:
    if event.session_id == processor._session_id:
        processor._finish(event)


def _workflow_started(processor: RichProcessor, event: ev.WorkflowStarted) -> None:
    row = None
    if processor._status is not None:
        row = processor._status.add_task(f"workflow [bold cyan]{escape(event.name)}[/]", detail="")
    else:
        processor._print(lines.workflow_started(event, processor._glyphs))
    processor._workflows[event.workflow_id] = row
    _show_running(processor)


def _workflow_ended(processor: RichProcessor, event: ev.WorkflowEnded) -> None:
    row = processor._workflows.pop(event.workflow_id, None)
    if row is not None and processor._status is not None:
        processor._status.remove_task(row)
    processor._print(lines.workflow_ended(event, processor._glyphs))
    _show_running(processor)


def _show_running(processor: RichProcessor) -> None:
    """Put the newest running task (outside maps) on the innermost workflow's row."""
    if processor._status is None:
        return
    rows = [row for row in processor._workflows.values() if row is not None]
    if rows:
        detail = next(reversed(processor._running.values()), "")
        processor._status.update(rows[-1], detail=detail)


# -- task calls -------------------------------------------------------------------

# The calls of map items are counted by their map's counts (`_map_counts`); their
# TaskStarted and TaskSucceeded do not come (`map_items=False`) and are ignored if fed.


def _task_started(processor: RichProcessor, event: ev.TaskStarted) -> None:
    if event.map_index is None:
        processor._running[event.task_id] = display.label(event.name, event.map_index)
        _show_running(processor)


def _task_succeeded(processor: RichProcessor, event: ev.TaskSucceeded) -> None:
    if event.map_index is not None:
        return
    if event.cached:
        processor._stats.cached += 1
    else:
        processor._stats.run += 1
    if processor._running.pop(event.task_id, None) is not None:
        _show_running(processor)
    if processor.show_tasks and not event.cached:  # a cache hit had its line already
        processor._print(lines.task_succeeded(event, processor._glyphs))


def _task_failed(processor: RichProcessor, event: ev.TaskFailed) -> None:
    if event.map_index is None:  # an item's failure is in its map's counts
        processor._stats.run += 1
        processor._stats.failed += 1
        if processor._running.pop(event.task_id, None) is not None:
            _show_running(processor)
    processor._print(lines.task_failed(event, processor._glyphs))  # every failure gets its line


def _task_retried(processor: RichProcessor, event: ev.TaskRetried) -> None:
    processor._stats.retries += 1
    processor._print(lines.task_retried(event, processor._glyphs))


def _task_timed_out(processor: RichProcessor, event: ev.TaskTimedOut) -> None:
    processor._print(lines.task_timed_out(event, processor._glyphs))


def _cache_hit(processor: RichProcessor, event: ev.CacheHit) -> None:
    if event.map_index is None:  # an item's hit is counted on its map's bar
        processor._print(lines.cache_hit(event, processor._glyphs))


def _dataset(processor: RichProcessor, event: ev.DatasetSaved | ev.DatasetLoaded) -> None:
    if event.map_index is not None:
        return  # one line per map item would drown the screen
    processor._print(lines.dataset(event, processor._glyphs))


def _log_recorded(processor: RichProcessor, event: ev.LogRecorded) -> None:
    # The user's own records: the logger already dropped those below the session's level.
    processor._print(lines.log_record(event))


# -- maps -------------------------------------------------------------------------


def _map_started(processor: RichProcessor, event: ev.MapStarted) -> None:
    processor._stats.maps += 1
    parent_map = processor._maps.get(event.parent_map_id or "")
    now = time.monotonic()
    entry = RunningMap(
        name=event.name,
        total=event.total,
        started=now,
        last_line=now,
        depth=parent_map.depth + 1 if parent_map is not None else 0,
    )
    processor._maps[event.map_id] = entry
    if processor._bars is None:
        processor._print(lines.map_started(event, processor._glyphs))
        return
    entry.row = processor._bars.add_task(
        f"{'  ' * entry.depth}[bold]{escape(event.name)}[/] [dim]({escape(event.backend)})[/]",
        total=event.total,
        failures=0,
        cached=0,
    )


def _map_counts(
    processor: RichProcessor, entry: RunningMap, done: int, cached: int, failures: int
) -> None:
    """Take a map's counts so far (totals, not increments) into its bar and the stats."""
    finished = done + cached + failures
    stats = processor._stats
    stats.run += (finished - cached) - (entry.done - entry.cached)  # succeeded + failed
    stats.cached += cached - entry.cached
    stats.failed += failures - entry.failures
    entry.done, entry.cached, entry.failures = finished, cached, failures


def _map_progress(processor: RichProcessor, event: ev.MapProgress) -> None:
    entry = processor._maps.get(event.map_id)
    if entry is None:
        return
    _map_counts(processor, entry, event.done, event.cached, event.failures)
    if processor._bars is not None:
        return  # `_sync_bars` draws it with the next frame
    now = time.monotonic()
    if now - entry.last_line >= processor.plain_interval:
        entry.last_line = now
        processor._print(
            lines.map_progress(
                event.timestamp,
                entry.name,
                done=entry.done,
                total=entry.total,
                failures=entry.failures,
                elapsed=now - entry.started,
                g=processor._glyphs,
            )
        )


def _map_ended(processor: RichProcessor, event: ev.MapEnded) -> None:
    entry = processor._maps.pop(event.map_id, None)
    if entry is not None:
        _map_counts(processor, entry, event.done, event.cached, event.failures)
        if entry.row is not None and processor._bars is not None:
            processor._bars.remove_task(entry.row)
    expected = entry.total if entry is not None else None
    processor._print(
        lines.map_ended(event, processor._glyphs, expected=expected, cached=event.cached)
    )


#: The handler of each event kind the processor draws (its `Interest`).
HANDLERS: dict[str, Callable[[RichProcessor, Any], None]] = {
    "SessionStarted": _session_started,
    "SessionEnded": _session_ended,
    "WorkflowStarted": _workflow_started,
    "WorkflowEnded": _workflow_ended,
    "TaskStarted": _task_started,
    "TaskSucceeded": _task_succeeded,
    "TaskFailed": _task_failed,
    "TaskRetried": _task_retried,
    "TaskTimedOut": _task_timed_out,
    "CacheHit": _cache_hit,
    "DatasetSaved": _dataset,
    "DatasetLoaded": _dataset,
    "MapStarted": _map_started,
    "MapProgress": _map_progress,
    "MapEnded": _map_ended,
    "LogRecorded": _log_recorded,
}
