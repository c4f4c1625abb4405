"""Spans that user code ends in a worker process travel to the coordinator as events.

A worker process started fresh (the `process` backend, loky, dask) has no TracerProvider
of its own: spans opened there would be dropped. When a task first runs in such a worker,
`install_in_worker()` makes a small SDK provider the worker's global one, whose only span
processor, `RelaySpanProcessor`, turns each ended span into a `SpansRelayed` event. The
worker buffers it with the task's other events and sends it to the coordinator, where the
`otel` processor re-creates the span, with the same ids, in the session's provider. So
spans from workers reach the same exporters as everything else, batched with the events
they belong to, with nothing to configure or flush in the worker.

A worker whose global provider is already set (the application configured one there,
e.g. in an `on_worker_start` hook) keeps it, and exports on its own.
"""

from __future__ import annotations

import threading
from typing import Any

import attrs
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanContext
from opentelemetry.trace import Status
from opentelemetry.trace import StatusCode

from daglite.events import Event
from daglite.plugin import emit
from daglite.plugin import in_worker
from daglite_otel.ids import ChosenIds
from daglite_otel.spans import stand_in
from daglite_otel.spans import start


@attrs.frozen(kw_only=True)
class SpansRelayed(Event):
    """Spans ended in a worker process, as plain records (see `record`), to export."""

    spans: tuple[dict[str, Any], ...]


def record(span: ReadableSpan) -> dict[str, Any]:
    """A plain, picklable and JSON-ready description of a finished span."""
    context = span.get_span_context()
    assert context is not None  # a finished SDK span always has one
    scope = span.instrumentation_scope
    return {
        "name": span.name,
        "trace_id": context.trace_id,
        "span_id": context.span_id,
        "trace_flags": int(context.trace_flags),
        "parent_span_id": span.parent.span_id if span.parent is not None else None,
        "kind": span.kind.value,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "attributes": dict(span.attributes or {}),
        "events": [(e.name, dict(e.attributes or {}), e.timestamp) for e in span.events],
        "links": [
            (link.context.trace_id, link.context.span_id, dict(link.attributes or {}))
            for link in span.links
        ],
        "status": (span.status.status_code.value, span.status.description),
        "scope": (scope.name, scope.version) if scope is not None else ("", None),
    }


class RelaySpanProcessor(SpanProcessor):
    """Emits every span ended inside a task of a worker process as a `SpansRelayed` event.

    A span ended where no worker task runs (a thread of its own, outside any batch) has no
    way to the coordinator and is dropped.
    """

    def on_end(self, span: ReadableSpan) -> None:
        if in_worker():
            emit(SpansRelayed, spans=(record(span),))


def recreate(span: dict[str, Any], tracer: trace.Tracer, chosen: ChosenIds | None) -> None:
    """Build the relayed `span` (a `record`) again on `tracer`, with its own ids and times."""
    trace_id = span["trace_id"]
    if span["parent_span_id"] is None:
        parent = otel_context.Context()  # a root: not a child of whatever is current here
    else:
        parent = stand_in(trace_id, span["trace_flags"], span["parent_span_id"])
    created = start(
        tracer,
        chosen,
        span["name"],
        parent,
        span["span_id"],
        trace_id,
        kind=trace.SpanKind(span["kind"]),
        attributes=span["attributes"],
        links=[
            trace.Link(SpanContext(t, s, is_remote=True), attributes)
            for t, s, attributes in span["links"]
        ],
        start_time=span["start_time"],
    )
    for name, attributes, timestamp in span["events"]:
        created.add_event(name, attributes, timestamp)
    code, description = span["status"]
    if code != StatusCode.UNSET.value:
        created.set_status(Status(StatusCode(code), description))
    created.end(end_time=span["end_time"])


_installed = False
_lock = threading.Lock()


def install_in_worker() -> None:
    """Make a relaying provider this worker's global one, unless one is set already."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            return
        from opentelemetry.sdk.trace import TracerProvider

        relaying = TracerProvider(shutdown_on_exit=False)
        relaying.add_span_processor(RelaySpanProcessor())
        trace.set_tracer_provider(relaying)
