"""Building finished spans with given ids and times: attribute names and small helpers."""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan
from opentelemetry.trace import SpanContext
from opentelemetry.trace import Status
from opentelemetry.trace import StatusCode
from opentelemetry.trace import TraceFlags

from daglite_otel import ids

#: Span attribute names.
SESSION_ID = "daglite.session.id"
BACKEND = "daglite.backend"
WORKFLOW_NAME = "daglite.workflow.name"
WORKFLOW_ID = "daglite.workflow.id"
TASK_NAME = "daglite.task.name"
TASK_ID = "daglite.task.id"
ATTEMPTS = "daglite.task.attempts"
CACHE_HIT = "daglite.cache.hit"
CACHE_KEY = "daglite.cache.key"
MAP_INDEX = "daglite.map.index"
MAP_ID = "daglite.map.id"
OUTCOME = "daglite.outcome"

Error = tuple[str, str, str]  # exception type, message, traceback


def ns(seconds: float) -> int:
    """Seconds since the epoch (an event's `timestamp`) as OpenTelemetry's nanoseconds."""
    return int(seconds * 1e9)


def stand_in(trace_id: int, flags: int, span_id: int) -> otel_context.Context:
    """A context whose current span has these ids: a parent known by its ids alone."""
    context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(flags))
    return trace.set_span_in_context(NonRecordingSpan(context))


def frame_stand_in(trace_id: int, flags: int, frame_id: str) -> otel_context.Context:
    """`stand_in` for the span of the task or workflow call `frame_id` (derived span id)."""
    return stand_in(trace_id, flags, ids.span_id_for(trace_id, frame_id))


def start(
    tracer: trace.Tracer,
    chosen: ids.ChosenIds | None,
    name: str,
    context: otel_context.Context,
    span_id: int,
    trace_id: int | None = None,
    **options: Any,
) -> trace.Span:
    """Start a span on `tracer` with `span_id` (and `trace_id` when it has no parent).

    Without a `ChosenIds` generator (a tracer that is not the SDK's) the ids are random.
    """
    if chosen is not None:
        chosen.choose(span_id, trace_id)
    try:
        return tracer.start_span(name, context=context, **options)
    finally:
        if chosen is not None:
            chosen.choose(None)


def finish(span: trace.Span, end: float, error: Error | None) -> None:
    """End `span` at `end`; an error becomes an `exception` event and an error status."""
    if error is not None:
        error_type, message, stacktrace = error
        attributes = {"exception.type": error_type, "exception.message": message}
        if stacktrace:
            attributes["exception.stacktrace"] = stacktrace
        span.add_event("exception", attributes, ns(end))
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}"))
    span.end(end_time=ns(end))
