"""What the otel processor costs per task call, side by side in one run.

Runs the same 5 000-item `map_tasks` over a trivial task with: a plain Python loop, a
session without processors, a session with a no-op processor (the cost of building
events), a no-op processor that is also a no-op hook plugin (the floor: a hook plugin
makes the core bind every call's inputs and call the hooks), and the otel processor into
the SDK with no span processor, into an in-memory exporter (SimpleSpanProcessor) and into
a BatchSpanProcessor whose exporter drops the spans (what a real OTLP set-up costs in the
calling thread). Prints microseconds per item and the ratio to the plain loop.

    pip install -e ./core -e ./plugins/daglite-otel
    PYTHONDONTWRITEBYTECODE= python benchmarks/otel_overhead.py
"""

from __future__ import annotations

import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.hookspecs import hookimpl
from daglite.settings import DagliteSettings
from daglite_otel import OtelProcessor

QUIET = DagliteSettings(processors=())  # measure the plugin alone, not the default logging

N = 5_000
ROUNDS = 5


@task
def inc(x: int) -> int:
    return x + 1


class Drop(SpanExporter):
    def export(self, spans) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class NoOpHooks:
    """A processor that is also a hook plugin, doing nothing: the floor otel builds on."""

    def __call__(self, event) -> None:
        pass

    @hookimpl
    def before_task(self, metadata) -> None:
        pass

    @hookimpl
    def after_task(self, metadata) -> None:
        pass


def plain_loop() -> None:
    [inc.__wrapped__(x) for x in range(N)]


def raw_spans() -> None:
    """One raw SDK span per item, with a task span's attributes: the yardstick."""
    tracer = TracerProvider()
    tracer.add_span_processor(BatchSpanProcessor(Drop()))
    get = tracer.get_tracer("bench")
    for x in range(N):
        span = get.start_span(
            "task inc",
            attributes={
                "daglite.task.name": "inc",
                "daglite.task.id": "t",
                "daglite.backend": "inline",
                "daglite.map.index": x,
                "daglite.outcome": "success",
                "daglite.cache.hit": False,
                "daglite.task.attempts": 1,
            },
        )
        span.end()


def mapped(plugins: list) -> None:
    with session(plugins=plugins, settings=QUIET):
        map_tasks(inc, range(N))


def otel(processor: object | None) -> list:
    provider = TracerProvider()
    if processor is not None:
        provider.add_span_processor(processor)  # type: ignore[arg-type]
    return [OtelProcessor(tracer_provider=provider)]


CASES = {
    "plain python loop": plain_loop,
    "raw SDK span per item": raw_spans,
    "session, no processor": lambda: mapped([]),
    "session, no-op processor": lambda: mapped([lambda event: None]),
    "no-op processor + hooks": lambda: mapped([NoOpHooks()]),
    "otel, no span processor": lambda: mapped(otel(None)),
    "otel, in-memory exporter": lambda: mapped(otel(SimpleSpanProcessor(InMemorySpanExporter()))),
    "otel, batch processor": lambda: mapped(otel(BatchSpanProcessor(Drop()))),
}


def main() -> None:
    results = dict.fromkeys(CASES, float("inf"))
    for _ in range(ROUNDS):  # interleaved, so drift of the machine hits every case alike
        for name, case in CASES.items():
            start = time.perf_counter()
            case()
            results[name] = min(results[name], time.perf_counter() - start)
    base = results["plain python loop"]
    print(f"{'case':<28} {'us/item':>9} {'x plain':>9}")
    for name, seconds in results.items():
        print(f"{name:<28} {seconds / N * 1e6:>9.2f} {seconds / base:>9.1f}")
    # The otel processor's own cost per item (over the session without it), in raw spans.
    own = results["otel, batch processor"] - results["session, no processor"]
    print(f"otel per-item overhead: {own / results['raw SDK span per item']:.2f}x one raw SDK span")


if __name__ == "__main__":
    main()
