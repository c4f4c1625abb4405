"""Helpers of the cache tests (`test_caching.py`, `test_cachestore.py`)."""

from __future__ import annotations

from daglite import task
from daglite.testing import CallLog


def counted(**options):
    """A cached task `f(x, y=0)` and the list of calls that actually ran."""
    calls = CallLog()

    @task(**options)
    def f(x, y=0):
        calls.append((x, y))
        return {"sum": x + y}

    return f, calls


def events_of(kind, events):
    """The events of `kind` in the list `events`."""
    return [e for e in events if e.kind == kind]
