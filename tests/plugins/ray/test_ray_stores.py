"""Caching and datasets of tasks mapped on Ray workers: local stores relayed, S3 direct."""

from __future__ import annotations

import json
import os

import pytest
import ray_tasks as t

from daglite import DagliteSettings
from daglite import load_dataset
from daglite import map_tasks
from daglite import session

pytestmark = pytest.mark.timeout(300)

QUIET = DagliteSettings(backend="ray", processors=())


@pytest.fixture
def relayed(monkeypatch):
    """The keys of the relayed dataset writes the coordinator applies (the real ones)."""
    from daglite import datasets

    applied = []
    real = datasets.apply_relayed_write

    def counting(store, key, *args, **kwargs):
        applied.append(key)
        return real(store, key, *args, **kwargs)

    monkeypatch.setattr(datasets, "apply_relayed_write", counting)
    return applied


def test_cache_written_on_workers_is_hit_by_the_next_session(runs_on, tmp_path, monkeypatch):
    runs_on()
    monkeypatch.chdir(tmp_path)  # the default cache store, .daglite/cache, is relative
    first, second = [], []
    with session(settings=QUIET, plugins=[first.append]):
        computed = map_tasks(t.cached, range(6))
    with session(settings=QUIET, plugins=[second.append]):
        again = map_tasks(t.cached, range(6))
    assert again == computed  # the pids too: the values come from the cache
    assert [x for x, _ in computed] == [x * x for x in range(6)]
    assert os.getpid() not in {pid for _, pid in computed}
    assert len([e for e in first if e.kind == "CacheMissed"]) == 6
    assert sorted(e.map_index for e in second if e.kind == "CacheHit") == list(range(6))
    assert (tmp_path / ".daglite").is_dir()  # under the coordinator's working directory


def test_local_dataset_writes_are_relayed_to_the_coordinator(runs_on, tmp_path, relayed):
    runs_on()
    events = []
    store = str(tmp_path / "data")
    with session(settings=QUIET, dataset_store=store, plugins=[events.append]):
        looked = map_tasks(t.save_and_look, range(5))
        assert map_tasks(t.autosaved, range(3))[2]["x"] == 2
    assert [x for x, _, _ in looked] == list(range(5))
    assert os.getpid() not in {pid for _, pid, _ in looked}
    # (whether a worker sees its own save at once is a race: slow batches stream writes)
    expected = [f"items/{x}.json" for x in range(5)] + [f"auto/{x}.json" for x in range(3)]
    assert sorted(relayed) == sorted(expected), "every write went through the coordinator"
    assert load_dataset("auto/1.json", store=store)["x"] == 1
    assert load_dataset("items/4.json", store=store) == {"x": 4}
    assert len([e for e in events if e.kind == "DatasetSaved"]) == 8


def test_workers_write_straight_to_s3(runs_on, s3, relayed):
    runs_on()
    import fsspec

    events = []
    stores = {"cache_store": f"{s3}/cache", "dataset_store": f"{s3}/data"}
    with session(settings=QUIET, plugins=[events.append], **stores):
        looked = map_tasks(t.save_and_look, range(4))
        map_tasks(t.autosaved, range(3))
        computed = map_tasks(t.cached, range(3))
        again = map_tasks(t.cached, range(3))
    assert os.getpid() not in {pid for _, pid, _ in looked}
    assert all(visible for _, _, visible in looked), "written by the worker itself"
    assert relayed == [], "the coordinator wrote nothing"
    fs = fsspec.filesystem(
        "s3", endpoint_url=os.environ["DAGLITE_S3_ENDPOINT_URL"], skip_instance_cache=True
    )
    root = s3.removeprefix("s3://")
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{root}/data/auto")) == [
        f"{x}.json" for x in range(3)
    ]
    assert json.loads(fs.cat(f"{root}/data/items/3.json")) == {"x": 3}
    assert len(fs.ls(f"{root}/cache")) >= 1
    assert again == computed
    assert len([e for e in events if e.kind == "CacheHit"]) == 3
