"""The `inline` backend: runs map items one after another in the calling thread."""

from __future__ import annotations

from typing import Any

from daglite.backends.base import Backend
from daglite.backends.base import MapJob
from daglite.backends.base import collect


class InlineBackend(Backend):
    """Runs each item in turn, in the caller's thread: no concurrency, least overhead."""

    def map(self, job: MapJob) -> list[Any]:
        """Run the items in order (stops at the first failure unless exceptions are returned)."""
        return collect(job, job.run_chunk(enumerate(job.items)))
