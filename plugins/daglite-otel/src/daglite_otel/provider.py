"""Which TracerProvider daglite's spans go to: the application's, or one built from `OTEL_*`.

An application that configured OpenTelemetry (`trace.set_tracer_provider(...)`) keeps full
control: its provider, sampler, resource and exporters are used as they are. With none
configured, the first session that traces builds a provider from the standard environment
variables and makes it the global one, so that spans opened by the user's own code (or by
instrumented libraries) inside tasks are exported along with daglite's:

- `OTEL_SDK_DISABLED=true` turns tracing off;
- `OTEL_TRACES_EXPORTER`: `otlp` (default), `console` (to standard error, so it never
  mixes with a result printed on standard output) or `none`, comma-separated;
- `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`: only `http/protobuf` (the default) is built in;
- `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`, `..._HEADERS`, `..._TIMEOUT`, `..._COMPRESSION`:
  read by the OTLP/HTTP exporter itself;
- when no OTLP collector accepts connections at the endpoint, the provider says so once on
  the `daglite` logger (the endpoint and the variables to set) and leaves the OTLP
  exporter out, so the run is never held up by export retries;
- `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`: the resource (`service.name` defaults
  to `daglite`); `OTEL_TRACES_SAMPLER(_ARG)` and `OTEL_BSP_*`: read by the SDK.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from opentelemetry import trace

from daglite.errors import PluginError

_EXPORTERS = ("otlp", "console", "none")
#: The OTLP/HTTP traces endpoint when no variable names one (the SDK's default).
DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"
#: Seconds to wait for a collector to accept a connection when the provider is built.
PROBE_TIMEOUT = 0.5
_lock = threading.Lock()


def is_configured() -> bool:
    """True when the application (or an earlier session) set a global TracerProvider."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def exporter_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """The exporters `OTEL_TRACES_EXPORTER` asks for, checked.

    Raises:
        PluginError: An exporter or OTLP protocol this plugin cannot build is requested.
    """
    env = os.environ if environ is None else environ
    raw = env.get("OTEL_TRACES_EXPORTER", "otlp")
    names = [part.strip().lower() for part in raw.split(",") if part.strip()] or ["otlp"]
    unknown = [name for name in names if name not in _EXPORTERS]
    if unknown:
        raise PluginError(
            f"daglite-otel cannot build the trace exporter(s) {unknown} named by "
            f"OTEL_TRACES_EXPORTER={raw!r}; use {', '.join(_EXPORTERS)}, or configure a "
            "TracerProvider yourself (opentelemetry.trace.set_tracer_provider) before the session"
        )
    if "otlp" in names:
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol.strip().lower() != "http/protobuf":
            raise PluginError(
                f"daglite-otel exports OTLP over http/protobuf only, not {protocol!r} "
                "(OTEL_EXPORTER_OTLP_PROTOCOL); unset it, or configure a TracerProvider with the "
                "exporter you need (e.g. opentelemetry-exporter-otlp-proto-grpc) yourself"
            )
    return [name for name in names if name != "none"]


def build_from_environ(environ: Mapping[str, str] | None = None) -> trace.TracerProvider:
    """A new SDK TracerProvider configured from the `OTEL_*` variables (see the module doc).

    Raises:
        PluginError: `OTEL_TRACES_EXPORTER` or the OTLP protocol asks for something unsupported.
    """
    from opentelemetry.sdk.resources import SERVICE_NAME
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    names = exporter_names(environ)
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "daglite"}))
    provider = TracerProvider(resource=resource)
    for name in names:
        if name == "otlp" and not _collector_answers(environ):
            continue
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            # stderr: stdout is where `daglite run` prints the result (today's stderr, not
            # the one of import time: it may have been redirected since)
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    return provider


def otlp_endpoint(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The OTLP/HTTP traces URL the exporter will use, and the variable that chose it."""
    env = os.environ if environ is None else environ
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if traces:
        return traces, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if base:
        return base.rstrip("/") + "/v1/traces", "OTEL_EXPORTER_OTLP_ENDPOINT"
    return DEFAULT_ENDPOINT, "OTEL_EXPORTER_OTLP_ENDPOINT"


def _collector_answers(environ: Mapping[str, str] | None) -> bool:
    """Whether something accepts connections at the OTLP endpoint; says once if not."""
    url, variable = otlp_endpoint(environ)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "localhost", port), PROBE_TIMEOUT):
            return True
    except OSError as exc:
        logging.getLogger("daglite").warning(
            "daglite-otel: no OTLP collector answers at %s (%s); spans are not exported. "
            "Set %s to your collector's address, or OTEL_TRACES_EXPORTER=console (or none)",
            url,
            exc.strerror or type(exc).__name__,
            variable,
        )
        return False


def global_provider() -> trace.TracerProvider:
    """The global TracerProvider, installing one from the environment if there is none.

    Raises:
        PluginError: The environment asks for an exporter this plugin cannot build.
    """
    with _lock:
        if not is_configured():
            trace.set_tracer_provider(build_from_environ())
        return trace.get_tracer_provider()
