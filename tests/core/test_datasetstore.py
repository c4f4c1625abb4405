"""`DatasetStore`: datasets under keys over a byte store, and how a store is named."""

from __future__ import annotations

import pickle

import pytest

from daglite.datasets import DatasetStore
from daglite.datasets import open_dataset_store


def test_dataset_store_api_and_specs(tmp_path):
    store = DatasetStore(str(tmp_path))
    store.save("a.json", 1)
    assert store.exists("a.json") and store.list() == ["a.json"]
    assert store.delete("a.json") and not store.exists("a.json")
    assert store.is_local and store.url == str(tmp_path)
    assert pickle.loads(pickle.dumps(store)).url == store.url
    assert open_dataset_store(store) is store
    with pytest.raises(TypeError, match="a dataset store is a path, a URL"):
        open_dataset_store(3.5)
