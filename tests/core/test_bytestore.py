"""`ByteStore` (`daglite.bytestore`): schemes, key checks, atomic writes, listing, errors."""

from __future__ import annotations

import threading

import pytest

from daglite import StoreError
from daglite.bytestore import ByteStore
from daglite.bytestore import check_key
from daglite.bytestore import scheme_of
from daglite.stores import open_store
from daglite.testing import memory_store


@pytest.fixture(params=["file", "memory"])
def store(request, tmp_path):
    if request.param == "file":
        return open_store(str(tmp_path / "root"))
    return memory_store()


def test_scheme_of_urls_and_plain_paths():
    assert scheme_of("memory://x") == "memory"
    assert scheme_of("s3://bucket/p") == "s3"
    assert scheme_of("file:///tmp/x") == "file"
    assert scheme_of(".daglite/cache") == "file"
    assert scheme_of("/abs/path") == "file"
    assert scheme_of("C://weird") == "file"  # a drive letter, not a scheme


def test_round_trip_list_exists_delete(store):
    assert store.list() == []
    store.write("a/b/c.bin", b"one")
    store.write("top.txt", b"two")
    assert store.read("a/b/c.bin") == b"one"
    assert store.exists("top.txt") and not store.exists("nope")
    assert store.list() == ["a/b/c.bin", "top.txt"]
    assert store.list("a") == ["a/b/c.bin"]
    assert store.list("missing") == []
    assert store.delete("top.txt") is True
    assert store.delete("top.txt") is False
    with pytest.raises(FileNotFoundError):
        store.read("top.txt")


def test_overwrite_replaces(store):
    store.write("k", b"old" * 1000)
    store.write("k", b"new")
    assert store.read("k") == b"new"


BAD_KEYS = [
    ("", "it is empty"),
    ("/etc/passwd", "it is absolute"),
    ("C:/x", "it is absolute"),
    ("../escape", "leaves the store's root"),
    ("a/../../escape", "leaves the store's root"),
    ("a//b", "empty segment"),
    ("a/", "empty segment"),
    ("a\\..\\b", "backslash or NUL"),
    ("a\x00b", "backslash or NUL"),
    (".", "names the store's root itself"),
]


@pytest.mark.parametrize(("key", "problem"), BAD_KEYS)
def test_bad_keys_are_rejected_and_nothing_is_written(store, key, problem):
    for op in (lambda: store.write(key, b"x"), lambda: store.read(key)):
        with pytest.raises(StoreError) as info:
            op()
        assert problem in str(info.value)
        assert repr(key) in str(info.value)
        assert store.url in str(info.value)
    assert store.list() == []


def test_traversal_never_touches_outside_the_root(tmp_path):
    root = tmp_path / "inner" / "root"
    store = open_store(str(root))
    outside = tmp_path / "inner" / "secret.txt"
    outside.parent.mkdir()
    outside.write_bytes(b"secret")
    with pytest.raises(StoreError, match="leaves the store's root"):
        store.read("../secret.txt")
    with pytest.raises(StoreError, match="leaves the store's root"):
        store.write("x/../../secret.txt", b"overwritten")
    assert outside.read_bytes() == b"secret"
    assert not root.exists()


def test_inner_dotdot_is_normalized():
    assert check_key("a/./b/../c", "root") == "a/c"
    with pytest.raises(StoreError, match="key must be a string"):
        check_key(3, "root")


def test_non_string_key_is_rejected(store):
    with pytest.raises(StoreError, match="key must be a string, not int"):
        store.write(5, b"x")  # type: ignore[arg-type]


def test_rename_writes_go_through_a_temporary_name():
    from fsspec.implementations.memory import MemoryFileSystem

    store = ByteStore(MemoryFileSystem(), "memory://renamed", rename_writes=True)
    store.write("a/b", b"payload")
    assert store.read("a/b") == b"payload"
    assert store.list() == ["a/b"]


def test_concurrent_thread_writers_never_tear(store):
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    stop = threading.Event()
    seen = set()
    errors = []

    def writer(data):
        for _ in range(15):
            store.write("shared/key", data)

    def reader():
        while not stop.is_set():
            try:
                data = store.read("shared/key")
            except FileNotFoundError:
                continue
            if data not in payloads:
                errors.append(len(data))
            seen.add(data[:1])

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert errors == []
    assert store.read("shared/key") in payloads
    assert store.list() == ["shared/key"]


class _Broken(ByteStore):
    """A store whose filesystem fails the way a remote one can; `explain` says what to check."""

    def explain(self, exc):
        if "bucket" in str(exc):
            return "create the bucket, or fix the URL"
        return "check the network" if isinstance(exc, ConnectionError) else ""


class _FailingFS:
    def __init__(self, exc):
        self.exc = exc

    @classmethod
    def _strip_protocol(cls, url):
        return url.split("://", 1)[1]

    def _fail(self, *args, **kwargs):
        raise self.exc

    cat_file = pipe_file = isfile = rm_file = find = _fail


def test_store_errors_name_key_url_and_hint_without_secrets():
    secret = "very-secret-value"
    store = _Broken(
        _FailingFS(ConnectionError(f"boom using {secret}")),
        "remote://user:pw@bucket/p",
        is_local=False,
        options={"secret": secret},
    )
    for op, call in [
        ("read", lambda: store.read("k")),
        ("write", lambda: store.write("k", b"x")),
        ("check", lambda: store.exists("k")),
        ("delete", lambda: store.delete("k")),
        ("list", lambda: store.list()),
    ]:
        with pytest.raises(StoreError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"cannot {op} key")
        # the URL's credentials were taken out of it when the store was built
        assert "store 'remote://bucket/p'" in message and "check the network" in message
        assert secret not in message and "pw" not in message and "user" not in message


def test_missing_bucket_is_a_store_error_not_a_missing_key():
    store = _Broken(_FailingFS(FileNotFoundError("The specified bucket does not exist")), "x://b")
    with pytest.raises(StoreError, match="create the bucket"):
        store.read("k")
    with pytest.raises(StoreError, match="create the bucket"):
        store.list()
    plain = _Broken(_FailingFS(FileNotFoundError("k")), "x://b")
    with pytest.raises(FileNotFoundError, match="no key 'k' in store 'x://b'"):
        plain.read("k")
    assert plain.list() == []
    assert plain.delete("k") is False


def test_delete_many(store):
    for key in ("a/1", "a/2", "b"):
        store.write(key, b"x")
    assert store.delete_many([]) == 0
    assert store.delete_many(["a/1", "b"]) == 2
    assert store.list() == ["a/2"]


def test_the_byte_store_is_importable_from_daglite_stores_and_the_plugin_api():
    from daglite import bytestore
    from daglite import plugin
    from daglite import stores

    assert stores.ByteStore is bytestore.ByteStore is plugin.ByteStore
    assert stores.check_key is bytestore.check_key
    assert stores.scheme_of is bytestore.scheme_of
