"""Byte stores: every byte daglite persists goes through one of these, over fsspec.

A store is a root URL (`.daglite/cache`, `/data/run`, `memory://scratch`,
`s3://bucket/prefix`) plus options. `open_store(url, **options)` finds the factory for
the URL's scheme in the `daglite.stores` entry-point group (plain paths mean `file`),
builds the store once and reuses it for the same URL and options (the last `MAX_OPEN`
stores opened are kept: a long-running process that opens many stores does not keep them
all).

Keys are relative, `/`-separated paths. They are validated before anything touches the
filesystem: no absolute path, no `..` that leaves the root, no empty segment, no
backslash or NUL. Writes are atomic: local files are written under a temporary name and
renamed into place, so a reader sees the old entry or the new one, never half of one.

Writing a store plugin (e.g. `daglite-s3`): register a factory under the URL scheme in
the `daglite.stores` entry-point group (the contract is `daglite.plugin.StoreFactory`).
The factory is called as `factory(url, options, settings)` with the settings of the
session opening the store (a factory of two parameters as `factory(url, options)`) and
returns a `ByteStore` over an fsspec filesystem::

    def s3_store(url: str, options: dict[str, Any], settings: DagliteSettings) -> ByteStore:
        import s3fs

        merged = {**settings.options.get("s3", {}), **options}
        return ByteStore(s3fs.S3FileSystem(**merged), url, is_local=False, options=merged)

That is the whole contract. `ByteStore` strips the protocol with the filesystem's own
`_strip_protocol`, validates keys, and writes with one `pipe_file` call, which is a single
PUT (atomic) on object stores. A filesystem whose `pipe_file` is not atomic (sftp, ...)
passes `rename_writes=True` so writes go to a temporary name first, then `mv`.
`is_local=False` tells daglite that remote workers can reach the store directly, so their
writes are not relayed to the coordinator.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from typing import ClassVar
from typing import Generic
from typing import TypeVar

from daglite import registry
from daglite.errors import PluginError
from daglite.errors import StoreError
from daglite.redaction import redact
from daglite.redaction import redact_url
from daglite.redaction import secret_query_names
from daglite.redaction import split_credentials
from daglite.temporaries import TEMP_MARK
from daglite.temporaries import temp_name


def scheme_of(url: str) -> str:
    """The URL scheme of `url` (`"file"` for plain paths, also Windows drive paths)."""
    head, sep, _ = url.partition("://")
    if sep and len(head) > 1 and head.replace("+", "").replace("-", "").isalnum():
        return head.lower()
    return "file"


def check_key(key: Any, root: str) -> str:
    """The normalized form of `key` (`.` segments and in-root `..` resolved).

    Raises:
        StoreError: The key is not a string, is empty or absolute, has an empty segment, a
            backslash or a NUL, or uses `..` to leave the root (the message names key and root).
    """
    if not isinstance(key, str):
        raise StoreError(f"store key must be a string, not {type(key).__name__} {key!r}")
    problem = None
    if not key:
        problem = "it is empty"
    elif key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        problem = "it is absolute; keys are relative to the store's root"
    elif "\\" in key or "\x00" in key:
        problem = "it contains a backslash or NUL character"
    else:
        parts: list[str] = []
        for part in key.split("/"):
            if part == "":
                problem = "it has an empty segment (a leading, trailing or doubled '/')"
                break
            if part == ".":
                continue
            if part == "..":
                if not parts:
                    problem = "its '..' leaves the store's root"
                    break
                parts.pop()
                continue
            parts.append(part)
        else:
            if not parts:
                problem = "it names the store's root itself"
            else:
                return "/".join(parts)
    raise StoreError(
        f"invalid store key {key!r} for store '{root}': {problem}; nothing was written"
    )


class ByteStore:
    """Bytes under keys below a root, on any fsspec filesystem.

    Attributes:
        fs: The fsspec filesystem.
        url: The URL the store was opened with.
        root: The root path on `fs` (protocol stripped, no trailing `/`).
        is_local: True when only this machine can reach the store (local files, memory):
            writes made in remote worker processes are then relayed to the coordinator.
        rename_writes: Write to a temporary name, then rename (for filesystems whose
            `pipe_file` is not a single atomic PUT).
        cat_options: Extra keyword arguments of `fs.cat_file` (a class attribute; e.g. to
            read an object with one request, never as concurrent ranges that could mix
            two versions of an object being overwritten).
    """

    cat_options: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        fs: Any,
        url: str,
        *,
        is_local: bool = True,
        rename_writes: bool = False,
        options: dict[str, Any] | None = None,
    ) -> None:
        # A store never holds a credential in its URL, however it was built: the URL is
        # what every message, repr, log line and event shows (see `daglite.redaction`).
        url, credentials = split_credentials(url)
        self._fs = fs
        self.url = url
        self.root = type(fs)._strip_protocol(url).rstrip("/") if fs is not None else url
        self.is_local = is_local
        self.rename_writes = rename_writes
        self.options = {**credentials, **(options or {})}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.safe_url!r}>"

    def __reduce__(self) -> Any:
        # Travel to workers as a URL: the worker reopens (and caches) its own store.
        return (_open_with_options, (self.url, self.options))

    @property
    def fs(self) -> Any:
        """The fsspec filesystem under the store."""
        return self._fs

    def path(self, key: str) -> str:
        """The full path of `key` on the filesystem (the key is validated first).

        Raises:
            StoreError: `key` is invalid (see `check_key`).
        """
        return f"{self.root}/{check_key(key, self.url)}"

    def read(self, key: str) -> bytes:
        """The bytes stored under `key`.

        Raises:
            FileNotFoundError: Nothing is stored under `key`.
            StoreError: `key` is invalid, or the store failed (the message says what to check).
        """
        path = self.path(key)
        try:
            return self.fs.cat_file(path, **self.cat_options)
        except FileNotFoundError as exc:
            problem = self.explain(exc)
            if problem:  # e.g. a missing bucket: not a missing key
                raise self.error("read", key, exc) from None
            raise FileNotFoundError(f"no key {key!r} in store '{self.safe_url}'") from None
        except Exception as exc:
            raise self.error("read", key, exc) from None

    def write(self, key: str, data: bytes) -> str:
        """Store `data` under `key` atomically; returns the full path written.

        Raises:
            StoreError: `key` is invalid, or the store refused the write.
        """
        path = self.path(key)
        try:
            if self.rename_writes:
                temp = temp_name(path)
                self.fs.pipe_file(temp, bytes(data))
                self.fs.mv(temp, path)
            else:
                self.fs.pipe_file(path, bytes(data))
        except Exception as exc:
            raise self.error("write", key, exc) from None
        return path

    def exists(self, key: str) -> bool:
        """Whether something is stored under `key`."""
        path = self.path(key)
        try:
            return bool(self.fs.isfile(path))
        except Exception as exc:
            raise self.error("check", key, exc) from None

    def delete(self, key: str) -> bool:
        """Remove `key`; returns whether it existed."""
        path = self.path(key)
        try:
            if not self.fs.isfile(path):
                return False
            self.fs.rm_file(path)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise self.error("delete", key, exc) from None
        return True

    def delete_many(self, keys: list[str]) -> int:
        """Remove `keys` (one bulk request on object stores); returns how many were given."""
        if not keys:
            return 0
        paths = [self.path(key) for key in keys]
        try:
            self.fs.rm(paths)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self.error("delete", keys[0], exc) from None
        return len(keys)

    def head(self, key: str, size: int) -> bytes:
        """The first `size` bytes stored under `key` (fewer if it is shorter).

        Raises:
            FileNotFoundError: Nothing is stored under `key`.
            StoreError: `key` is invalid, or the store failed.
        """
        path = self.path(key)
        try:
            return bytes(self.fs.cat_file(path, start=0, end=size))
        except FileNotFoundError:
            raise FileNotFoundError(f"no key {key!r} in store '{self.safe_url}'") from None
        except Exception as exc:
            raise self.error("read", key, exc) from None

    def size(self, key: str) -> int:
        """How many bytes are stored under `key`."""
        path = self.path(key)
        try:
            return int(self.fs.size(path))
        except Exception as exc:
            raise self.error("check", key, exc) from None

    def temporaries(self, max_age: float | None = None) -> list[str]:
        """The keys of temporary files of writes that never finished (see `stale`).

        Object stores write with single PUTs and have none; stores that write through a
        temporary name (local files, `rename_writes`) override this.
        """
        return []

    def list(self, prefix: str = "") -> list[str]:
        """Every key under `prefix` (all keys by default), sorted; in-flight writes excluded."""
        base = f"{self.root}/{check_key(prefix, self.url)}" if prefix else self.root
        try:
            found = self.fs.find(base)
        except FileNotFoundError as exc:
            if self.explain(exc):
                raise self.error("list", prefix, exc) from None
            return []
        except Exception as exc:
            raise self.error("list", prefix, exc) from None
        start = len(self.root) + 1
        keys = []
        for path in found:
            key = path[start:] if path.startswith(self.root + "/") else path
            if TEMP_MARK not in key.rsplit("/", 1)[-1]:
                keys.append(key)
        return sorted(keys)

    # -- errors -----------------------------------------------------------------------------

    @property
    def safe_url(self) -> str:
        """The URL with any credential in it masked (safe to log and to show).

        Stores opened with `open_store` never hold a credential in their URL (it is split
        into options); this also covers a store a plugin built by hand.
        """
        return redact_url(self.url)

    def explain(self, exc: BaseException) -> str:
        """What to check when the filesystem raised `exc` (plugins override; "" if nothing).

        For a `FileNotFoundError`, a non-empty answer means the store itself is unusable
        (e.g. its bucket is missing) rather than one key being absent.
        """
        return ""

    def error(self, op: str, key: str, exc: BaseException) -> StoreError:
        """The `StoreError` for a failed `op` ("read", "write", ...) on `key`.

        It names the key and the store's URL, says what to check (`explain`), and never
        contains a secret from the store's options.
        """
        hint = self.explain(exc)
        message = f"cannot {op} key {key!r} in store '{self.safe_url}': {type(exc).__name__}: {exc}"
        if hint:
            message += f"; {hint}"
        return StoreError(redact(message, self.options))

    def full_path(self, key: str) -> str:
        """Where `key` lives, as a user would write it (a local path, or a URL)."""
        return self.shown(self.path(key))

    def shown(self, path: str) -> str:
        """A path on `fs` (as `path()` and `write()` return it) as a user would write it."""
        scheme = scheme_of(self.url)
        return path if scheme == "file" else f"{scheme}://{path.lstrip('/')}"


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


def _open_with_options(url: str, options: dict[str, Any]) -> ByteStore:
    return open_store(url, **options)


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
