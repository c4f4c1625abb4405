"""What a report shows, gathered from a stream of events one event at a time.

`RunModel.add(event)` sorts each event into its session (one log may hold several); the
`SessionModel` of each keeps one small record per task call, workflow and map, plus the
durations per task name, and `SessionModel.summary()` turns that into the JSON-ready dict
the page draws. Times in the summary are milliseconds since the session started.
"""

from __future__ import annotations

from typing import Any
from typing import TypeVar

from daglite.redaction import redact_url
from daglite.report.layout import bars
from daglite.report.layout import lanes_of
from daglite.report.stats import map_summary
from daglite.report.stats import task_stats

T = TypeVar("T")
#: Most log records and dataset rows kept per session (the page says when more existed).
MAX_LOGS = 5_000
MAX_DATASETS = 2_000
#: Most failures shown with their traceback.
MAX_FAILURES = 200


def _of(kind: type[T], value: Any) -> T | None:
    """`value` if it is a `kind` (a log written by hand or by another tool may differ)."""
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


class Call:
    """One task call, as its events tell it."""

    __slots__ = (  # noqa: RUF023 - in the order of the fields below
        "task_id", "name", "parent_id", "map_id", "map_index", "host", "pid", "thread",
        "start", "end", "outcome", "attempts", "key", "retries", "timeouts", "failure",
    )  # fmt: skip

    def __init__(self, event: dict[str, Any]) -> None:
        self.task_id: str = event["task_id"]
        if not isinstance(self.task_id, str):
            raise TypeError("task_id")
        self.name: str = str(event.get("name"))
        self.parent_id = _of(str, event.get("parent_id"))
        self.map_id = _of(str, event.get("map_id"))
        self.map_index = _of(int, event.get("map_index"))
        self.host = _of(str, event.get("host"))
        self.pid = _of(int, event.get("pid"))
        self.thread = _of(str, event.get("thread"))
        self.start: float = event["timestamp"]
        self.end: float | None = None
        self.outcome = "running"
        self.attempts = 1
        self.key: str | None = None
        self.retries: list[dict[str, Any]] = []
        self.timeouts = 0
        self.failure: dict[str, Any] | None = None


