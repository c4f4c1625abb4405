"""The coordinator's event dispatcher: feeds every event to the session's processors."""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from daglite.events import Event


def _log() -> Any:
    import logging  # deferred: only needed when a processor misbehaves

    return logging.getLogger("daglite")


def emit_event(sink: Callable[[Event], Any] | None, kind: str, **fields: Any) -> None:
    """Build the event class named `kind` from `fields` and hand it to `sink`, if there is one.

    Nothing is built (and `daglite.events` is not even imported) when nobody listens.
    """
    if sink is not None:
        from daglite import events

        sink(getattr(events, kind)(**fields))


class EventDispatcher:
    """Hands each event to every processor, in order, one event at a time.

    Events come from many threads (thread backend, relays from worker processes), so
    processors are called under a lock and never see two events at once. A processor
    that raises is reported once on the `daglite` logger and then skipped for the rest of
    the session: observing a run must never break it.
    """

    def __init__(self, processors: Iterable[Callable[[Event], Any]]) -> None:
        self.processors = list(processors)
        self._lock = threading.RLock()
        self._broken: set[int] = set()

    def __call__(self, event: Event) -> None:
        with self._lock:
            for index, processor in enumerate(self.processors):
                if index in self._broken:
                    continue
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
