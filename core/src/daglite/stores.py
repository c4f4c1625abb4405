"""Opening byte stores by URL: every byte daglite persists goes through one of these.

A store is a root URL (`.daglite/cache`, `/data/run`, `memory://scratch`,
`s3://bucket/prefix`) plus options. `open_store(url, **options)` finds the factory for
the URL's scheme in the `daglite.stores` entry-point group (plain paths mean `file`),
builds the store once and reuses it for the same URL and options (the last `MAX_OPEN`
stores opened are kept: a long-running process that opens many stores does not keep them
all). `StoreLayers` does the same for the objects layered over a store (cache and dataset
stores). The store itself, with its keys and atomic writes, is `daglite.bytestore.ByteStore`
(re-exported here, its documented home, with `check_key` and `scheme_of`).

Writing a store plugin (e.g. `daglite-s3`): register a factory under the URL scheme in
the `daglite.stores` entry-point group (the contract is `daglite.plugin.StoreFactory`).
The factory is called as `factory(url, options, settings)` with the settings of the
session opening the store (a factory of two parameters as `factory(url, options)`) and
returns a `ByteStore` over an fsspec filesystem (see `daglite.bytestore`).
"""

from __future__ import annotations

import os
import threading
from typing import Any
from typing import ClassVar
from typing import Generic
from typing import TypeVar

from daglite import registry
from daglite.bytestore import ByteStore as ByteStore
from daglite.bytestore import check_key as check_key
from daglite.bytestore import scheme_of as scheme_of
from daglite.errors import PluginError
from daglite.errors import StoreError
from daglite.redaction import redact
from daglite.redaction import redact_url
from daglite.redaction import secret_query_names
from daglite.redaction import split_credentials

# -- factories (registered in core/pyproject.toml; `file` lives in daglite.localstore) ------


def memory_store(url: str, options: dict[str, Any]) -> ByteStore:
    """Factory of the `memory` scheme: fsspec's in-process memory filesystem (for tests).

    Every `memory://` store of a process shares fsspec's one memory filesystem; give each
    its own root (`memory://<name>`). Worker processes see their own, empty memory.
    """
    from fsspec.implementations.memory import MemoryFileSystem

    return ByteStore(MemoryFileSystem(**options), url, is_local=True, options=options)


# -- opening ------------------------------------------------------------------------------

#: How many opened stores (and layers over them) are kept for reuse; the oldest goes first.
MAX_OPEN = 64

_opened: dict[Any, ByteStore] = {}
_lock = threading.Lock()


def _keep(cache: dict[Any, Any], ident: Any, value: Any) -> None:
    """Remember `value` under `ident` in `cache`, dropping the oldest beyond `MAX_OPEN`."""
    cache[ident] = value
    while len(cache) > MAX_OPEN:
        del cache[next(iter(cache))]


def open_store(url: str | ByteStore, **options: Any) -> ByteStore:
    """The byte store for `url` (a plain path, `file://...`, `memory://...`, `s3://...`, ...).

    Stores are built once per URL and options, then reused. A `ByteStore` is returned as is.

    Raises:
        StoreError: No store is installed for the URL's scheme (the message lists the
            installed schemes and, for well-known ones, what to `pip install`), or the
            factory failed.
    """
    if isinstance(url, ByteStore):
        return url
    if not isinstance(url, str) or not url:
        raise StoreError(f"a store is a non-empty URL or path string, not {url!r}")
    url, credentials = check_url(url)
    if credentials:  # explicit options win over what the URL carried
        options = {**credentials, **options}
    scheme = scheme_of(url)
    ident: Any = url
    if scheme == "file" and not os.path.isabs(url):
        ident = (url, os.getcwd())  # a relative path means a different store in another cwd
    if options:
        import json

        ident = (ident, json.dumps(options, sort_keys=True, default=repr))
    store = _opened.get(ident)
    if store is not None:
        return store
    with _lock:
        store = _opened.get(ident)
        if store is None:
            store = _build(scheme, url, options)
            _keep(_opened, ident, store)
    return store


def check_url(url: str) -> tuple[str, dict[str, str]]:
    """`url` without credentials, and the credentials it held (see `daglite.redaction`).

    Raises:
        StoreError: The URL has a secret-looking query parameter (the message names the
            parameter, never its value, and says where credentials go instead).
    """
    names = secret_query_names(url)
    if names:
        raise StoreError(
            f"the store URL '{redact_url(url)}' carries a secret in its query string "
            f"({', '.join(sorted(set(names)))}): daglite reads no credential from a URL's query; "
            "pass it as a store option (CacheStore(url, token=...)), in [tool.daglite.options] "
            "or through the store's environment variables (e.g. AWS_SESSION_TOKEN)"
        )
    return split_credentials(url)


