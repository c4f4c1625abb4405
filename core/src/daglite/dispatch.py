"""The coordinator's event dispatcher: feeds each event to the processors that want it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any

from daglite.interest import CALL_EVENTS
from daglite.interest import Wants
from daglite.interest import interest_of
from daglite.tallies import Tally

if TYPE_CHECKING:
    from daglite.events import Event


def _log() -> Any:
    import logging  # deferred: only needed when a processor misbehaves

    return logging.getLogger("daglite")


class EventDispatcher:
    """Hands each event to the processors that want it, in order, one event at a time.

    Each processor's `interest` (see `daglite.interest`) is read once; `wants` is their
    union, which the pipeline and the workers consult before building an event, and each
    event goes only to the processors that asked for its kind (and a `LogRecorded` record
    only to those whose level it reaches). `tally` keeps the session's counts.

    Events come from many threads (thread backend, relays from worker processes), so
    processors are called under a lock and never see two events at once. A processor
    that raises is reported once on the `daglite` logger and then skipped for the rest of
    the session: observing a run must never break it.
    """

    def __init__(self, processors: Iterable[Callable[[Event], Any]]) -> None:
        self.processors = list(processors)
        self._interests = [interest_of(p) for p in self.processors]
        self.wants = Wants.join(self._interests)
        self.tally = Tally()
        self._routes: dict[Any, list[int]] = {}
        self._lock = threading.RLock()
        self._broken: set[int] = set()

    def _route(self, kind: str, level: str | None, item: bool) -> list[int]:
        return [
            index
            for index, interest in enumerate(self._interests)
            if interest.wants(kind, level, item)
        ]

    def __call__(self, event: Event) -> None:
        kind = type(event).__name__
        level = getattr(event, "level", None) if kind == "LogRecorded" else None
        # a map item's call event skips the processors that declared map_items=False
        item = kind in CALL_EVENTS and getattr(event, "map_index", None) is not None
        key = (kind, level, item)
        with self._lock:
            route = self._routes.get(key)
            if route is None:
                route = self._routes[key] = self._route(kind, level, item)
            for index in route:
                if index in self._broken:
                    continue
                processor = self.processors[index]
                try:
                    processor(event)
                except Exception:
                    self._broken.add(index)
                    _log().exception(
                        "event processor %r failed on %s and is disabled for this session",
                        processor,
                        event.kind,
                    )

    def close(self) -> None:
        """Call `close()` on every processor that has one (all of them, even if one fails)."""
        with self._lock:
            for processor in self.processors:
                close = getattr(processor, "close", None)
                if close is None:
                    continue
                try:
                    close()
                except Exception:
                    _log().exception("event processor %r failed to close", processor)
