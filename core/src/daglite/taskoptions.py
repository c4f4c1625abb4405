"""The options of `@task`, checked once at decoration so that a bad one fails before any call.

Numbers must be finite and in range (a `timeout` of `inf`, `nan` or `1e10` would only fail
mid-run); names of backends and formats must name an installed plugin (only entry-point
metadata is read: nothing is imported); store URLs must have a scheme an installed store
serves and no secret in their query. Each message names the option and what to pass.
"""

from __future__ import annotations

import math
from typing import Any

#: The longest `timeout` and `retry_delay` accepted, in seconds (30 days; the OS's own
#: limit for a thread wait is about 49 days on Windows).
MAX_SECONDS = 30 * 24 * 3600


def check_options(
    *,
    retries: Any,
    timeout: Any,
    retry_delay: Any,
    retry_backoff: Any,
    cache_ttl: Any,
    backend: Any,
    dataset_format: Any,
    cache: Any,
    cache_store: Any,
    dataset_store: Any,
) -> None:
    """Check the options of `@task` (see the module docstring).

    Raises:
        ValueError: An option is invalid; the message names it and what is allowed.
    """
    _check_numbers(retries, timeout, retry_delay, retry_backoff, cache_ttl)
    if backend is not None:
        _check_plugin_name("backend", backend, "backend")
    if dataset_format is not None:
        _check_plugin_name("dataset_format", dataset_format, "format")
    for option, spec in (("cache", cache), ("cache_store", cache_store)):
        if isinstance(spec, str):
            _check_store_option(option, spec, "cache")
    if isinstance(dataset_store, str):
        _check_store_option("dataset_store", dataset_store, "dataset")


def _check_numbers(
    retries: Any, timeout: Any, retry_delay: Any, retry_backoff: Any, cache_ttl: Any
) -> None:
    def number(value: Any) -> bool:
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )

    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries must be a whole number >= 0, not {retries!r}.")
    if timeout is not None and (not number(timeout) or not 0 < timeout <= MAX_SECONDS):
        raise ValueError(
            f"timeout must be a finite number of seconds > 0 and <= {MAX_SECONDS} (30 days), "
            f"or None for no timeout, not {timeout!r}."
        )
    if not number(retry_delay) or not 0 <= retry_delay <= MAX_SECONDS:
        raise ValueError(
            f"retry_delay must be a finite number of seconds >= 0 and <= {MAX_SECONDS} "
            f"(30 days), not {retry_delay!r}."
        )
    if not number(retry_backoff) or retry_backoff < 1:
        raise ValueError(f"retry_backoff must be a finite number >= 1, not {retry_backoff!r}.")
    if cache_ttl is not None and (not number(cache_ttl) or cache_ttl <= 0):
        raise ValueError(
            f"cache_ttl must be a finite number of seconds > 0, or None to keep entries until "
            f"cleared, not {cache_ttl!r}."
        )


def _check_plugin_name(option: str, value: Any, kind: str) -> None:
    """`value` names an installed plugin of `kind` (only the entry points are read).

    Raises:
        ValueError: `value` is not a non-empty string, or nothing of that name is installed
            (the message lists what is, and what to `pip install` for well-known names).
    """
    from daglite import registry

    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"{option} must be the name of a {kind} (a non-empty string; see: daglite "
            f"plugins), or None for the default, not {value!r}."
        )
    if value not in registry.names(kind):
        try:
            registry.load(kind, value)  # raises the registry's message: installed, hints
        except Exception as exc:
            raise ValueError(f"{option}={value!r}: {exc}.") from None


def _check_store_option(option: str, spec: str, what: str) -> None:
    from daglite.stores import check_store

    try:
        check_store(spec, what)
    except Exception as exc:
        raise ValueError(f"{option}: {exc}.") from None
