"""`daglite cache info` / `daglite cache clear`: look at and prune a cache store."""

from __future__ import annotations

import re
import sys
from typing import Any

from daglite.cli.targets import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in `text`: a number of seconds, or parts like `90s`, `15m`, `2h`, `7d`, `1h30m`.

    Raises:
        UsageError: `text` is not a duration.
    """
    text = text.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds < 0:
            raise UsageError(f"--older-than must not be negative, not {text!r}")
        return seconds
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(
            f"invalid duration {text!r}: use a number of seconds or parts like "
            "30s, 15m, 2h, 7d, 1w (combined: 1h30m)"
        )
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def open_store(url: str | None) -> Any:
    """The cache store at `url` (the `cache_store` setting when `None`).

    Raises:
        UsageError: The store cannot be opened (e.g. its URL scheme is not installed).
    """
    from daglite.cachestore import CacheStore

    if url is None:
        from daglite.settings import get_global_settings

        url = get_global_settings().cache_store
    from daglite.redaction import redact_url

    try:
        return CacheStore(url)
    except Exception as exc:  # the message never repeats a credential of the URL
        raise UsageError(f"cannot open the cache store '{redact_url(url)}': {exc}") from None


def info(url: str | None) -> int:
    """Print what the store reports about itself."""
    for key, value in open_store(url).info().items():
        print(f"{key}: {_human(str(key), value)}")
    return 0


def clear(url: str | None, older_than: str | None, force: bool = False) -> int:
    """Remove entries (all, or those older than the duration) and dead writers' temporaries.

    Raises:
        UsageError: The store is not a daglite cache store and `force` is not given.
    """
    from daglite.cachestore import MARKER

    seconds = parse_duration(older_than) if older_than is not None else None
    store = open_store(url)
    if not force and not store.is_store():
        raise UsageError(
            f"'{store.bytes.safe_url}' is not a daglite cache store (no {MARKER} marker and "
            "no cache entries, but other files); nothing was removed. Check --store; if it "
            "is a cache store, add --force (only cache entries are ever removed)"
        )
    temporaries = store.sweep()
    removed = store.clear(older_than=seconds, force=True)
    age = f" older than {older_than}" if older_than is not None else ""
    extra = ""
    if temporaries:
        plural = "s" if temporaries > 1 else ""
        extra = f" and {temporaries} temporary file{plural} of unfinished writes"
    print(
        f"removed {removed} cache entr{'y' if removed == 1 else 'ies'}{age}{extra} "
        f"from {store.bytes.safe_url}"
    )
    sys.stdout.flush()
    return 0


def _human(key: str, value: Any) -> str:
    if key.endswith("bytes") and isinstance(value, int):
        size = float(value)
        for unit in ("B", "KiB", "MiB", "GiB"):
            if size < 1024 or unit == "GiB":
                return f"{value} ({size:.1f} {unit})" if unit != "B" else f"{value} B"
            size /= 1024
    return str(value)
