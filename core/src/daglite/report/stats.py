"""Statistics of a session's task calls and maps, for the report's tables and charts."""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from daglite.report.model import Call

#: Slowest calls listed per task.
SLOWEST = 5


def task_stats(
    calls: list[Call],
    cache: dict[str, list[int]],
    lane_label: dict[int, str],
    lane_of: dict[str, int],
) -> list[dict[str, Any]]:
    """Per task name: counts, durations (of the calls that ran), cache hit rate, slowest."""
    by_name: dict[str, list[Call]] = {}
    for call in calls:
        by_name.setdefault(call.name, []).append(call)
    stats = []
    for name, group in sorted(by_name.items()):
        ran = sorted((c.end or c.start) - c.start for c in group if c.outcome != "cached")
        hits, misses = cache.get(name, (0, 0))
        slow = heapq.nlargest(
            SLOWEST,
            (c for c in group if c.outcome != "cached"),
            key=lambda c: ((c.end or c.start) - c.start, c.task_id),
        )
        stats.append(
            {
                "name": name,
                "count": len(group),
                "ran": len(ran),
                "cached": sum(1 for c in group if c.outcome == "cached"),
                "failed": sum(1 for c in group if c.outcome in ("failed", "timed out")),
                "retries": sum(len(c.retries) for c in group),
                "total": _ms(sum(ran)),
                "p50": _ms(_percentile(ran, 50)),
                "p90": _ms(_percentile(ran, 90)),
                "p99": _ms(_percentile(ran, 99)),
                "max": _ms(ran[-1]) if ran else None,
                "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
                "slowest": [
                    {
                        "duration": _ms((c.end or c.start) - c.start),
                        "map_index": c.map_index,
                        "lane": lane_label[lane_of[c.task_id]],
                    }
                    for c in slow
                ],
            }
        )
    return stats


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _percentile(ordered: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def map_summary(map_id: str, m: dict[str, Any], t0: float, end: float) -> dict[str, Any]:
    """A map's items, duration, throughput over its run (items/s per bin) and batch sizes."""
    start, stop = m["start"], m["end"] if m["end"] is not None else end
    done = sorted(m["done"])
    span = max(stop - start, 1e-9)
    bins = min(40, max(1, len(done)))
    counts = [0] * bins
    for ts in done:
        counts[min(bins - 1, max(0, int((ts - start) / span * bins)))] += 1
    width = span / bins
    return {
        "id": map_id,
        "name": m["name"],
        "backend": m["backend"],
        "parent": m["parent"],
        "total": m["total"],
        "ran": m.get("ran", len(done)),
        "failures": m["failures"],
        "start": round((start - t0) * 1000, 3),
        "end": round((stop - t0) * 1000, 3),
        "items_per_s": round(len(done) / span, 3) if done else 0,
        "throughput": [round(n / width, 3) for n in counts],
        "batches": sorted(([int(k), v] for k, v in m["batches"].items()), key=lambda b: b[0]),
    }
