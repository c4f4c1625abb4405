"""`OtelProcessor`: OpenTelemetry spans for daglite sessions, workflows, task calls and map items.

How the span tree is built, with the least machinery that is right on every backend:

1. **The coordinator builds every daglite span from events** (`daglite_otel.handlers`).
   Events reach the session's processors on the coordinator from every thread and (relayed)
   every worker process, and carry wall-clock timestamps, durations, ids and parent ids. The
   session span starts at `SessionStarted` (as a child of whatever span is current where the
   session opens, so a session inside an instrumented request joins its trace). A workflow
   or task span is created when its call ends, from `WorkflowEnded` / `TaskSucceeded` /
   `TaskFailed`, with `start = timestamp - duration` and `end = timestamp`: the real start
   and end of the call, wherever it ran. What earlier events said (backend, cache key,
   retries, timeouts) is kept until then.
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
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

from opentelemetry import context as otel_context
from opentelemetry import trace

from daglite import hookimpl
from daglite.plugin import Interest
from daglite.plugin import in_worker
from daglite_otel import ids
from daglite_otel import provider
from daglite_otel import relay
from daglite_otel import spans
from daglite_otel.handlers import HANDLERS
from daglite_otel.handlers import PendingCall

if TYPE_CHECKING:
    from daglite import TaskMetadata
    from daglite import events as ev

SCOPE = "daglite_otel"
FLUSH_WAIT = 2.0  # seconds a session's end waits for its spans to be exported


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
        self._calls: dict[str, PendingCall] = {}
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
        return Interest(kinds=HANDLERS)

    def __call__(self, event: ev.Event) -> None:
        """Turn one event into span work (events of other kinds are ignored)."""
        handler = HANDLERS.get(event.kind)
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
