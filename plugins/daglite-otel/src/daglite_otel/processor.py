"""`OtelProcessor`: OpenTelemetry spans for daglite sessions, workflows, task calls and map items.

How the span tree is built, with the least machinery that is right on every backend:

1. **The coordinator builds every daglite span from events.** Events reach the session's
   processors on the coordinator from every thread and (relayed) every worker process, and
   carry wall-clock timestamps, durations, ids and parent ids. The session span starts at
   `SessionStarted` (as a child of whatever span is current where the session opens, so a
   session inside an instrumented request joins its trace). A workflow or task span is
   created when its call ends, from `WorkflowEnded` / `TaskSucceeded` / `TaskFailed`, with
   `start = timestamp - duration` and `end = timestamp`: the real start and end of the call,
   wherever it ran. What earlier events said (backend, cache key, retries, timeouts) is kept
   until then.
2. **Span ids are derived, not remembered.** The span id of a task or workflow call is a
   hash of the trace id and the daglite call id (`daglite_otel.ids`). A child names its
   parent by id only (the `parent_id` of its events), so the parent's span context is known
   even before the parent's span exists, on any backend, in any order of arrival. The
   coordinator gives its spans exactly those ids through an id generator installed on
   daglite's own tracer (`ids.ChosenIds`).
3. **The same object is a hook plugin.** `before_task` runs where the task runs (a thread,
   a worker process) and makes the task's span context current there, computed from the
   same ids; `after_task` / `on_task_error` restore the previous context. So a span that
   user code or an instrumented library opens inside the task is a child of the task span.
   The only state a worker needs is the trace id and flags of each traced session, which
   travel with the pickled plugin (plugins are sent to workers after the session started).
4. **Spans from worker processes come back as events.** A fresh worker gets a relaying
   provider (`daglite_otel.relay`): each span user code ends there becomes a
   `SpansRelayed` event, sent to the coordinator with the task's other events, where it is
   re-created with the same ids in the session's provider. Workers need no exporter, no
   configuration and no flushing.

Name it in `session(plugins=["otel"])` or in the `processors` setting (`DAGLITE_PROCESSORS=otel`),
or pass an instance, e.g. `OtelProcessor(tracer_provider=provider)` to bypass the global one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

import attrs
from opentelemetry import context as otel_context
from opentelemetry import trace

from daglite import hookimpl
from daglite.plugin import Interest
from daglite.plugin import in_worker
from daglite_otel import ids
from daglite_otel import provider
from daglite_otel import relay
from daglite_otel import spans
from daglite_otel.relay import SpansRelayed
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
    from daglite import TaskMetadata
    from daglite import events as ev

SCOPE = "daglite_otel"
FLUSH_WAIT = 2.0  # seconds a session's end waits for its spans to be exported


@attrs.define
class _Call:
    """What the events of a task call said before its last one."""

    first: ev.TaskEvent
    backend: str | None = None
    cache_key: str | None = None
    events: list[tuple[str, dict[str, Any], int]] = attrs.field(factory=list)


class OtelProcessor:
    """Event processor and hook plugin that turns a daglite run into OpenTelemetry spans.

    Spans: `daglite session`, `workflow <name>`, `task <name>` (map items too, with
    `daglite.map.index`). Attributes: `daglite.task.name`, `daglite.map.index`,
    `daglite.task.attempts`, `daglite.cache.hit`, `daglite.backend`, `daglite.outcome`
    (`success`, `failure` or `unfinished`) and ids. Failures are recorded as `exception`
    events with an error status; retries and timeouts as `daglite.retry` /
    `daglite.timeout` events.

    Args:
        tracer_provider: Where the spans go. `None` (the default) uses the global provider
            the application configured, or, when there is none, one built from the standard
            `OTEL_*` environment variables (see `daglite_otel.provider`).

    Raises:
        PluginError: No provider is configured and the `OTEL_*` variables ask for an
            exporter this plugin cannot build.
    """

    #: It has no daglite options: it is configured by the standard `OTEL_*` variables
    #: (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_ENDPOINT`, ...) or a tracer provider.
    known_options: ClassVar[dict[str, type]] = {}

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._explicit = tracer_provider
        self._traces: dict[str, tuple[int, int]] = {}  # session id -> (trace id, trace flags)
        self._local_state()
        if tracer_provider is None and not provider.is_configured():
            provider.exporter_names()  # a bad OTEL_* setting fails the session, not later

    def _local_state(self) -> None:
        self._lock = threading.Lock()
        self._provider: trace.TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        self._scopes: dict[tuple[str, str | None], tuple[trace.Tracer, ids.ChosenIds | None]] = {}
        self._chosen: ids.ChosenIds | None = None
        self._sessions: dict[str, trace.Span] = {}
        self._backends: dict[str, str] = {}  # session or map id -> backend name
        self._calls: dict[str, _Call] = {}
        self._workflows: dict[str, ev.WorkflowStarted] = {}
        self._tokens: dict[str, tuple[str, Any]] = {}  # task id -> (session id, context token)

    # Only what a worker needs travels: the traced sessions' trace ids and flags.
    def __getstate__(self) -> dict[str, Any]:
        return {"traces": dict(self._traces)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._explicit = None
        self._traces = state["traces"]
        self._local_state()

    def __repr__(self) -> str:
        return f"<OtelProcessor sessions={len(self._sessions)}>"

    # -- coordinator side: events -> spans ------------------------------------------------

    @property
    def interest(self) -> Interest:
        """The events that make spans: no other event is built for this processor."""
        return Interest(kinds=_HANDLERS)

    def __call__(self, event: ev.Event) -> None:
        """Turn one event into span work (events of other kinds are ignored)."""
        handler = _HANDLERS.get(event.kind)
        if handler is not None:
            with self._lock:
                handler(self, event)

    def close(self) -> None:
        """Export the spans still buffered (called when the session ends).

        Waits at most `FLUSH_WAIT` seconds: an exporter that cannot reach its collector
        retries for longer, and the session's end should not wait for that (the export
        goes on in the background, and the provider's own shutdown at exit finishes it).
        """
        force_flush = getattr(self._provider, "force_flush", None)
        if force_flush is None:
            return
        flusher = threading.Thread(target=force_flush, name="daglite-otel-flush", daemon=True)
        flusher.start()
        flusher.join(FLUSH_WAIT)

    def _get_tracer(self) -> trace.Tracer:
        if self._tracer is None:
            if self._explicit is not None:
                self._provider = self._explicit
            else:
                self._provider = provider.global_provider()
            from daglite_otel import __version__

            self._tracer, self._chosen = self._scope(SCOPE, __version__)
        return self._tracer

    def _scope(self, name: str, version: str | None) -> tuple[trace.Tracer, ids.ChosenIds | None]:
        """The provider's tracer of one instrumentation scope, able to take chosen ids."""
        found = self._scopes.get((name, version))
        if found is None:
            assert self._provider is not None
            tracer = self._provider.get_tracer(name, version)
            found = self._scopes[(name, version)] = (tracer, ids.install(tracer))
        return found

    def _session_started(self, event: ev.SessionStarted) -> None:
        span = self._get_tracer().start_span(
            "daglite session",
            attributes={SESSION_ID: event.session_id, BACKEND: event.backend},
            start_time=ns(event.timestamp),
        )
        context = span.get_span_context()
        if not context.is_valid:  # tracing is disabled
            return
        self._sessions[event.session_id] = span
        self._traces[event.session_id] = (context.trace_id, int(context.trace_flags))
        self._backends[event.session_id] = event.backend

    def _session_ended(self, event: ev.SessionEnded) -> None:
        sid = event.session_id
        for workflow in [w for w in self._workflows.values() if w.session_id == sid]:
            self._workflows.pop(workflow.workflow_id)
            self._unfinished_workflow(workflow, event.timestamp)
        for task_id in [t for t, c in self._calls.items() if c.first.session_id == sid]:
            self._task_span(self._calls.pop(task_id), event.timestamp, None)
        span = self._sessions.pop(sid, None)
        self._traces.pop(sid, None)
        self._backends.pop(sid, None)
        if span is not None:
            span.set_attribute(OUTCOME, event.status)
            error = None
            if event.status != "success":
                error = (event.error_type or "Error", event.error_message or "", "")
            finish(span, event.timestamp, error)

    def _workflow_started(self, event: ev.WorkflowStarted) -> None:
        self._workflows[event.workflow_id] = event

    def _workflow_ended(self, event: ev.WorkflowEnded) -> None:
        self._workflows.pop(event.workflow_id, None)
        error = None
        if event.status != "success":
            error = (event.error_type or "Error", event.error_message or "", "")
        self._span(
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

    def _unfinished_workflow(self, started: ev.WorkflowStarted, end: float) -> None:
        self._span(
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

    def _call(self, event: ev.TaskEvent) -> _Call:
        call = self._calls.get(event.task_id)
        if call is None:
            call = self._calls[event.task_id] = _Call(first=event)
        return call

    def _task_started(self, event: ev.TaskStarted) -> None:
        self._call(event).backend = event.backend

    def _cache_looked_up(self, event: ev.CacheHit | ev.CacheMissed) -> None:
        self._call(event).cache_key = event.key

    def _task_retried(self, event: ev.TaskRetried) -> None:
        self._call(event).events.append(
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

    def _task_timed_out(self, event: ev.TaskTimedOut) -> None:
        self._call(event).events.append(
            (
                "daglite.timeout",
                {"daglite.task.attempt": event.attempt, "daglite.timeout": event.timeout},
                ns(event.timestamp),
            )
        )

    def _task_ended(self, event: ev.TaskSucceeded | ev.TaskFailed) -> None:
        call = self._calls.pop(event.task_id, None) or _Call(first=event)
        self._task_span(call, event.timestamp, event)

    def _task_span(
        self, call: _Call, end: float, last: ev.TaskSucceeded | ev.TaskFailed | None
    ) -> None:
        """Record the span of a task call that ended with `last` (`None`: it never ended)."""
        first = call.first
        backend = call.backend or self._backends.get(first.map_id or "")
        backend = backend or self._backends.get(first.session_id, "")
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
        self._span(
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

    def _spans_relayed(self, event: SpansRelayed) -> None:
        if event.session_id in self._sessions:
            for record in event.spans:
                relay.recreate(record, *self._scope(*record["scope"]))

    def _map_started(self, event: ev.MapStarted) -> None:
        self._backends[event.map_id] = event.backend

    def _map_ended(self, event: ev.MapEnded) -> None:
        self._backends.pop(event.map_id, None)

    def _span(
        self,
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
        session = self._sessions.get(session_id)
        if session is None or self._tracer is None:
            return  # the session is not traced (tracing disabled)
        trace_id, flags = self._traces[session_id]
        if parent_id is None:
            parent = trace.set_span_in_context(session)
        else:
            parent = spans.frame_stand_in(trace_id, flags, parent_id)
        span = spans.start(
            self._tracer,
            self._chosen,
            name,
            parent,
            ids.span_id_for(trace_id, frame_id),
            attributes=attributes,
            start_time=ns(start),
        )
        for event_name, event_attributes, timestamp in events:
            span.add_event(event_name, event_attributes, timestamp)
        finish(span, end, error)

    # -- where the task runs: hooks -------------------------------------------------------

    @hookimpl
    def on_worker_start(self) -> None:
        """Give the worker a provider that relays its spans to the coordinator (see relay)."""
        relay.install_in_worker()

    @hookimpl
    def before_task(self, metadata: TaskMetadata) -> None:
        """Make the task's span context current where it runs, for spans user code opens."""
        known = self._traces.get(metadata.session_id)
        if known is None:
            return
        if in_worker():
            relay.install_in_worker()  # no-op after the first call
        trace_id, flags = known
        token = otel_context.attach(spans.frame_stand_in(trace_id, flags, metadata.task_id))
        self._tokens[metadata.task_id] = (metadata.session_id, token)

    @hookimpl
    def after_task(self, metadata: TaskMetadata) -> None:
        """Restore the context `before_task` replaced."""
        self._leave(metadata)

    @hookimpl
    def on_task_error(self, metadata: TaskMetadata) -> None:
        """Restore the context `before_task` replaced."""
        self._leave(metadata)

    @hookimpl
    def on_session_end(self, session: Any) -> None:
        """Restore contexts left behind by calls a BaseException (Ctrl-C) cut short.

        Only those of this thread's context can be reset; any other belongs to a thread or
        asyncio task that has ended with it.
        """
        leftovers = [
            (task_id, token)
            for task_id, (session_id, token) in self._tokens.items()
            if session_id == session.session_id
        ]
        for task_id, token in reversed(leftovers):  # the innermost call first
            self._tokens.pop(task_id, None)
            try:
                token.var.reset(token)  # type: ignore[attr-defined]
            except ValueError:  # created in another context
                continue

    def _leave(self, metadata: TaskMetadata) -> None:
        entry = self._tokens.pop(metadata.task_id, None)
        if entry is None:
            return
        otel_context.detach(entry[1])  # type: ignore[arg-type]


_HANDLERS: dict[str, Callable[[OtelProcessor, Any], None]] = {
    "SessionStarted": OtelProcessor._session_started,
    "SessionEnded": OtelProcessor._session_ended,
    "WorkflowStarted": OtelProcessor._workflow_started,
    "WorkflowEnded": OtelProcessor._workflow_ended,
    "TaskStarted": OtelProcessor._task_started,
    "CacheHit": OtelProcessor._cache_looked_up,
    "CacheMissed": OtelProcessor._cache_looked_up,
    "TaskRetried": OtelProcessor._task_retried,
    "TaskTimedOut": OtelProcessor._task_timed_out,
    "TaskSucceeded": OtelProcessor._task_ended,
    "TaskFailed": OtelProcessor._task_ended,
    "MapStarted": OtelProcessor._map_started,
    "MapEnded": OtelProcessor._map_ended,
    "SpansRelayed": OtelProcessor._spans_relayed,
}
