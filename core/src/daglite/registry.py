"""Name -> implementation lookup over entry points; the only module that touches stevedore.

Four groups: `daglite.backends`, `daglite.stores`, `daglite.formats` and
`daglite.processors`. The core registers its built-ins through the same entry points
(see `core/pyproject.toml`), so there is one lookup path. Listing a group reads entry
point metadata only; it imports no plugin.

Plugin health. Loading an entry checks it: it must import, fit the contract of its kind
and declare the plugin API version it was built for (`daglite.contracts`), and its name
must be claimed by one distribution only, or the user must have picked one in the
`providers` setting. A plugin that fails one of these checks raises `PluginError` naming
its distribution when it is asked for by name, and is left out (with one warning on the
`daglite` logger) of everything that did not name it (`usable_names`).
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
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

#: The core's package: its own entries are built for its own plugin API.
CORE = "daglite"


@attrs.frozen
class EntryInfo:
    """One entry point of a daglite group, described without importing it."""

    group: str
    name: str
    value: str
    distribution: str | None
    version: str | None

    @property
    def source(self) -> str:
        """`distribution 'x' 1.0, module:attr`, for messages."""
        if self.distribution is None:
            return self.value
        return f"distribution '{self.distribution}' {self.version}, {self.value}"


_loaded: dict[tuple[str, str, str | None], Any] = {}
_failed: dict[tuple[str, str, str | None], PluginError] = {}
_scans: dict[str, list[EntryInfo]] = {}
_quick: dict[tuple[str, str], list[str]] = {}  # (kind, name) -> values in stevedore's scan
_warned: set[tuple[str, str]] = set()
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


def _scan(kind: str) -> list[EntryInfo]:
    # stevedore's cached scan drops the distribution; importlib.metadata still knows it,
    # and lists one entry per distribution that claims a name.
    found = _scans.get(kind)
    if found is None:
        from importlib.metadata import entry_points

        group = _group(kind)
        found = sorted(
            (
                EntryInfo(
                    group,
                    ep.name,
                    ep.value,
                    ep.dist.name if ep.dist is not None else None,
                    ep.dist.version if ep.dist is not None else None,
                )
                for ep in entry_points(group=group)
            ),
            key=lambda info: (info.name, info.distribution or ""),
        )
        _scans[kind] = found
    return found


def entries(kind: str) -> list[EntryInfo]:
    """Every installed entry of one kind (`"backend"`, `"store"`, ...), without importing any.

    A name claimed by several distributions has one entry per distribution.
    """
    infos = list(_scan(kind))
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


def load(kind: str, name: str, *, providers: Mapping[str, Any] | None = None) -> Any:
    """The object registered under `name` in the group of `kind`, checked (see the module doc).

    Args:
        kind: `"backend"`, `"store"`, `"format"` or `"processor"`.
        name: The entry point's name.
        providers: Which distribution provides a name claimed by several (the `providers`
            setting, `{kind: {name: distribution}}`); by default the current settings'.

    Raises:
        PluginError: Nothing is registered under `name` (the message lists what is installed
            and, for official plugins, what to install); the plugin failed to import (the
            import error is the `__cause__`); it does not fit the contract of its kind; it was
            built for another plugin API version; or two distributions claim `name` and the
            `providers` setting picks neither. The message names the distribution(s).
    """
    key = (kind, name)
    if key in _overrides:
        from daglite import contracts

        obj = _overrides[key]
        problem = contracts.shape_problem(kind, obj)
        if problem is not None:
            raise PluginError(
                f"{kind} '{name}' (registered with daglite.testing.override_plugin) cannot be "
                f"used: {problem}"
            )
        return obj
    return load_entry(kind, _choose(kind, name, providers))


def load_entry(kind: str, info: EntryInfo) -> Any:
    """The object of one entry (of one distribution), imported and checked once.

    Raises:
        PluginError: It failed to import, does not fit the contract of its kind, or was built
            for another plugin API version.
    """
    ident = (kind, info.name, info.value)
    if ident in _loaded:
        return _loaded[ident]
    if ident in _failed:
        raise _failed[ident]
    try:
        obj = _load_checked(kind, info)
    except PluginError as exc:
        _failed[ident] = exc
        raise
    _loaded[ident] = obj
    return obj


def chosen(kind: str, name: str) -> EntryInfo:
    """The entry that provides `name` (see `load`), without importing it.

    Raises:
        PluginError: `name` is not installed, or several distributions claim it and the
            `providers` setting picks none of them.
    """
    return _described(kind, _choose(kind, name, None))


def _choose(kind: str, name: str, providers: Mapping[str, Any] | None) -> EntryInfo:
    # The fast path: stevedore's cached scan shows one entry and no provider is picked; the
    # distribution (for messages) is looked up only when something goes wrong.
    quick = _quick.get((kind, name))
    if quick is None:
        quick = _quick[(kind, name)] = [ep.value for ep in _entry_points(kind) if ep.name == name]
    if not quick:
        raise PluginError(_missing_message(kind, name))
    picked = _picked(kind, name, providers, load=len(quick) > 1)
    if len(quick) == 1 and picked is None:
        return EntryInfo(_group(kind), name, quick[0], None, None)
    candidates = [info for info in _scan(kind) if info.name == name]
    if not candidates:  # stevedore's disk cache is stale
        raise PluginError(_missing_message(kind, name))
    if picked is not None:
        chosen = [info for info in candidates if _same_dist(info.distribution, picked)]
        if not chosen:
            raise PluginError(
                f"the providers setting picks '{picked}' for {kind} '{name}', but "
                f"'{picked}' does not provide it; it is provided by "
                f"{_list_sources(candidates)}"
            )
        return chosen[0]
    if len(candidates) > 1:
        dists = " and ".join(f"'{info.distribution}'" for info in candidates)
        raise PluginError(
            f"{kind} '{name}' is provided by two distributions, {_list_sources(candidates)}: "
            f"pick one in the providers setting, e.g. [tool.daglite.providers] "
            f'{kind}.{name} = "{candidates[0].distribution}" in pyproject.toml or '
            f"DAGLITE_PROVIDERS={kind}.{name}={candidates[0].distribution} "
            f"(claimed by {dists})"
        )
    return candidates[0]


def _picked(kind: str, name: str, providers: Mapping[str, Any] | None, *, load: bool) -> str | None:
    if providers is None:
        providers = _current_providers(load)
    return providers.get(kind, {}).get(name)


def _current_providers(load: bool) -> Mapping[str, Any]:
    """The session's `providers` setting, else the global one.

    Outside a session the global settings are loaded (read from `pyproject.toml` and the
    environment, then kept) only when `load` is true: for a name several distributions claim.
    A lookup of an unclaimed name does not fix the global settings as a side effect.
    """
    from daglite import settings as settings_module
    from daglite.context import current_runtime

    runtime = current_runtime.get()
    if runtime is not None:
        return runtime.settings.providers
    if settings_module._global is None and not load:
        return {}
    return settings_module.get_global_settings().providers


def _same_dist(a: str | None, b: str) -> bool:
    def norm(text: str) -> str:
        return text.lower().replace("_", "-").replace(".", "-")

    return a is not None and norm(a) == norm(b)


def _list_sources(infos: list[EntryInfo]) -> str:
    return ", ".join(f"'{i.distribution}' {i.version} ({i.value})" for i in infos)


def _described(kind: str, info: EntryInfo) -> EntryInfo:
    """`info` with its distribution and version (a metadata scan: for messages and listings)."""
    if info.distribution is not None:
        return info
    for found in _scan(kind):
        if (found.name, found.value) == (info.name, info.value):
            return found
    return info


def _load_checked(kind: str, info: EntryInfo) -> Any:
    from importlib.metadata import EntryPoint

    from daglite import contracts

    try:
        obj = EntryPoint(info.name, info.value, info.group).load()
    except Exception as exc:
        raise PluginError(
            f"{kind} '{info.name}' is installed ({_described(kind, info).source}) but failed "
            f"to import: {type(exc).__name__}: {exc}"
        ) from exc
    problem = contracts.shape_problem(kind, obj)
    package = info.value.partition(":")[0].strip().split(".")[0]
    if problem is None and package != CORE:  # the core's own entries fit its own API
        import sys

        from daglite.plugin import API_VERSION

        problem = contracts.version_problem(sys.modules.get(package), API_VERSION)
    if problem is not None:
        where = _described(kind, info).source
        raise PluginError(f"{kind} '{info.name}' ({where}) cannot be used: {problem}")
    return obj


def problem(kind: str, name: str) -> PluginError | None:
    """The error that loading `name` would raise, or `None` when it loads (for listings)."""
    try:
        load(kind, name)
    except PluginError as exc:
        return exc
    return None


def usable_names(kind: str) -> list[str]:
    """The names of `kind` that load and pass their checks, for lookups that name no plugin.

    A broken, misshapen or conflicting plugin is left out, with one warning on the `daglite`
    logger per process, so it never breaks e.g. a save in another format.
    """
    usable = []
    for name in names(kind):
        error = problem(kind, name)
        if error is None:
            usable.append(name)
        elif (kind, name) not in _warned:
            import logging

            _warned.add((kind, name))
            logging.getLogger("daglite").warning("%s (left out until it is fixed)", error)
    return usable


def _missing_message(kind: str, name: str) -> str:
    installed = ", ".join(names(kind)) or "none"
    hint = INSTALL_HINTS.get((kind, name))
    if hint:
        return (
            f"{kind} '{name}' is not installed: {install_hint(hint)} "
            f"(installed {kind}s: {installed})"
        )
    return f"unknown {kind} '{name}'; installed {kind}s: {installed}"


def install_hint(distribution: str) -> str:
    """How to install an official plugin (they are installed from a clone, not an index)."""
    return (
        f"install {distribution} from a clone of daglite: uv pip install ./plugins/{distribution} "
        f"(or pip install ./core ./plugins/{distribution})"
    )


def clear_cache() -> None:
    """Forget loaded objects and stevedore's scans (after installing a plugin mid-process)."""
    from stevedore import ExtensionManager
    from stevedore import _cache  # stevedore keeps one scan per interpreter and on disk

    _loaded.clear()
    _failed.clear()
    _scans.clear()
    _quick.clear()
    _warned.clear()
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