class SessionModel:
    """Everything a report shows about one session."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.info: dict[str, Any] = {}
        self.first: float | None = None
        self.last = 0.0
        self.calls: dict[str, Call] = {}
        self.workflows: dict[str, dict[str, Any]] = {}
        self.maps: dict[str, dict[str, Any]] = {}
        self.datasets: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.dropped = {"logs": 0, "datasets": 0}
        self.malformed: dict[str, int] = {}
        self.cache: dict[str, list[int]] = {}  # task name -> [hits, misses]

    def add(self, event: dict[str, Any]) -> None:
        """Take one event of this session into account."""
        ts = event["timestamp"]
        if self.first is None or ts < self.first:
            self.first = ts
        self.last = max(self.last, ts)
        handler = getattr(self, "_on_" + event["event"], None)
        if handler is not None:
            try:
                handler(event, ts)
            except (KeyError, TypeError, ValueError, AttributeError):  # a field missing or odd
                self.malformed[event["event"]] = self.malformed.get(event["event"], 0) + 1

    # -- sessions, workflows, maps --------------------------------------------------------

    def _on_SessionStarted(self, event: dict[str, Any], ts: float) -> None:
        self.info.update(
            {k: event.get(k) for k in ("backend", "host", "pid", "command")}, started=ts
        )

    def _on_SessionEnded(self, event: dict[str, Any], ts: float) -> None:
        self.info.update(
            {k: event.get(k) for k in ("status", "duration", "error_type", "error_message")},
            ended=ts,
        )

    def _on_WorkflowStarted(self, event: dict[str, Any], ts: float) -> None:
        self.workflows[event["workflow_id"]] = {
            "name": event.get("name"),
            "parent": event.get("parent_id"),
            "start": ts,
            "end": None,
            "status": "running",
        }

    def _on_WorkflowEnded(self, event: dict[str, Any], ts: float) -> None:
        flow = self.workflows.setdefault(
            event["workflow_id"],
            {"name": event.get("name"), "parent": event.get("parent_id"), "start": ts},
        )
        flow.update(end=ts, status=event.get("status"))
        flow["start"] = min(flow["start"], ts - float(event.get("duration") or 0))

    def _on_MapStarted(self, event: dict[str, Any], ts: float) -> None:
        self.maps[event["map_id"]] = {
            "name": event.get("name"),
            "backend": event.get("backend"),
            "total": event.get("total"),
            "parent": event.get("parent_id"),
            "start": ts,
            "end": None,
            "failures": None,
            "batches": {},
            "done": [],
        }

    def _on_MapEnded(self, event: dict[str, Any], ts: float) -> None:
        found = self.maps.get(event["map_id"])
        if found is None:
            self._on_MapStarted({**event, "total": event.get("total")}, ts)
            found = self.maps[event["map_id"]]
        found.update(end=ts, failures=event.get("failures"), ran=event.get("total"))
        found["batches"] = event.get("batches") or {}

    # -- task calls -----------------------------------------------------------------------

    def _call(self, event: dict[str, Any]) -> Call:
        call = self.calls.get(event["task_id"])
        if call is None:
            call = self.calls[event["task_id"]] = Call(event)
        if isinstance(event.get("pid"), int):
            call.pid, call.thread = event["pid"], _of(str, event.get("thread"))
            call.host = _of(str, event.get("host"))
        return call

    def _on_TaskStarted(self, event: dict[str, Any], ts: float) -> None:
        self._call(event).start = ts

    def _on_CacheHit(self, event: dict[str, Any], ts: float) -> None:
        self._call(event).key = event.get("key")
        self.cache.setdefault(str(event.get("name")), [0, 0])[0] += 1

    def _on_CacheMissed(self, event: dict[str, Any], ts: float) -> None:
        self._call(event).key = event.get("key")
        self.cache.setdefault(str(event.get("name")), [0, 0])[1] += 1

    def _on_TaskRetried(self, event: dict[str, Any], ts: float) -> None:
        self._call(event).retries.append(
            {k: event.get(k) for k in ("attempt", "delay", "error_type", "error_message")}
        )

    def _on_TaskTimedOut(self, event: dict[str, Any], ts: float) -> None:
        self._call(event).timeouts += 1

    def _ended(self, event: dict[str, Any], ts: float) -> Call:
        duration = float(event.get("duration") or 0)  # read (and fail) before any change
        attempts = int(event.get("attempts") or 1)
        call = self._call(event)
        call.end = ts
        call.start = min(call.start, ts - duration)
        call.attempts = attempts
        if call.map_id in self.maps:
            self.maps[call.map_id]["done"].append(ts)
        return call

    def _on_TaskSucceeded(self, event: dict[str, Any], ts: float) -> None:
        call = self._ended(event, ts)
        if event.get("cached"):
            call.outcome = "cached"
        else:
            call.outcome = "retried" if call.attempts > 1 or call.retries else "succeeded"

    def _on_TaskFailed(self, event: dict[str, Any], ts: float) -> None:
        call = self._ended(event, ts)
        call.outcome = "timed out" if event.get("error_type") == "TaskTimeoutError" else "failed"
        call.failure = {
            k: event.get(k) for k in ("error_type", "error_message", "traceback", "arguments")
        }

    # -- datasets and logs ----------------------------------------------------------------

    def _dataset(self, op: str, event: dict[str, Any], ts: float) -> None:
        if len(self.datasets) >= MAX_DATASETS:
            self.dropped["datasets"] += 1
            return
        row = {k: event.get(k) for k in ("key", "store", "format", "size", "duration")}
        if isinstance(row["store"], str):  # a store URL with credentials in it: mask them
            row["store"] = redact_url(row["store"])
        row.update(op=op, t=ts, task_id=event.get("task_id"))
        self.datasets.append(row)

    def _on_DatasetSaved(self, event: dict[str, Any], ts: float) -> None:
        self._dataset("saved", event, ts)

    def _on_DatasetLoaded(self, event: dict[str, Any], ts: float) -> None:
        self._dataset("loaded", event, ts)

    def _on_LogRecorded(self, event: dict[str, Any], ts: float) -> None:
        if len(self.logs) >= MAX_LOGS:
            self.dropped["logs"] += 1
            return
        row = {k: event.get(k) for k in ("level", "message", "logger", "name", "map_index")}
        row.update(t=ts, fields=event.get("fields") or {})
        self.logs.append(row)

    # -- the summary ----------------------------------------------------------------------

    def summary(self, max_bars: int) -> dict[str, Any]:
        """The JSON-ready picture of the session (times in ms since it started)."""
        t0 = self.info.get("started", self.first or 0.0)
        end = self.info.get("ended", self.last)

        def ms(ts: float | None) -> float | None:
            return None if ts is None else round((ts - t0) * 1000, 3)

        for call in self.calls.values():  # still running when the log ends
            if call.end is None:
                call.end = max(call.start, end)
        calls = sorted(self.calls.values(), key=lambda c: (c.start, c.task_id))
        coordinator = (_of(str, self.info.get("host")), _of(int, self.info.get("pid")))
        lanes, lane_of = lanes_of(calls, coordinator)
        drawn, notes = bars(calls, lane_of, self.calls, max_bars, ms)
        # succeeded + cached + failed + running = calls; retried and timed out are calls
        # that needed another attempt, or had one stopped by their timeout, whatever the end.
        counts = {
            "calls": len(calls),
            "succeeded": sum(c.outcome in ("succeeded", "retried") for c in calls),
            "cached": sum(c.outcome == "cached" for c in calls),
            "failed": sum(c.outcome in ("failed", "timed out") for c in calls),
            "retried": sum(bool(c.retries) or c.attempts > 1 for c in calls),
            "timed out": sum(c.timeouts > 0 or c.outcome == "timed out" for c in calls),
            "running": sum(c.outcome == "running" for c in calls),
        }
        if self.dropped["logs"]:
            notes.append(
                f"Only the first {MAX_LOGS:,} log records are shown "
                f"({self.dropped['logs']:,} more were recorded)."
            )
        if self.dropped["datasets"]:
            notes.append(
                f"Only the first {MAX_DATASETS:,} dataset reads and writes are listed "
                f"({self.dropped['datasets']:,} more happened)."
            )
        if self.malformed:
            kinds = ", ".join(f"{k} ({n})" for k, n in sorted(self.malformed.items()))
            notes.append(f"Events with missing or unreadable fields were skipped: {kinds}.")
        if "ended" not in self.info:
            notes.append(
                "The session has no end in the log: the run was stopped (or is still "
                "running). Calls without an end are drawn up to the last event, as running."
            )
        lane_label = {i: lane["label"] for i, lane in enumerate(lanes)}
        failures = [c for c in calls if c.failure is not None]
        if len(failures) > MAX_FAILURES:
            notes.append(
                f"{len(failures):,} calls failed; the first {MAX_FAILURES} are listed in full."
            )
        roots = [w for w in self.workflows.values() if not w.get("parent")]
        return {
            "id": self.session_id,
            "status": self.info.get("status") or "incomplete",
            "backend": self.info.get("backend"),
            "host": self.info.get("host"),
            "pid": self.info.get("pid"),
            "command": self.info.get("command"),
            "entry": roots[0]["name"] if roots else None,
            "error": _error(self.info),
            "started": t0,
            "duration": round((end - t0) * 1000, 3),
            "counts": counts,
            "lanes": lanes,
            "bars": drawn,
            "workflows": [
                {
                    "id": i,
                    "name": w["name"],
                    "parent": w.get("parent"),
                    "status": w["status"],
                    "start": ms(w["start"]),
                    "end": ms(w["end"] if w["end"] is not None else end),
                }
                for i, w in self.workflows.items()
            ],
            "tasks": task_stats(calls, self.cache, lane_label, lane_of),
            "maps": [map_summary(i, m, t0, end) for i, m in self.maps.items()],
            "failures": [
                _failure(c, lane_label[lane_of[c.task_id]], ms(c.end))
                for c in failures[:MAX_FAILURES]
            ],
            "datasets": [{**d, "t": ms(d["t"])} for d in self.datasets],
            "logs": [{**r, "t": ms(r["t"])} for r in self.logs],
            "notes": notes,
        }


def _error(info: dict[str, Any]) -> str | None:
    if info.get("error_type"):
        return f"{info['error_type']}: {info.get('error_message') or ''}".strip()
    return None


def _failure(call: Call, lane: str, end: float | None) -> dict[str, Any]:
    failure = call.failure or {}
    return {
        "name": call.name,
        "map_index": call.map_index,
        "attempts": call.attempts,
        "outcome": call.outcome,
        "lane": lane,
        "t": end,
        "error_type": failure.get("error_type"),
        "error_message": failure.get("error_message"),
        "traceback": failure.get("traceback") or "",
        "arguments": failure.get("arguments") or {},
        "retries": call.retries,
    }


class RunModel:
    """The sessions of one event log, in the order they first appear."""

    def __init__(self, session_id: str | None = None) -> None:
        self.only = session_id
        self.sessions: dict[str, SessionModel] = {}
        self.seen: dict[str, None] = {}  # every session id of the log, in order

    def add(self, event: dict[str, Any]) -> None:
        """Route `event` to its session (ignored if a single other session was asked for)."""
        sid = event["session_id"]
        self.seen[sid] = None
        if self.only is not None and sid != self.only:
            return
        model = self.sessions.get(sid)
        if model is None:
            model = self.sessions[sid] = SessionModel(sid)
        model.add(event)
