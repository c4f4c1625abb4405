"""Interest: which events a processor wants, declared before anything is built.

A processor may carry an `interest` attribute (an `Interest`, or a collection of event kind
names). When a session opens, the interests of its processors are joined into one `Wants`:
the run pipeline, the map loop and the workers build, buffer and ship only the events in
it, and the dispatcher hands each processor only the events it asked for. A processor
with no `interest` (a plain callable) gets every event.

Counts (task calls succeeded, cached, failed, retried, timed out; datasets saved) are kept
whenever somebody listens, and travel on `SessionEnded`, `WorkflowEnded`, `MapProgress` and
`MapEnded`: a processor that only needs a map's progress asks for those, and workers then
send counts per batch instead of an event per item. A processor that declares
`map_items=False` gets no per-call events (`CALL_EVENTS`) of map items, only their
failures, retries and timeouts: `Wants.items` is what the pipeline builds for a map item.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}

#: Kinds sent only to processors that name them: `MapProgress` is a timed summary, so a
#: processor that takes every event (a test's capture, the event log) does not get a
#: different stream from one run to the next.
OPT_IN = frozenset({"MapProgress"})

#: The events of one task call that only a per-call observer needs (a plain call made
#: while none of them is wanted skips the pipeline).
CALL_EVENTS = frozenset({"TaskStarted", "TaskSucceeded", "CacheHit", "CacheMissed"})


def _kinds(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset({value})
    return frozenset(value)


def _level(value: str) -> str:
    level = value.lower()
    if level not in LEVELS:
        raise ValueError(f"unknown log level {value!r}; expected one of {', '.join(LEVELS)}")
    return level


@attrs.frozen
class Interest:
    """The events a processor wants.

    Attributes:
        kinds: Event kind names (`"TaskFailed"`, `"MapProgress"`, ...), or `None` for every
            kind but `MapProgress`, which comes only to processors that name it. Kinds of
            events plugins define (`daglite.plugin.emit`) are named the same way.
        log_level: The lowest level of `LogRecorded` records wanted (records below it are
            not even built where they are logged). Only used when `LogRecorded` is wanted.
        map_items: Whether the per-call events (`TaskStarted`, `TaskSucceeded`, `CacheHit`,
            `CacheMissed`) of map items are wanted. `False` leaves a map's items to its
            counts (`MapProgress`, `MapEnded`): they then cost nothing per item. Failures,
            retries and timeouts of items still come when their kinds are wanted.

    Examples:
        >>> from daglite.plugin import Interest
        >>> class FailureCounter:
        ...     interest = Interest(kinds={"TaskFailed"})
        ...
        ...     def __init__(self) -> None:
        ...         self.failures = 0
        ...
        ...     def __call__(self, event) -> None:
        ...         self.failures += 1
    """

    kinds: frozenset[str] | None = attrs.field(default=None, converter=_kinds)
    log_level: str = attrs.field(default="debug", converter=_level)
    map_items: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    def wants(self, kind: str, level: str | None = None, item: bool = False) -> bool:
        """Whether an event of `kind` (a `LogRecorded` of `level`; of a map item) is wanted."""
        if (kind in OPT_IN) if self.kinds is None else (kind not in self.kinds):
            return False
        if item and not self.map_items and kind in CALL_EVENTS:
            return False
        return level is None or LEVELS.get(level, 20) >= LEVELS[self.log_level]


#: Every event, every log level: what a processor without a declaration gets.
EVERYTHING = Interest()


def interest_of(processor: Any) -> Interest:
    """The interest `processor` declares (`EVERYTHING` when it declares none).

    Raises:
        PluginError: `interest` is neither an `Interest` nor a collection of kind names.
    """
    declared = getattr(processor, "interest", None)
    if declared is None or isinstance(declared, Interest):
        return declared or EVERYTHING
    if isinstance(declared, (str, list, tuple, set, frozenset)):
        return Interest(kinds=declared)
    from daglite.errors import PluginError

    raise PluginError(
        f"event processor {processor!r} declares interest={declared!r}: expected a "
        "daglite.plugin.Interest or a collection of event kind names"
    )


class Wants:
    """The joined interest of a session's processors, read on the hot path.

    The flags answer the pipeline's questions with one attribute read each; `kind in
    wants` answers for any kind. `items` is the same for the calls of map items: it leaves
    out the per-call events (`CALL_EVENTS`) nobody wants of items (`item_drop`).
    """

    __slots__ = (
        "cache_hit",
        "cache_missed",
        "calls",
        "counts",
        "drop",
        "item_drop",
        "items",
        "kinds",
        "log_level",
        "opt_in",
        "progress",
        "task_failed",
        "task_retried",
        "task_started",
        "task_succeeded",
        "task_timed_out",
    )

    def __init__(
        self,
        kinds: frozenset[str] | None,
        log_level: int,
        opt_in: frozenset[str] = frozenset(),
        item_drop: frozenset[str] = frozenset(),
        drop: frozenset[str] = frozenset(),
    ) -> None:
        self.kinds = kinds  # None: every kind but the opt-in ones not in `opt_in`
        self.opt_in = opt_in
        self.drop = drop  # kinds not wanted here although in `kinds`
        self.item_drop = item_drop
        self.log_level = log_level  # lowest LogRecorded level wanted (above critical: none)
        self.task_started = "TaskStarted" in self
        self.task_succeeded = "TaskSucceeded" in self
        self.cache_hit = "CacheHit" in self
        self.cache_missed = "CacheMissed" in self
        self.task_failed = "TaskFailed" in self
        self.task_retried = "TaskRetried" in self
        self.task_timed_out = "TaskTimedOut" in self
        self.calls = any(kind in self for kind in CALL_EVENTS)
        self.progress = "MapProgress" in self
        self.counts = kinds is None or bool(kinds)
        self.items = (
            self if drop == item_drop else Wants(kinds, log_level, opt_in, item_drop, item_drop)
        )

    @classmethod
    def join(cls, interests: Iterable[Interest]) -> Wants:
        """The union of `interests`."""
        kinds: set[str] | None = set()
        named: set[str] = set()  # opt-in kinds someone names
        level = LEVELS["critical"] + 10
        interests = list(interests)
        for interest in interests:
            if interest.kinds is None:
                kinds = None
            else:
                named |= interest.kinds & OPT_IN
                if kinds is not None:
                    kinds |= interest.kinds
            if interest.wants("LogRecorded"):
                level = min(level, LEVELS[interest.log_level])
        item_drop = frozenset(
            kind
            for kind in CALL_EVENTS
            if any(interest.wants(kind) for interest in interests)
            and not any(interest.wants(kind, item=True) for interest in interests)
        )
        return cls(None if kinds is None else frozenset(kinds), level, frozenset(named), item_drop)

    def __contains__(self, kind: object) -> bool:
        if kind in self.drop:
            return False
        if self.kinds is None:
            return kind not in OPT_IN or kind in self.opt_in
        return kind in self.kinds

    def __reduce__(self) -> tuple[Any, ...]:  # travels to workers in their spec
        return (Wants, (self.kinds, self.log_level, self.opt_in, self.item_drop, self.drop))

    def __repr__(self) -> str:
        kinds = "every kind" if self.kinds is None else ", ".join(sorted(self.kinds))
        return f"<Wants {kinds}; log level >= {self.log_level}>"


#: What a sink with no `wants` of its own receives.
EVERY_EVENT = Wants(None, LEVELS["debug"])
#: What nobody listening wants.
NOTHING = Wants(frozenset(), LEVELS["critical"] + 10)


def wants_of(sink: Any) -> Wants:
    """What the event sink `sink` wants (`NOTHING` for no sink, everything by default)."""
    if sink is None:
        return NOTHING
    return getattr(sink, "wants", EVERY_EVENT)
