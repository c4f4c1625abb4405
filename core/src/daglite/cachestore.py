"""`CacheStore`: cached task results (entries) under keys, over a byte store.

An entry is one file (or object) holding a small binary header and the serialized value::

    b"DGLC" | version u8 | created f64 | payload size u64 | crc32 u32 | format u8+name | payload

The value is pickled, unless an installed format claims its type in its `cache_types`
(`daglite.formats.cache_format`; e.g. `daglite-arrow` stores tables as Arrow IPC). The
entry names the format, and reading an entry whose format is not installed is a miss.
The name is padded with NUL bytes so that the payload starts 8-byte aligned (formats
that read columns in place, like Arrow's, need it).

It is written atomically by the byte store, so concurrent writers (threads or processes)
never leave a torn entry: readers see one complete entry or another. On read, every part
is checked; an empty, truncated or garbled entry (header or data) is a miss whose reason
starts with `"corrupt"` (reported in the `CacheMissed` event and on the `daglite` logger),
never a crash. The next successful call overwrites it.

The root of a store holds a marker file (`MARKER`, written with the first entry). Only
files named like entries (`<k[:2]>/<k>`, `k` a key daglite makes or a file starting with
the header) are entries: `keys()`, `info()` and `clear()` ignore everything else, and
`clear()` refuses a folder that is neither marked nor holds entries unless forced.

The per-call side (which store, which key, lookup and save around a call) is
`daglite.caching.CachePlan`; keys are made in `daglite.taskkeys`.
"""

from __future__ import annotations

import logging
import pickle
import re
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

from daglite.bytestore import ByteStore
from daglite.errors import StoreError
from daglite.formats import cache_format
from daglite.formats import get_format
from daglite.localstore import LocalStore
from daglite.stores import StoreLayers
from daglite.stores import open_store

log = logging.getLogger("daglite")

MAGIC = b"DGLC"
#: The file at a cache store's root that says it is one (`daglite cache clear` checks it).
MARKER = ".daglite-cache"
MARKER_TEXT = b"daglite cache store: entries are <k[:2]>/<k> files starting with DGLC\n"
_DIGEST = re.compile(r"[0-9a-f]{40}")
VERSION = 1
_HEADER = struct.Struct(">4sBdQIB")  # magic, version, created, size, crc32, len(format)


