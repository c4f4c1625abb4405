"""The event processors that ship with the core.

Both are registered in the `daglite.processors` entry-point group (see `core/pyproject.toml`)
and found by name like any plugin's processor:

- `logging` (`LoggingProcessor`, the default): one log line per task start, finish,
  failure, retry and cache hit, readable on a terminal or as JSON lines; it also renders
  the records logged with `daglite.get_logger()`.
- `jsonl` (`JsonlProcessor`): every event of a session, one JSON object a line, appended
  to the file named by the `event_log` setting.

Importing this package imports neither structlog nor the processors' modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from daglite.processors.eventlog import JsonlProcessor
    from daglite.processors.logs import LoggingProcessor

__all__ = ["JsonlProcessor", "LoggingProcessor"]


def __getattr__(name: str) -> Any:
    # `from daglite.processors import JsonlProcessor` works without importing both modules.
    if name == "LoggingProcessor":
        from daglite.processors.logs import LoggingProcessor

        return LoggingProcessor
    if name == "JsonlProcessor":
        from daglite.processors.eventlog import JsonlProcessor

        return JsonlProcessor
    raise AttributeError(f"module 'daglite.processors' has no attribute {name!r}")
