"""Opening byte stores by URL (`daglite.stores`): schemes, plugin factories, opened stores."""

from __future__ import annotations

import pytest

from daglite import StoreError
from daglite import registry
from daglite.localstore import LocalStore
from daglite.stores import ByteStore
from daglite.stores import open_store


def test_unknown_scheme_lists_installed_and_hints_plugin():
    if "s3" in registry.names("store"):
        pytest.skip("daglite-s3 is installed here (the core env has no plugin)")
    with pytest.raises(StoreError) as info:
        open_store("s3://bucket/prefix")
    message = str(info.value)
    assert "s3://bucket/prefix" in message
    assert "uv pip install ./plugins/daglite-s3" in message
    assert "file" in message and "memory" in message
    with pytest.raises(StoreError, match=r"unknown store 'gopher'; installed stores: .*file"):
        open_store("gopher://x")


def test_invalid_url_and_file_options():
    with pytest.raises(StoreError, match="non-empty URL or path string"):
        open_store("")
    with pytest.raises(StoreError, match="takes no options"):
        open_store("somewhere", auto_mkdir=True)


def test_opened_stores_are_cached_per_url_and_cwd(tmp_path, monkeypatch):
    a = open_store("rel/store")
    assert open_store("rel/store") is a
    assert a.root == str(tmp_path / "rel" / "store")
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    b = open_store("rel/store")
    assert b is not a and b.root == str(other / "rel" / "store")
    assert open_store(a) is a


def test_is_local_and_full_path(tmp_path):
    local = open_store(str(tmp_path))
    assert isinstance(local, LocalStore) and local.is_local
    assert local.full_path("a/b") == f"{tmp_path}/a/b"
    mem = open_store("memory://fp")
    assert mem.is_local
    assert mem.full_path("a/b") == "memory://fp/a/b"
    assert open_store("file://" + str(tmp_path)).root == str(tmp_path)


def test_a_plugin_only_supplies_an_fsspec_filesystem():
    """The documented plugin contract: a factory returning ByteStore(fs, url, is_local=False)."""
    from fsspec.implementations.memory import MemoryFileSystem

    made = []

    def factory(url, options):
        made.append((url, options))
        return ByteStore(MemoryFileSystem(), url.replace("fake://", "memory://"), is_local=False)

    with registry.override("store", "fake", factory):
        store = open_store("fake://bucket/p", region="x")
        assert open_store("fake://bucket/p", region="x") is store
        assert made == [("fake://bucket/p", {"region": "x"})]
        assert store.is_local is False
        store.write("k/v", b"data")
        assert store.read("k/v") == b"data"
        with pytest.raises(StoreError, match="leaves the store's root"):
            store.write("../k", b"data")


def test_factory_must_return_a_byte_store():
    with (
        registry.override("store", "broken", lambda url, options: object()),
        pytest.raises(StoreError, match="returned object, not a ByteStore"),
    ):
        open_store("broken://x")


def test_stores_pickle_as_their_url(tmp_path):
    import pickle

    local = open_store(str(tmp_path))
    assert pickle.loads(pickle.dumps(local)) is local
    mem = open_store("memory://pickled")
    assert pickle.loads(pickle.dumps(mem)) is mem


def test_redact_hides_secret_option_values():
    options = {
        "key": "AKIAEXAMPLE",
        "secret": "s3cr3t-value",
        "client_kwargs": {"token": "tok-123"},
    }
    text = "failed with AKIAEXAMPLE and s3cr3t-value and tok-123 at endpoint"
    from daglite.redaction import redact

    assert redact(text, options) == "failed with *** and *** and *** at endpoint"
    assert redact("region us-east-1", {"region": "us-east-1"}) == "region us-east-1"
