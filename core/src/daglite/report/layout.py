"""The timeline's layout: one lane per worker process and thread, and the bars drawn in it.

A lane is where calls ran: a (host, process id, thread name) triple. A call made inside another
call on the same lane (a nested map run inline, a task calling a task) is drawn one level
deeper, under its parent. Large runs keep the page responsive by drawing at most
`max_bars` calls: every call that did not simply succeed is kept, the others are sampled
evenly, and the page says so. Statistics always use every call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from daglite.report.model import Call

#: More lanes than this and threads of a process share one lane.
MAX_LANES = 64
#: Outcome codes of the bars (the page colours them).
OUTCOMES = ("succeeded", "cached", "failed", "retried", "timed out", "running")


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def lanes_of(
    calls: list[Call], coordinator: tuple[str | None, int | None]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The lanes (sorted: the coordinator first) and each call's lane index.

    A lane is a (host, process id, thread) triple; the host is named only when calls ran
    on more than one machine.
    """
    merged = len({(c.host, c.pid, c.thread) for c in calls}) > MAX_LANES
    many_hosts = len({c.host for c in calls if c.host is not None}) > 1

    def key_of(call: Call) -> tuple[Any, Any, Any]:
        return (call.host, call.pid, None if merged else call.thread)

    def on_coordinator(host: str | None, pid: int | None) -> bool:
        return pid is not None and pid == coordinator[1] and host in (coordinator[0], None)

    threads: dict[tuple[Any, Any, Any], set[str]] = {}
    for call in calls:
        threads.setdefault(key_of(call), set()).add(str(call.thread))

    def order(key: tuple[Any, Any, Any]) -> tuple[Any, ...]:
        host, pid, thread = key
        return (not on_coordinator(host, pid), pid is None, host or "", pid or 0,
                _natural(str(thread or "")))  # fmt: skip

    lanes = []
    index: dict[tuple[Any, Any, Any], int] = {}
    for key in sorted(threads, key=order):
        host, pid, thread = key
        if pid is None:
            label = "unknown worker (no pid in the log: written by an older daglite)"
        else:
            where = f"{len(threads[key])} threads" if merged else str(thread)
            label = (f"{host} · " if many_hosts else "") + f"pid {pid} · {where}"
            label += " (coordinator)" if on_coordinator(host, pid) else ""
        index[key] = len(lanes)
        lanes.append(
            {"label": label, "host": host, "pid": pid, "thread": None if merged else thread}
        )
    return lanes, {c.task_id: index[key_of(c)] for c in calls}


def _depths(calls: list[Call], lane_of: dict[str, int], by_id: dict[str, Call]) -> list[int]:
    """How many of each call's ancestors ran on its lane (its nesting level in the lane)."""
    memo: dict[str, int] = {}

    def depth(call: Call) -> int:
        found = memo.get(call.task_id)
        if found is not None:
            return found
        level = 0
        parent = by_id.get(call.parent_id) if call.parent_id else None
        if parent is not None and parent is not call:
            level = depth(parent) + (lane_of[parent.task_id] == lane_of[call.task_id])
        memo[call.task_id] = level
        return level

    return [depth(c) for c in calls]


def _sample(calls: list[Call], max_bars: int) -> list[Call]:
    keep = [c for c in calls if c.outcome not in ("succeeded", "cached")][:max_bars]
    rest = [c for c in calls if c.outcome in ("succeeded", "cached")]
    room = max_bars - len(keep)
    if room > 0 and rest:
        step = len(rest) / room
        keep += [rest[int(i * step)] for i in range(min(room, len(rest)))]
    return sorted(keep, key=lambda c: (c.start, c.task_id))


def bars(
    calls: list[Call],
    lane_of: dict[str, int],
    by_id: dict[str, Call],
    max_bars: int,
    ms: Callable[[float], float | None],
) -> tuple[dict[str, Any], list[str]]:
    """The bars to draw as columns (one list per field) and notes on what was left out."""
    notes = []
    shown = calls
    if len(calls) > max_bars:
        shown = _sample(calls, max_bars)
        notes.append(
            f"The timeline draws {len(shown):,} of {len(calls):,} task calls to stay fast: "
            "every failed, retried, timed-out and running call, and an even sample of the "
            "others. Counts and statistics use every call."
        )
    if len({(c.host, c.pid, c.thread) for c in calls}) > MAX_LANES:
        notes.append(
            f"More than {MAX_LANES} worker threads ran calls: the threads of each process "
            "share one lane."
        )
    depth_of = dict(zip((c.task_id for c in calls), _depths(calls, lane_of, by_id)))
    names: dict[str, int] = {}
    keys: dict[str, int] = {}
    columns: dict[str, list[Any]] = {k: [] for k in ("s", "d", "l", "z", "o", "n", "i", "a", "k")}
    code = {outcome: i for i, outcome in enumerate(OUTCOMES)}
    for call in shown:
        start = ms(call.start) or 0.0
        columns["s"].append(start)
        columns["d"].append(round((ms(call.end or call.start) or 0.0) - start, 3))
        columns["l"].append(lane_of[call.task_id])
        columns["z"].append(depth_of[call.task_id])
        columns["o"].append(code[call.outcome])
        columns["n"].append(names.setdefault(call.name, len(names)))
        columns["i"].append(call.map_index)
        columns["a"].append(call.attempts)
        columns["k"].append(keys.setdefault(call.key, len(keys)) if call.key else -1)
    return {
        **columns,
        "names": list(names),
        "keys": list(keys),
        "outcomes": list(OUTCOMES),
        "total": len(calls),
    }, notes
