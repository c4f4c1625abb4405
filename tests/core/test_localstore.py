"""The `file` store: plain OS calls, atomic writes, and never a path outside its root."""

from __future__ import annotations

import os

import pytest

from daglite import StoreError
from daglite.stores import open_store


def test_local_write_failure_is_a_store_error_and_leaves_no_temp(tmp_path):
    store = open_store(str(tmp_path / "s"))
    store.write("dir", b"a file where a folder is wanted")
    with pytest.raises(StoreError, match="cannot write key 'dir/x'"):
        store.write("dir/x", b"x")
    assert store.list() == ["dir"]


def test_local_read_of_large_entries(tmp_path):
    store = open_store(str(tmp_path))
    big = os.urandom(300_000)
    store.write_trusted("ab/big", big)  # type: ignore[attr-defined]
    assert store.read_trusted("ab/big") == big  # type: ignore[attr-defined]
    assert store.read("ab/big") == big


def test_temporary_files_are_hidden_from_list(tmp_path):
    store = open_store(str(tmp_path))
    store.write("a", b"1")
    (tmp_path / ".a.tmp-1-2-3").write_bytes(b"half")
    assert store.list() == ["a"]


def test_local_read_failure_is_a_store_error(tmp_path):
    store = open_store(str(tmp_path))
    (tmp_path / "folder").mkdir()
    with pytest.raises(StoreError, match="cannot read key 'folder'.*IsADirectoryError"):
        store.read("folder")


def test_symlinks_cannot_lead_outside_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "inner").mkdir()
    (root / "ok").symlink_to(root / "inner", target_is_directory=True)
    store = open_store(str(root))
    for op in (
        lambda: store.read("link/secret.txt"),
        lambda: store.write("link/new.txt", b"x"),
        lambda: store.exists("link/secret.txt"),
        lambda: store.delete("link/secret.txt"),
    ):
        with pytest.raises(StoreError, match="a symbolic link takes it outside the store's root"):
            op()
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    store.write("ok/fine.txt", b"inside")  # a link that stays inside the root is fine
    assert (root / "inner" / "fine.txt").read_bytes() == b"inside"
