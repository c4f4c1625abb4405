"""Name -> implementation lookup over entry points; the only module that touches stevedore.

Four groups: `daglite.backends`, `daglite.stores`, `daglite.formats` and
`daglite.processors`. The core registers its built-ins through the same entry points
(see `core/pyproject.toml`), so there is one lookup path. Listing a group reads entry
point metadata only; it imports no plugin.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from daglite.errors import PluginError

GROUPS = {
    "backend": "daglite.backends",
    "store": "daglite.stores",
    "format": "daglite.formats",
    "processor": "daglite.processors",
}

# Well-known names provided by official plugins: what to install when they are missing.
INSTALL_HINTS = {
    ("backend", "loky"): "daglite-loky",
    ("backend", "dask"): "daglite-dask",
    ("backend", "ray"): "daglite-ray",
    ("store", "s3"): "daglite-s3",
    ("store", "s3a"): "daglite-s3",
    ("processor", "otel"): "daglite-otel",
    ("processor", "rich"): "daglite-rich",
    ("format", "parquet"): "daglite-arrow",
    ("format", "feather"): "daglite-arrow",
    ("format", "csv"): "daglite-arrow",
    ("format", "arrow"): "daglite-arrow",
}


@attrs.frozen
class EntryInfo:
    """One entry point of a daglite group, described without importing it."""

    group: str
    name: str
    value: str
    distribution: str | None
    version: str | None


_loaded: dict[tuple[str, str], Any] = {}
_overrides: dict[tuple[str, str], Any] = {}


def _group(kind: str) -> str:
    try:
        return GROUPS[kind]
    except KeyError:
        raise ValueError(
            f"unknown plugin kind {kind!r}; expected one of {sorted(GROUPS)}"
        ) from None


def _entry_points(kind: str) -> list[Any]:
    from stevedore import ExtensionManager  # deferred: keeps `import daglite` lean

    manager = ExtensionManager.make_test_instance([], namespace=_group(kind))
    return list(manager.list_entry_points())


def _distributions(group: str) -> dict[tuple[str, str], tuple[str, str]]:
    # stevedore's cached scan drops the distribution; importlib.metadata still knows it.
    from importlib.metadata import entry_points

    found = {}
    for ep in entry_points(group=group):
        if ep.dist is not None:
            found[(ep.name, ep.value)] = (ep.dist.name, ep.dist.version)
    return found


def entries(kind: str) -> list[EntryInfo]:
    """Every installed entry of one kind (`"backend"`, `"store"`, ...), without importing any."""
    group = _group(kind)
    dists = _distributions(group)
    infos = []
    for ep in _entry_points(kind):
        dist, version = dists.get((ep.name, ep.value), (None, None))
        infos.append(EntryInfo(group, ep.name, ep.value, dist, version))
    for (k, name), obj in _overrides.items():
        if k == kind:
            infos.append(EntryInfo(_group(kind), name, repr(obj), "daglite.testing", None))
    return sorted(infos, key=lambda info: info.name)


def names(kind: str) -> list[str]:
    """The installed names of one kind, sorted, without importing any plugin."""
    # Not via entries(): the distribution lookup there costs milliseconds, names need none.
    found = {ep.name for ep in _entry_points(kind)}
    found.update(name for (k, name) in _overrides if k == kind)
    return sorted(found)


def load(kind: str, name: str) -> Any:
    """The object registered under `name` in the group of `kind`.

    Raises:
        PluginError: Nothing is registered under `name` (the message lists what is installed and,
            for official plugins, what to `pip install`), or the plugin failed to import (the
            message names its distribution; the import error is the `__cause__`).
    """
    key = (kind, name)
    if key in _overrides:
        return _overrides[key]
    if key in _loaded:
        return _loaded[key]
    candidates = [ep for ep in _entry_points(kind) if ep.name == name]
    if not candidates:
        raise PluginError(_missing_message(kind, name))
    ep = candidates[0]
    try:
        obj = ep.load()
    except Exception as exc:
        dist, version = _distributions(_group(kind)).get((ep.name, ep.value), (None, None))
        where = f"distribution '{dist}' {version}, {ep.value}" if dist else ep.value
        raise PluginError(
            f"{kind} '{name}' is installed ({where}) but failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    _loaded[key] = obj
    return obj


def _missing_message(kind: str, name: str) -> str:
    installed = ", ".join(names(kind)) or "none"
    hint = INSTALL_HINTS.get((kind, name))
    if hint:
        return (
            f"{kind} '{name}' is not installed: pip install {hint} (installed {kind}s: {installed})"
        )
    return f"unknown {kind} '{name}'; installed {kind}s: {installed}"


def clear_cache() -> None:
    """Forget loaded objects and stevedore's scans (after installing a plugin mid-process)."""
    from stevedore import ExtensionManager
    from stevedore import _cache  # stevedore keeps one scan per interpreter and on disk

    _loaded.clear()
    ExtensionManager.ENTRY_POINT_CACHE.clear()
    _cache._c._internal.clear()


@contextmanager
def override(kind: str, name: str, obj: Any) -> Iterator[None]:
    """Register `obj` under `name` for the duration of the block (for tests).

    Only this process sees it; worker processes started by a backend do not.
    """
    key = (kind, _check_name(name))
    _group(kind)
    previous = _overrides.get(key, _MISSING)
    _overrides[key] = obj
    try:
        yield
    finally:
        if previous is _MISSING:
            _overrides.pop(key, None)
        else:
            _overrides[key] = previous


_MISSING = object()


def _check_name(name: str) -> str:
    if not name or not isinstance(name, str):
        raise ValueError(f"a plugin name must be a non-empty string, not {name!r}")
    return name
