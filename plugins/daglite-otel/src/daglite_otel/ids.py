"""Span ids derived from daglite ids, so every process agrees on them without talking.

A task span is exported by the coordinator (from events), but user code inside the task
runs wherever the task runs, maybe in a worker process that only later relays its events.
Both sides compute the task's span id from the trace id and the task id; the coordinator
then creates the span with exactly that id through `ChosenIds`, an id generator that
hands out the next chosen ids once and otherwise defers to the provider's own one (spans
relayed from workers keep their ids the same way).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from opentelemetry.sdk.trace.id_generator import IdGenerator


def span_id_for(trace_id: int, frame_id: str) -> int:
    """The 64-bit span id of the task or workflow call `frame_id` in trace `trace_id`."""
    digest = hashlib.blake2b(f"{trace_id:032x}/{frame_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1  # 0 is the invalid span id


class ChosenIds(IdGenerator):
    """An id generator that returns ids chosen beforehand (per thread), once.

    Args:
        fallback: The generator used when no id was chosen.
    """

    def __init__(self, fallback: IdGenerator) -> None:
        self.fallback = fallback
        self._chosen = threading.local()

    def choose(self, span_id: int | None, trace_id: int | None = None) -> None:
        """Make the next span started in this thread get these ids (`None`: a random one).

        The trace id is only asked for when the span has no parent.
        """
        self._chosen.span_id = span_id
        self._chosen.trace_id = trace_id

    def generate_span_id(self) -> int:
        span_id = getattr(self._chosen, "span_id", None)
        if span_id is None:
            return self.fallback.generate_span_id()
        self._chosen.span_id = None
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = getattr(self._chosen, "trace_id", None)
        if trace_id is None:
            return self.fallback.generate_trace_id()
        self._chosen.trace_id = None
        return trace_id

    def is_trace_id_random(self) -> bool:
        return self.fallback.is_trace_id_random()


def install(tracer: Any) -> ChosenIds | None:
    """Give `tracer` (an SDK tracer) a `ChosenIds` generator; `None` if it has no id generator.

    The tracer is the provider's cached one for daglite's instrumentation scope, so this
    happens once per provider; later calls return the installed generator.
    """
    with _install_lock:
        current = getattr(tracer, "id_generator", None)
        if current is None:
            return None
        if not isinstance(current, ChosenIds):
            current = ChosenIds(current)
            tracer.id_generator = current
        return current


_install_lock = threading.Lock()
