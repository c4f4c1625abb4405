"""The `file` store: a directory on this machine, read and written with plain OS calls.

Every operation uses plain OS calls (fsspec's `LocalFileSystem` is only built for listing
under a prefix), since a cache hit must cost microseconds. Writes go to a temporary file
renamed into place, and never through a symbolic link that leaves the root. The first
write into a folder (per process and store) sweeps the temporaries that killed writers
left there more than `TEMP_MAX_AGE` seconds ago; `temporaries()` finds them all.
"""

from __future__ import annotations

import os
import time
from typing import Any

from daglite.bytestore import ByteStore
from daglite.errors import StoreError
from daglite.stores import open_store
from daglite.temporaries import TEMP_MARK
from daglite.temporaries import TEMP_MAX_AGE
from daglite.temporaries import stale
from daglite.temporaries import temp_name
from daglite.temporaries import temp_writer

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
        self._real_root: str | None = None

    @property
    def fs(self) -> Any:
        if self._fs is None:
            from fsspec.implementations.local import LocalFileSystem

            self._fs = LocalFileSystem()
        return self._fs

    def __reduce__(self) -> Any:
        return (open_store, (self.root,))

    def path(self, key: str) -> str:
        """The full path of `key`, validated, and not leaving the root through a symlink.

        Raises:
            StoreError: `key` is invalid, or resolves outside the root.
        """
        path = super().path(key)
        real_root = self._real_root
        if real_root is None:
            real_root = self._real_root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if not real.startswith(real_root + os.sep) and real != real_root:
            raise StoreError(
                f"invalid store key {key!r} for store '{self.root}': a symbolic link takes it "
                "outside the store's root; nothing was written"
            )
        return path

    def read(self, key: str) -> bytes:
        try:
            with open(self.path(key), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self.error("read", key, exc) from None

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
        """`write` for keys daglite built itself (skips the key's syntax check).

        `data` may be a list of buffers, written one after the other without joining them.
        Like every write it refuses a folder that a symbolic link takes outside the root.
        """
        path = f"{self.root}/{key}"
        folder = path.rpartition("/")[0]
        if os.path.islink(folder):  # one lstat: writes are the cache's slow path anyway
            self.path(key)  # raises if the link leaves the root
        return self._write(path, key, data)

    def _write(self, path: str, key: str, data: bytes | list[bytes]) -> str:
        folder = path.rpartition("/")[0]
        temp = temp_name(path)
        try:
            if folder not in self._made:
                os.makedirs(folder, exist_ok=True)
                self._sweep(folder)
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
            raise StoreError(
                f"cannot write key {key!r} in store '{self.root}': {type(exc).__name__}: {exc}"
            ) from exc
        return path

    def _sweep(self, folder: str) -> None:
        """Remove temporaries in `folder` that nothing has written to for `TEMP_MAX_AGE`."""
        now = time.time()
        try:
            with os.scandir(folder) as found:
                for entry in found:
                    pid = temp_writer(entry.name) if entry.name[0] == "." else None
                    if pid is None or not entry.is_file(follow_symlinks=False):
                        continue
                    if stale(pid, entry.stat(follow_symlinks=False).st_mtime, now, TEMP_MAX_AGE):
                        os.remove(entry.path)
        except OSError:  # a concurrent sweep got there first, or the folder is unreadable
            pass

    def head(self, key: str, size: int) -> bytes:
        fd = os.open(self.path(key), _READ_FLAGS)
        try:
            return os.read(fd, size)
        finally:
            os.close(fd)

    def size(self, key: str) -> int:
        return os.stat(self.path(key)).st_size

    def _files(self) -> list[tuple[str, os.DirEntry[str]]]:
        """`(key, entry)` of every file below the root (symbolic links are not followed)."""
        found = []
        stack = [(self.root, "")]
        while stack:
            folder, prefix = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                key = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, key + "/"))
                elif entry.is_file(follow_symlinks=False):
                    found.append((key, entry))
        return found

    def list(self, prefix: str = "") -> list[str]:
        if prefix:
            return super().list(prefix)
        keys = [key for key, _ in self._files()]
        return sorted(k for k in keys if TEMP_MARK not in k.rsplit("/", 1)[-1])

    def temporaries(self, max_age: float | None = None) -> list[str]:
        now = time.time()
        found = []
        for key, entry in self._files():
            pid = temp_writer(entry.name)
            if pid is not None and stale(pid, entry.stat().st_mtime, now, max_age):
                found.append(key)
        return sorted(found)

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def delete(self, key: str) -> bool:
        try:
            os.remove(self.path(key))
        except FileNotFoundError:
            return False
        return True

    def delete_many(self, keys: list[str]) -> int:
        return sum(self.delete(key) for key in keys)


def file_store(url: str, options: dict[str, Any]) -> ByteStore:
    """Factory of the `file` scheme: a local directory (plain paths and `file://` URLs)."""
    if options:
        raise StoreError(
            f"the file store '{url}' takes no options, got {sorted(options)}; "
            "options are for remote stores (s3://..., ...)"
        )
    path = url[len("file://") :] if url.startswith("file://") else url
    return LocalStore(os.path.expanduser(path), url=url)
