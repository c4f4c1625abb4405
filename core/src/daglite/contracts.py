"""Checks a loaded plugin against the contract of its kind and the plugin API version.

The registry runs these checks when it loads an entry point, so a plugin of the wrong shape
is refused with a message naming what is missing instead of failing later, somewhere else,
with an `AttributeError`. `daglite.testing.check_plugin` runs the same checks in a plugin's
own test suite.

How a plugin says which plugin API it was built for: the top-level package (or module) of
its entry points sets `DAGLITE_API_VERSION` to the literal number of `daglite.plugin.
API_VERSION` it was written against (`DAGLITE_API_VERSION = 1`). The core's own entry points
are exempt: they are always built for the API of their own release.
"""

from __future__ import annotations

import inspect
from typing import Any

#: What each kind must look like, in the words of the error messages.
SHAPES = {
    "backend": "a subclass of daglite.plugin.Backend that implements map()",
    "store": "a store factory: a callable (url, options, settings) -> daglite.plugin.ByteStore",
    "format": "a Format: name, extensions, types, dumps() and loads()",
    "processor": (
        "a processor: a callable over one event, built by from_settings(settings) or with "
        "no argument"
    ),
}


def shape_problem(kind: str, obj: Any) -> str | None:
    """What is wrong with `obj` as a plugin of `kind`, or `None` when it fits the contract."""
    return _CHECKS[kind](obj)


def _backend(obj: Any) -> str | None:
    from daglite.backends.base import Backend

    if not (isinstance(obj, type) and issubclass(obj, Backend)):
        return f"{_what(obj)} is not {SHAPES['backend']}"
    if getattr(obj.map, "__isabstractmethod__", False):
        return f"{obj.__qualname__} does not implement map() ({SHAPES['backend']})"
    return None


def _store(obj: Any) -> str | None:
    if not callable(obj):
        return f"{_what(obj)} is not {SHAPES['store']}"
    return None


def _format(obj: Any) -> str | None:
    fmt = obj
    if isinstance(obj, type):
        try:
            fmt = obj()
        except Exception as exc:
            return f"{obj.__qualname__}() cannot be built: {type(exc).__name__}: {exc}"
    missing = [attr for attr in ("name", "extensions", "types") if not hasattr(fmt, attr)]
    missing += [m for m in ("dumps", "loads") if not callable(getattr(fmt, m, None))]
    if missing:
        return f"{_what(obj)} lacks {', '.join(missing)} ({SHAPES['format']})"
    if not isinstance(fmt.name, str):
        return f"{_what(obj)}.name is {fmt.name!r}, not a string"
    try:
        extensions = list(fmt.extensions)
        list(fmt.types)
    except TypeError as exc:
        return f"{_what(obj)}: extensions and types must be sequences ({exc})"
    if not all(isinstance(ext, str) for ext in extensions):
        return f"{_what(obj)}.extensions must be strings, not {fmt.extensions!r}"
    return None


def _processor(obj: Any) -> str | None:
    if not callable(obj):
        return f"{_what(obj)} is not {SHAPES['processor']}"
    if callable(getattr(obj, "from_settings", None)):
        return None
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return None
    try:
        signature.bind()
    except TypeError:
        needed = [
            name
            for name, p in signature.parameters.items()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        return (
            f"{_what(obj)} cannot be built: it needs {', '.join(needed)}; give them defaults "
            "or add a from_settings(settings) classmethod"
        )
    return None


_CHECKS = {"backend": _backend, "store": _store, "format": _format, "processor": _processor}


def version_problem(module: Any, api_version: int) -> str | None:
    """What is wrong with the plugin API version declared by `module`, or `None`."""
    declared = getattr(module, "DAGLITE_API_VERSION", None)
    name = getattr(module, "__name__", "?")
    if declared is None:
        return (
            f"it does not say which plugin API it was built for: set "
            f"DAGLITE_API_VERSION = {api_version} in {name} (this daglite has plugin API "
            f"version {api_version})"
        )
    if declared != api_version:
        return (
            f"it was built for plugin API version {declared!r}, and this daglite has version "
            f"{api_version}: install a release of the plugin made for this daglite"
        )
    return None


def _what(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__name__
