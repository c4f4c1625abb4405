"""Backends: where `map_tasks` runs its items.

A backend is a class registered in the `daglite.backends` entry-point group. A session
creates one instance per backend name on first use (`Backend(settings)`) and calls
`close()` when it ends. `map(job)` runs every item of a `MapJob` and returns the results
in input order; each item goes through the same run pipeline as a direct call
(`job.run_item`), wherever it executes.
"""

from __future__ import annotations

from daglite.backends.base import Backend
from daglite.backends.base import MapJob
from daglite.backends.base import Outcome

__all__ = ["Backend", "MapJob", "Outcome"]