def check_store(spec: Any, what: str) -> None:
    """Fail early (at decoration or session open) if store `spec` cannot be opened later.

    Store objects pass; a URL or path must have no secret in its query and a scheme some
    installed store serves. Nothing is opened or imported but the store's factory.

    Raises:
        StoreError: The URL's scheme has no installed store (the message lists those
            installed and what to `pip install`), or its query carries a secret.
    """
    if not isinstance(spec, str):
        return
    if not spec:
        raise StoreError(f"the {what} store must be a non-empty path or URL, not ''")
    clean, _ = check_url(spec)
    try:
        registry.load("store", scheme_of(clean))
    except PluginError as exc:
        raise StoreError(f"cannot use '{clean}' as the {what} store: {exc}") from exc


def _build(scheme: str, url: str, options: dict[str, Any]) -> ByteStore:
    try:
        factory = registry.load("store", scheme)
    except PluginError as exc:
        raise StoreError(f"cannot open store '{url}': {exc}") from exc
    try:
        store = _call(factory, url, options)
    except StoreError as exc:  # already says what happened, without secrets
        raise StoreError(redact(str(exc), options)) from None
    except Exception as exc:  # the library's text may echo an option: redacted, not chained
        raise StoreError(
            redact(f"cannot open store '{url}': {type(exc).__name__}: {exc}", options)
        ) from None
    if not isinstance(store, ByteStore):
        raise StoreError(
            f"the '{scheme}' store factory returned {type(store).__name__}, not a ByteStore"
        )
    return store


def _call(factory: Any, url: str, options: dict[str, Any]) -> Any:
    """Call a store factory: with the current session's settings, unless it takes two."""
    import inspect

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read: the contract's three arguments
        params = None
    if params is not None:
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) < 3 and not any(p.kind is p.VAR_POSITIONAL for p in params):
            return factory(url, options)  # a factory of the first contract: (url, options)
    from daglite.context import bare_runtime
    from daglite.context import current_runtime

    runtime = current_runtime.get() or bare_runtime()
    return factory(url, options, runtime.settings)


def forget_stores() -> None:
    """Drop every opened store and every layer built on one (they are reopened on next use)."""
    with _lock:
        _opened.clear()
    for layers in StoreLayers.every:
        layers.clear()


T = TypeVar("T")


class StoreLayers(Generic[T]):
    """Objects layered over a byte store (cache stores, dataset stores), built once per spec.

    A spec is a URL, a path (a relative path names a different store in another working
    directory) or a `ByteStore`; an object of the layer's own class is returned as is.

    Args:
        layer: The layer's class; called with the spec to build one.
        kind: What the layer is called in error messages (`"cache"`, `"dataset"`).
    """

    every: ClassVar[list[StoreLayers[Any]]] = []

    def __init__(self, layer: type[T], kind: str) -> None:
        self.layer = layer
        self.kind = kind
        self._built: dict[Any, T] = {}
        self._lock = threading.Lock()
        StoreLayers.every.append(self)

    def open(self, spec: Any) -> T:
        """The layer object for `spec` (built on first use).

        Raises:
            StoreError: The URL's scheme has no installed store.
            TypeError: `spec` is not a URL, a path, a `ByteStore` or a layer object.
        """
        if isinstance(spec, self.layer):
            return spec
        try:
            found = self._built.get(spec)  # URLs, absolute paths and byte stores: one lookup
        except TypeError:  # unhashable: not a store spec at all (reported below)
            found = None
        if found is not None:
            return found
        if isinstance(spec, str):
            absolute = "://" in spec or os.path.isabs(spec)
            ident: Any = spec if absolute else (spec, os.getcwd())
        elif isinstance(spec, ByteStore):
            ident = spec
        else:
            raise TypeError(
                f"a {self.kind} store is a path, a URL, a ByteStore or a "
                f"{self.layer.__name__}, not {spec!r}"
            )
        found = self._built.get(ident)
        if found is None:
            with self._lock:
                found = self._built.get(ident)
                if found is None:
                    build: Any = self.layer  # its constructor takes the spec
                    found = build(spec)
                    _keep(self._built, ident, found)
        return found

    def clear(self) -> None:
        """Forget every layer object built so far."""
        with self._lock:
            self._built.clear()
