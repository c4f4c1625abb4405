"""How `OtelProcessor` turns events into spans, on the coordinator.

One function per event kind, each given the processor and the event (`HANDLERS` maps the
kind's name to it); they run under the processor's lock. Session spans start at
`SessionStarted`; a workflow or task span is recorded whole when its call ends, with the
ids `daglite_otel.ids` derives (see `daglite_otel.processor` for the design).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import attrs
from opentelemetry import trace

from daglite_otel import ids
from daglite_otel import relay
from daglite_otel import spans
from daglite_otel.spans import ATTEMPTS
from daglite_otel.spans import BACKEND
from daglite_otel.spans import CACHE_HIT
from daglite_otel.spans import CACHE_KEY
from daglite_otel.spans import MAP_ID
from daglite_otel.spans import MAP_INDEX
from daglite_otel.spans import OUTCOME
from daglite_otel.spans import SESSION_ID
from daglite_otel.spans import TASK_ID
from daglite_otel.spans import TASK_NAME
from daglite_otel.spans import WORKFLOW_ID
from daglite_otel.spans import WORKFLOW_NAME
from daglite_otel.spans import Error
from daglite_otel.spans import finish
from daglite_otel.spans import ns

if TYPE_CHECKING:
    from daglite import events as ev
    from daglite_otel.processor import OtelProcessor
    from daglite_otel.relay import SpansRelayed


@attrs.define
class PendingCall:
    """What the events of a task call said before its last one."""

    first: ev.TaskEvent
    backend: str | None = None
    cache_key: str | None = None
    events: list[tuple[str, dict[str, Any], int]] = attrs.field(factory=list)


def _session_started(processor: OtelProcessor, event: ev.SessionStarted) -> None:
    span = processor._get_tracer().start_span(
        "daglite session",
        attributes={SESSION_ID: event.session_id, BACKEND: event.backend},
        start_time=ns(event.timestamp),
    )
    context = span.get_span_context()
    if not context.is_valid:  # tracing is disabled
        return
    processor._sessions[event.session_id] = span
    processor._traces[event.session_id] = (context.trace_id, int(context.trace_flags))
    processor._backends[event.session_id] = event.backend


def _session_ended(processor: OtelProcessor, event: ev.SessionEnded) -> None:
    sid = event.session_id
    for workflow in [w for w in processor._workflows.values() if w.session_id == sid]:
        processor._workflows.pop(workflow.workflow_id)
        _unfinished_workflow(processor, workflow, event.timestamp)
    for task_id in [t for t, c in processor._calls.items() if c.first.session_id == sid]:
        _task_span(processor, processor._calls.pop(task_id), event.timestamp, None)
    span = processor._sessions.pop(sid, None)
    processor._traces.pop(sid, None)
    processor._backends.pop(sid, None)
    if span is not None:
        span.set_attribute(OUTCOME, event.status)
        error = None
        if event.status != "success":
            error = (event.error_type or "Error", event.error_message or "", "")
        finish(span, event.timestamp, error)


def _workflow_started(processor: OtelProcessor, event: ev.WorkflowStarted) -> None:
    processor._workflows[event.workflow_id] = event


def _workflow_ended(processor: OtelProcessor, event: ev.WorkflowEnded) -> None:
    processor._workflows.pop(event.workflow_id, None)
    error = None
    if event.status != "success":
        error = (event.error_type or "Error", event.error_message or "", "")
    _span(
        processor,
        f"workflow {event.name}",
        event.session_id,
        event.workflow_id,
        event.parent_id,
        event.timestamp - event.duration,
        event.timestamp,
        {WORKFLOW_NAME: event.name, WORKFLOW_ID: event.workflow_id, OUTCOME: event.status},
        [],
        error,
    )


def _unfinished_workflow(processor: OtelProcessor, started: ev.WorkflowStarted, end: float) -> None:
    _span(
        processor,
        f"workflow {started.name}",
        started.session_id,
        started.workflow_id,
        started.parent_id,
        started.timestamp,
        end,
        {WORKFLOW_NAME: started.name, WORKFLOW_ID: started.workflow_id, OUTCOME: "unfinished"},
        [],
        ("Unfinished", "the session ended before the workflow returned", ""),
    )


def _call(processor: OtelProcessor, event: ev.TaskEvent) -> PendingCall:
    call = processor._calls.get(event.task_id)
    if call is None:
        call = processor._calls[event.task_id] = PendingCall(first=event)
    return call


def _task_started(processor: OtelProcessor, event: ev.TaskStarted) -> None:
    _call(processor, event).backend = event.backend


def _cache_looked_up(processor: OtelProcessor, event: ev.CacheHit | ev.CacheMissed) -> None:
    _call(processor, event).cache_key = event.key


def _task_retried(processor: OtelProcessor, event: ev.TaskRetried) -> None:
    _call(processor, event).events.append(
        (
            "daglite.retry",
            {
                "daglite.task.attempt": event.attempt,
                "daglite.retry.delay": event.delay,
                "exception.type": event.error_type,
                "exception.message": event.error_message,
            },
            ns(event.timestamp),
        )
    )


def _task_timed_out(processor: OtelProcessor, event: ev.TaskTimedOut) -> None:
    _call(processor, event).events.append(
        (
            "daglite.timeout",
            {"daglite.task.attempt": event.attempt, "daglite.timeout": event.timeout},
            ns(event.timestamp),
        )
    )


def _task_ended(processor: OtelProcessor, event: ev.TaskSucceeded | ev.TaskFailed) -> None:
    call = processor._calls.pop(event.task_id, None) or PendingCall(first=event)
    _task_span(processor, call, event.timestamp, event)


def _task_span(
    processor: OtelProcessor,
    call: PendingCall,
    end: float,
    last: ev.TaskSucceeded | ev.TaskFailed | None,
) -> None:
    """Record the span of a task call that ended with `last` (`None`: it never ended)."""
    first = call.first
    backend = call.backend or processor._backends.get(first.map_id or "")
    backend = backend or processor._backends.get(first.session_id, "")
    attributes: dict[str, Any] = {
        TASK_NAME: first.name,
        TASK_ID: first.task_id,
        BACKEND: backend,
    }
    if first.map_index is not None:
        attributes[MAP_INDEX] = first.map_index
        attributes[MAP_ID] = first.map_id or ""
    if call.cache_key is not None:
        attributes[CACHE_KEY] = call.cache_key
    error: Error | None = None
    start = first.timestamp
    if last is None:
        attributes[OUTCOME] = "unfinished"
        attributes[CACHE_HIT] = False
        error = ("Unfinished", "the session ended before the task returned", "")
    else:
        start = end - last.duration
        failed = last.kind == "TaskFailed"
        cached = bool(getattr(last, "cached", False))
        attributes[OUTCOME] = "failure" if failed else "success"
        attributes[CACHE_HIT] = cached
        attributes[ATTEMPTS] = 0 if cached else last.attempts
        if failed:
            error = (last.error_type, last.error_message, last.traceback)  # type: ignore[union-attr]
    _span(
        processor,
        f"task {first.name}",
        first.session_id,
        first.task_id,
        first.parent_id,
        start,
        end,
        attributes,
        call.events,
        error,
    )


def _spans_relayed(processor: OtelProcessor, event: SpansRelayed) -> None:
    if event.session_id in processor._sessions:
        for record in event.spans:
            relay.recreate(record, *processor._scope(*record["scope"]))


def _map_started(processor: OtelProcessor, event: ev.MapStarted) -> None:
    processor._backends[event.map_id] = event.backend


def _map_ended(processor: OtelProcessor, event: ev.MapEnded) -> None:
    processor._backends.pop(event.map_id, None)


def _span(
    processor: OtelProcessor,
    name: str,
    session_id: str,
    frame_id: str,
    parent_id: str | None,
    start: float,
    end: float,
    attributes: dict[str, Any],
    events: list[tuple[str, dict[str, Any], int]],
    error: Error | None,
) -> None:
    """Record the finished span of call `frame_id`, a child of `parent_id` (or the session)."""
    session = processor._sessions.get(session_id)
    if session is None or processor._tracer is None:
        return  # the session is not traced (tracing disabled)
    trace_id, flags = processor._traces[session_id]
    if parent_id is None:
        parent = trace.set_span_in_context(session)
    else:
        parent = spans.frame_stand_in(trace_id, flags, parent_id)
    span = spans.start(
        processor._tracer,
        processor._chosen,
        name,
        parent,
        ids.span_id_for(trace_id, frame_id),
        attributes=attributes,
        start_time=ns(start),
    )
    for event_name, event_attributes, timestamp in events:
        span.add_event(event_name, event_attributes, timestamp)
    finish(span, end, error)


#: The handler of each event kind that makes spans (the processor's `Interest`).
HANDLERS: dict[str, Callable[[OtelProcessor, Any], None]] = {
    "SessionStarted": _session_started,
    "SessionEnded": _session_ended,
    "WorkflowStarted": _workflow_started,
    "WorkflowEnded": _workflow_ended,
    "TaskStarted": _task_started,
    "CacheHit": _cache_looked_up,
    "CacheMissed": _cache_looked_up,
    "TaskRetried": _task_retried,
    "TaskTimedOut": _task_timed_out,
    "TaskSucceeded": _task_ended,
    "TaskFailed": _task_ended,
    "MapStarted": _map_started,
    "MapEnded": _map_ended,
    "SpansRelayed": _spans_relayed,
}