class CacheStore:
    """Cached task results under keys, over a byte store.

    Args:
        store: Where entries live: a path, a URL (`memory://...`, `s3://...`) or a
            `ByteStore`. Defaults to `.daglite/cache`.
        ttl: Time-to-live of entries in seconds; when set it overrides the tasks'
            `cache_ttl`. `None` keeps entries until they are overwritten or cleared.
        clock: Returns the current time in seconds (`time.time` by default); inject one to
            test expiry without waiting.
        **options: Options of the byte store (e.g. credentials of a remote store).
    """

    def __init__(
        self,
        store: str | ByteStore = ".daglite/cache",
        *,
        ttl: float | None = None,
        clock: Callable[[], float] | None = None,
        **options: Any,
    ) -> None:
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))):
            raise ValueError(f"ttl must be a number of seconds or None, not {ttl!r}")
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be > 0 seconds, not {ttl!r}")
        self.bytes = open_store(store, **options)
        self.ttl = ttl
        self.clock = clock or time.time
        self._local = isinstance(self.bytes, LocalStore)
        self._marked = False
        # Local stores skip key validation on the hot path: entry keys are built here.
        self._read: Callable[[str], bytes] = (
            self.bytes.read_trusted if isinstance(self.bytes, LocalStore) else self.bytes.read
        )
        self._write: Callable[[str, Any], Any] = (
            self.bytes.write_trusted if isinstance(self.bytes, LocalStore) else self.bytes.write
        )

    def __repr__(self) -> str:
        return f"<CacheStore {self.bytes.url!r} ttl={self.ttl}>"

    def __reduce__(self) -> Any:
        clock = None if self.clock is time.time else self.clock
        return (_rebuild, (self.bytes, self.ttl, clock))

    @staticmethod
    def entry_key(key: str) -> str:
        """The byte-store key of cache entry `key` (entries are spread over 256 folders)."""
        return f"{key[:2]}/{key}"

    def get(self, key: str, ttl: float | None = None) -> tuple[bool, Any, str]:
        """Look `key` up: `(found, value, reason)`; `reason` says why nothing was found.

        Reasons: `"absent"`, `"expired"`, `"corrupt: ..."` (empty, truncated, bad header,
        checksum mismatch, undecodable value) and `"unreadable: ..."` (the store failed).
        """
        try:
            data = self._read(self.entry_key(key))
        except FileNotFoundError:
            return False, None, "absent"
        except Exception as exc:
            return self._bad(key, f"unreadable: {type(exc).__name__}: {exc}")
        if len(data) < _HEADER.size:
            what = "empty entry" if not data else f"truncated header ({len(data)} bytes)"
            return self._bad(key, f"corrupt: {what}")
        magic, version, created, size, crc, flen = _HEADER.unpack_from(data)
        start = _HEADER.size + flen
        fmt = data[_HEADER.size : start].rstrip(b"\0")
        if magic != MAGIC or version != VERSION or created != created or not fmt.isascii():
            return self._bad(key, "corrupt: bad header")
        decoder = None
        if fmt != b"pickle":  # written with a plugin's format (or a garbled name)
            try:
                decoder = get_format(fmt.decode("ascii"))
            except Exception as exc:
                return self._bad(key, f"corrupt: bad header ({exc})")
        if len(data) - start != size:
            return self._bad(key, f"corrupt: truncated data ({len(data) - start} of {size} bytes)")
        payload = memoryview(data)[start:]
        if zlib.crc32(payload) != crc:
            return self._bad(key, "corrupt: checksum mismatch")
        ttl = self.ttl if self.ttl is not None else ttl
        if ttl is not None and self.clock() - created > ttl:
            return False, None, "expired"
        if decoder is None:
            try:
                return True, pickle.loads(payload), ""
            except Exception as exc:
                return self._bad(key, f"corrupt: cannot unpickle ({type(exc).__name__}: {exc})")
        try:
            return True, decoder.loads(payload, None, {}), ""  # type: ignore[arg-type]
        except Exception as exc:
            return self._bad(
                key, f"corrupt: cannot load as {decoder.name} ({type(exc).__name__}: {exc})"
            )

    def _bad(self, key: str, reason: str) -> tuple[bool, Any, str]:
        log.warning("cache entry %s in %s is a miss: %s", key, self.bytes.url, reason)
        return False, None, reason

    def put(self, key: str, value: Any) -> None:
        """Store `value` under `key` (atomically: readers never see a partial entry).

        The value is pickled unless an installed format claims its type for the cache.

        Raises:
            TypeError: `value` cannot be pickled, even by cloudpickle.
            StoreError: The byte store refused the write.
        """
        payload: Any = None
        name = b"pickle"
        fmt = cache_format(type(value))
        if fmt is not None:
            try:
                payload = fmt.dumps(value, dict(getattr(fmt, "cache_options", {})))
                name = fmt.name.encode("ascii")
            except Exception as exc:  # e.g. a column the format cannot hold: pickle it
                log.debug("cache format %s cannot save %s: %s", fmt.name, type(value), exc)
        if payload is None:
            name = b"pickle"
            try:
                payload = pickle.dumps(value, protocol=5)
            except (pickle.PicklingError, TypeError, AttributeError):
                import cloudpickle  # lambdas and local classes: pickled by value

                payload = cloudpickle.dumps(value, protocol=5)
        name += b"\0" * (-(_HEADER.size + len(name)) % 8)  # the payload starts 8-byte aligned
        header = _HEADER.pack(
            MAGIC, VERSION, self.clock(), len(payload), zlib.crc32(payload), len(name)
        )
        if not self._marked:
            self._mark()
        if self._local:  # no copy of a large payload just to prepend the header
            self._write(self.entry_key(key), [header + name, payload])
        else:
            self._write(self.entry_key(key), b"".join((header, name, payload)))

    def delete(self, key: str) -> bool:
        """Remove entry `key`; returns whether it existed."""
        return self.bytes.delete(self.entry_key(key))

    def _mark(self) -> None:
        """Write the store's marker (once per store object): the root is a daglite cache."""
        try:
            if not self.bytes.exists(MARKER):
                self.bytes.write(MARKER, MARKER_TEXT)
        finally:
            self._marked = True

    def _entries(self) -> list[str]:
        """The byte-store keys of the entries: `<k[:2]>/<k>` files that are daglite's.

        A file is an entry when its name is a key daglite makes (40 hex digits) or when it
        starts with an entry header; nothing else in the store's folder is touched.
        """
        found = []
        for key in self.bytes.list():
            folder, _, name = key.partition("/")
            if not folder or name[:2] != folder or "/" in name:
                continue
            if _DIGEST.fullmatch(name):
                found.append(key)
                continue
            try:
                head = self.bytes.head(key, len(MAGIC))
            except Exception:
                continue
            if head == MAGIC:
                found.append(key)
        return found

    def keys(self) -> list[str]:
        """The keys of every entry, sorted (other files in the store are not entries)."""
        return [k.rsplit("/", 1)[-1] for k in self._entries()]

    def is_store(self) -> bool:
        """Whether the store is a daglite cache, or empty.

        It is one when it has the marker written with its first entry, or entries of a
        daglite from before the marker (the marker is added then).
        """
        if self.bytes.exists(MARKER):
            return True
        if self._entries():
            self._mark()
            return True
        return not self.bytes.list() and not self.bytes.temporaries(0)

    def clear(self, older_than: float | None = None, *, force: bool = False) -> int:
        """Remove entries; returns how many were removed.

        Only entries are removed: any other file in the store's folder stays. Temporary
        files of writers that died (`sweep()`) are removed too.

        Args:
            older_than: Only remove entries written more than this many seconds ago (by
                `clock`); unreadable or corrupt entries are removed too. `None` removes all.
            force: Clear even a store that is not recognised as a daglite cache store.

        Raises:
            StoreError: The store is not a daglite cache store (and `force` is not given).
        """
        if not force and not self.is_store():
            raise StoreError(
                f"'{self.bytes.safe_url}' is not a daglite cache store (it has no "
                f"{MARKER} marker and no cache entries, but other files); nothing was "
                "removed. Check the path; if it is a cache store, clear it with force=True "
                "(`daglite cache clear --force`): only cache entries are ever removed"
            )
        keys = self._entries()
        if older_than is not None:
            cutoff = self.clock() - older_than
            keys = [key for key in keys if self._written(key, default=-1.0) < cutoff]
        removed = self.bytes.delete_many(keys)
        self.sweep()
        return removed

    def sweep(self) -> int:
        """Remove the temporary files of writes that never finished; returns how many.

        Those of writers that are no longer running on this machine, and those nothing has
        written to for `daglite.temporaries.TEMP_MAX_AGE` seconds. (Writers also sweep the
        latter from the folders they write into.)
        """
        return self.bytes.delete_many(self.bytes.temporaries())

    def info(self) -> dict[str, Any]:
        """Facts about the store: its URL (without secrets), entries, bytes, age range."""
        keys = self._entries()
        sizes, times = 0, []
        for key in keys:
            try:
                sizes += self.bytes.size(key)
                written = _written_at(self.bytes.head(key, _HEADER.size))
            except Exception:
                continue
            if written is not None:
                times.append(written)
        facts: dict[str, Any] = {"store": self.bytes.safe_url, "entries": len(keys)}
        facts["bytes"] = sizes
        if times:
            now = self.clock()
            facts["newest"] = f"{now - max(times):.0f} s ago"
            facts["oldest"] = f"{now - min(times):.0f} s ago"
        if self.ttl is not None:
            facts["ttl"] = f"{self.ttl:g} s"
        facts["temporaries"] = len(self.bytes.temporaries(0))
        if not keys and not self.bytes.exists(MARKER) and self.bytes.list():
            facts["note"] = f"not a daglite cache store (no {MARKER} marker, no entries)"
        return facts

    def _written(self, key: str, default: float) -> float:
        try:
            written = _written_at(self.bytes.head(key, _HEADER.size))
        except Exception:
            return default
        return default if written is None else written


def _written_at(data: bytes) -> float | None:
    """When the entry in `data` was written, or `None` if its header is not valid."""
    if len(data) < _HEADER.size:
        return None
    magic, version, created, *_ = _HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION or created != created:
        return None
    return created


def _rebuild(store: ByteStore, ttl: float | None, clock: Any) -> CacheStore:
    return CacheStore(store, ttl=ttl, clock=clock)


_cache_stores = StoreLayers(CacheStore, "cache")


def open_cache_store(spec: Any) -> CacheStore:
    """The `CacheStore` for `spec` (a path, URL, `ByteStore` or `CacheStore`).

    Paths and URLs are opened once (relative paths once per working directory); a
    `CacheStore` is returned as is.

    Raises:
        StoreError: The URL's scheme has no installed store.
        TypeError: `spec` is none of the above.
    """
    return _cache_stores.open(spec)
