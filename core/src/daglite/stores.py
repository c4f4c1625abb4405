"""Byte stores: every byte daglite persists goes through one of these, over fsspec.

A store is a root URL (`.daglite/cache`, `/data/run`, `memory://scratch`,
`s3://bucket/prefix`) plus options. `open_store(url, **options)` finds the factory for
the URL's scheme in the `daglite.stores` entry-point group (plain paths mean `file`),
builds the store once and reuses it for the same URL and options.

Keys are relative, `/`-separated paths. They are validated before anything touches the
filesystem: no absolute path, no `..` that leaves the root, no empty segment, no
backslash or NUL. Writes are atomic: local files are written under a temporary name and
renamed into place, so a reader sees the old entry or the new one, never half of one.

Writing a store plugin (e.g. `daglite-s3`): register a factory under the URL scheme in
the `daglite.stores` entry-point group. The factory is called as
`factory(url, options)` and returns a `ByteStore` over an fsspec filesystem::

    def s3_store(url: str, options: dict[str, Any]) -> ByteStore:
        import s3fs

        return ByteStore(s3fs.S3FileSystem(**options), url, is_local=False)

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

from daglite import registry
from daglite.errors import PluginError
from daglite.errors import StoreError

#: Marks the temporary files of in-flight writes; `list()` never shows them.
TEMP_MARK = ".tmp-"


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
    """

    def __init__(
        self,
        fs: Any,
        url: str,
        *,
        is_local: bool = True,
        rename_writes: bool = False,
        options: dict[str, Any] | None = None,
    ) -> None:
        self._fs = fs
        self.url = url
        self.root = type(fs)._strip_protocol(url).rstrip("/") if fs is not None else url
        self.is_local = is_local
        self.rename_writes = rename_writes
        self.options = dict(options or {})

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url!r}>"

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
            StoreError: `key` is invalid.
        """
        return self.fs.cat_file(self.path(key))

    def write(self, key: str, data: bytes) -> str:
        """Store `data` under `key` atomically; returns the full path written.

        Raises:
            StoreError: `key` is invalid, or the filesystem refused the write.
        """
        path = self.path(key)
        try:
            if self.rename_writes:
                temp = _temp_name(path)
                self.fs.pipe_file(temp, bytes(data))
                self.fs.mv(temp, path)
            else:
                self.fs.pipe_file(path, bytes(data))
        except OSError as exc:
            raise StoreError(f"cannot write key {key!r} to store '{self.url}': {exc}") from exc
        return path

    def exists(self, key: str) -> bool:
        """Whether something is stored under `key`."""
        return bool(self.fs.isfile(self.path(key)))

    def delete(self, key: str) -> bool:
        """Remove `key`; returns whether it existed."""
        path = self.path(key)
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            return False
        return True

    def list(self, prefix: str = "") -> list[str]:
        """Every key under `prefix` (all keys by default), sorted; in-flight writes excluded."""
        base = f"{self.root}/{check_key(prefix, self.url)}" if prefix else self.root
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        start = len(self.root) + 1
        keys = []
        for path in found:
            key = path[start:] if path.startswith(self.root + "/") else path
            if TEMP_MARK not in key.rsplit("/", 1)[-1]:
                keys.append(key)
        return sorted(keys)

    def full_path(self, key: str) -> str:
        """Where `key` lives, as a user would write it (a local path, or a URL)."""
        path = self.path(key)
        scheme = scheme_of(self.url)
        return path if scheme == "file" else f"{scheme}://{path.lstrip('/')}"


def _temp_name(path: str) -> str:
    head, _, name = path.rpartition("/")
    return f"{head}/.{name}{TEMP_MARK}{os.getpid()}-{threading.get_ident()}-{os.urandom(4).hex()}"


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_CHUNK = 1 << 16


class LocalStore(ByteStore):
    """A directory on this machine. Reads and writes use the OS directly (no fsspec overhead).

    fsspec's `LocalFileSystem` is only built for the rarely used operations (`list`).
    """

    def __init__(self, root: str, *, url: str | None = None) -> None:
        super().__init__(None, url or root, is_local=True)
        self.root = os.path.abspath(root).replace(os.sep, "/").rstrip("/") or "/"
        self._made: set[str] = set()

    @property
    def fs(self) -> Any:
        if self._fs is None:
            from fsspec.implementations.local import LocalFileSystem

            self._fs = LocalFileSystem()
        return self._fs

    def __reduce__(self) -> Any:
        return (open_store, (self.root,))

    def read(self, key: str) -> bytes:
        with open(self.path(key), "rb") as fh:
            return fh.read()

    def read_trusted(self, key: str) -> bytes:
        """`read` for keys daglite built itself (skips validation; hot path of the cache)."""
        # Plain os calls: no file object is built. Entries are replaced, never modified in
        # place, so the opened file cannot grow while it is read: a short read is the end.
        fd = os.open(f"{self.root}/{key}", _READ_FLAGS)
        try:
            data = os.read(fd, _CHUNK)
            if len(data) < _CHUNK:
                return data
            parts = [data]
            while data:
                data = os.read(fd, _CHUNK * 16)
                parts.append(data)
            return b"".join(parts)
        finally:
            os.close(fd)

    def write(self, key: str, data: bytes) -> str:
        return self._write(self.path(key), key, data)

    def write_trusted(self, key: str, data: bytes | list[bytes]) -> str:
        """`write` for keys daglite built itself (skips validation).

        `data` may be a list of buffers, written one after the other without joining them.
        """
        return self._write(f"{self.root}/{key}", key, data)

    def _write(self, path: str, key: str, data: bytes | list[bytes]) -> str:
        folder = path.rpartition("/")[0]
        temp = _temp_name(path)
        try:
            if folder not in self._made:
                os.makedirs(folder, exist_ok=True)
                self._made.add(folder)
            try:
                fd = os.open(temp, _WRITE_FLAGS, 0o666)
            except FileNotFoundError:  # the folder was removed since: make it again
                os.makedirs(folder, exist_ok=True)
                fd = os.open(temp, _WRITE_FLAGS, 0o666)
            try:
                for part in data if isinstance(data, list) else (data,):
                    view = memoryview(part)
                    while view:
                        view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(temp, path)
        except OSError as exc:
            try:
                os.remove(temp)
            except OSError:
                pass
            raise StoreError(f"cannot write key {key!r} to store '{self.root}': {exc}") from exc
        return path

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def delete(self, key: str) -> bool:
        try:
            os.remove(self.path(key))
        except FileNotFoundError:
            return False
        return True


# -- factories (registered in core/pyproject.toml) ----------------------------------------


def file_store(url: str, options: dict[str, Any]) -> ByteStore:
    """Factory of the `file` scheme: a local directory (plain paths and `file://` URLs)."""
    if options:
        raise StoreError(
            f"the file store '{url}' takes no options, got {sorted(options)}; "
            "options are for remote stores (s3://..., ...)"
        )
    path = url[len("file://") :] if url.startswith("file://") else url
    return LocalStore(os.path.expanduser(path), url=url)


def memory_store(url: str, options: dict[str, Any]) -> ByteStore:
    """Factory of the `memory` scheme: fsspec's in-process memory filesystem (for tests).

    Every `memory://` store of a process shares fsspec's one memory filesystem; give each
    its own root (`memory://<name>`). Worker processes see their own, empty memory.
    """
    from fsspec.implementations.memory import MemoryFileSystem

    return ByteStore(MemoryFileSystem(**options), url, is_local=True, options=options)


# -- opening ------------------------------------------------------------------------------

_opened: dict[Any, ByteStore] = {}
_lock = threading.Lock()


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
            _opened[ident] = store
    return store


def _open_with_options(url: str, options: dict[str, Any]) -> ByteStore:
    return open_store(url, **options)


def _build(scheme: str, url: str, options: dict[str, Any]) -> ByteStore:
    try:
        factory = registry.load("store", scheme)
    except PluginError as exc:
        raise StoreError(f"cannot open store '{url}': {exc}") from exc.__cause__
    store = factory(url, options)
    if not isinstance(store, ByteStore):
        raise StoreError(
            f"the '{scheme}' store factory returned {type(store).__name__}, not a ByteStore"
        )
    return store


def forget_stores() -> None:
    """Drop every opened store (they are reopened on next use)."""
    with _lock:
        _opened.clear()
