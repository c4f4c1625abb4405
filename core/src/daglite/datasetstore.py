"""`DatasetStore`: datasets (values in a format) under keys, over a byte store.

The functions users call (`save_dataset`, `load_dataset`) live in `daglite.datasets`;
this module is the storage layer they use: serialize with the resolved format, write
atomically through the byte store, read back, and report a missing key with the key and
the store's URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from daglite.bytestore import ByteStore
from daglite.bytestore import check_key
from daglite.errors import DatasetError
from daglite.localstore import LocalStore
from daglite.stores import StoreLayers
from daglite.stores import open_store

if TYPE_CHECKING:
    from daglite.formats import Format

_PICKLE_START = b"\x80"  # every pickle of protocol 2 and later starts with PROTO


class DatasetStore:
    """Datasets under keys, over a byte store.

    Args:
        store: Where datasets live: a path, a URL (`memory://...`, `s3://...`) or a
            `ByteStore`. Defaults to `.daglite/datasets`.
        **options: Options of the byte store (e.g. credentials of a remote store).
    """

    def __init__(self, store: str | ByteStore = ".daglite/datasets", **options: Any) -> None:
        self.bytes = open_store(store, **options)

    def __repr__(self) -> str:
        return f"<DatasetStore {self.bytes.url!r}>"

    def __reduce__(self) -> Any:
        return (DatasetStore, (self.bytes,))

    @property
    def url(self) -> str:
        """The store's URL (for local stores: the absolute root path)."""
        store = self.bytes
        return store.root if isinstance(store, LocalStore) else store.url

    @property
    def is_local(self) -> bool:
        """True when only this machine can reach the store (local files, memory)."""
        return self.bytes.is_local

    def config(self) -> str | dict[str, Any]:
        """What reopens this store in another process: its URL, or URL and options."""
        if self.bytes.options:
            return {"url": self.url, "options": dict(self.bytes.options)}
        return self.url

    def dumps(
        self, key: str, value: Any, *, format: str | None = None, options: dict[str, Any] | None
    ) -> tuple[bytes, Format]:
        """`value` serialized as it would be saved under `key`: `(data, format)`.

        Raises:
            StoreError: `key` is invalid (nothing is serialized or written).
            DatasetError: The format is unknown or cannot save this value.
        """
        from daglite.formats import resolve_format

        check_key(key, self.bytes.url)  # validate first (symlinks are checked when writing)
        fmt = resolve_format(key, format=format, value_type=type(value))
        try:
            data = fmt.dumps(value, dict(options or {}))
            return (data if isinstance(data, bytes) else bytes(data)), fmt
        except Exception as exc:
            raise DatasetError(
                f"cannot save dataset {key!r} to store '{self.url}' as {fmt.name}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def write(self, key: str, data: bytes) -> str:
        """Write serialized `data` under `key` (atomically); returns where it was stored."""
        return self.bytes.shown(self.bytes.write(key, data))

    def save(
        self,
        key: str,
        value: Any,
        *,
        format: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> str:
        """Save `value` under `key`; returns where it was stored (a path or URL).

        Raises:
            StoreError: `key` is invalid (nothing is written).
            DatasetError: The format is unknown or cannot save this value.
        """
        data, _ = self.dumps(key, value, format=format, options=options)
        return self.write(key, data)

    def load(
        self,
        key: str,
        return_type: Any = None,
        *,
        format: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Any:
        """The value saved under `key`.

        Raises:
            StoreError: `key` is invalid.
            DatasetError: Nothing is saved under `key`, or it cannot be read in the format.
        """
        value, _ = self._load(key, return_type, format, options)
        return value

    def _load(
        self, key: str, return_type: Any, format: str | None, options: dict[str, Any] | None
    ) -> tuple[Any, str]:
        from daglite.formats import get_format
        from daglite.formats import resolve_format

        try:
            data = self.bytes.read(key)
        except FileNotFoundError:
            raise DatasetError(
                f"dataset {key!r} not found in store '{self.url}'" + _nearby(self, key)
            ) from None
        try:
            fmt = resolve_format(key, format=format, value_type=return_type)
        except DatasetError:
            if format is not None or not data.startswith(_PICKLE_START):
                raise
            fmt = get_format("pickle")  # an extensionless key saved by type: a pickle
        try:
            return fmt.loads(data, return_type, dict(options or {})), fmt.name
        except Exception as exc:
            raise DatasetError(
                f"cannot load dataset {key!r} from store '{self.url}' as {fmt.name}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def exists(self, key: str) -> bool:
        """Whether a dataset is saved under `key`."""
        return self.bytes.exists(key)

    def delete(self, key: str) -> bool:
        """Remove the dataset under `key`; returns whether it existed."""
        return self.bytes.delete(key)

    def list(self, prefix: str = "") -> list[str]:
        """The keys of every dataset under `prefix`, sorted."""
        return self.bytes.list(prefix)


def _nearby(store: DatasetStore, key: str) -> str:
    folder = key.rpartition("/")[0]
    try:
        keys = store.list(folder)[:5]
    except Exception:
        return ""
    return f" (keys there: {', '.join(keys)})" if keys else " (the store has nothing there)"


_dataset_stores = StoreLayers(DatasetStore, "dataset")


def open_dataset_store(spec: Any) -> DatasetStore:
    """The `DatasetStore` for `spec` (a path, URL, `{"url", "options"}`, store object).

    Paths and URLs are opened once (relative paths once per working directory); a
    `DatasetStore` is returned as is.

    Raises:
        StoreError: The URL's scheme has no installed store.
        TypeError: `spec` is none of the above.
    """
    if isinstance(spec, dict):
        return DatasetStore(spec["url"], **spec.get("options", {}))
    return _dataset_stores.open(spec)
