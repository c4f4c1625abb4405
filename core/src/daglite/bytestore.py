"""`ByteStore`: bytes under checked keys below a root, on any fsspec filesystem.

Keys are relative, `/`-separated paths. They are validated before anything touches the
filesystem (`check_key`): no absolute path, no `..` that leaves the root, no empty
segment, no backslash or NUL. Writes are atomic: local files are written under a
temporary name and renamed into place (`daglite.localstore`), so a reader sees the old
entry or the new one, never half of one.

A store plugin's factory returns a `ByteStore` over its fsspec filesystem (how stores are
found and opened by URL: `daglite.stores`)::

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

from typing import Any
from typing import ClassVar

from daglite.errors import StoreError
from daglite.redaction import redact
from daglite.redaction import redact_url
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
        return (_reopen, (self.url, self.options))

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


def _reopen(url: str, options: dict[str, Any]) -> ByteStore:
    """A pickled store, reopened by URL (once per URL and options) where it is unpickled."""
    from daglite.stores import open_store  # the opener builds stores: it imports this module

    return open_store(url, **options)
