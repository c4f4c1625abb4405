"""Caching and dataset auto-save of tasks mapped on dask workers."""

from __future__ import annotations

import os

from daglite import load_dataset
from daglite import map_tasks
from daglite import session
from daglite import task


@task(cache=True)
def cached_square(x):
    return x * x, os.getpid()


@task(dataset="squares/{x}.json")
def saved_square(x):
    return x * x


def test_cache_written_on_workers_is_hit_by_the_next_session(dask_settings):
    first, second = [], []
    with session(settings=dask_settings, plugins=[first.append]):
        computed = map_tasks(cached_square, range(6))
    with session(settings=dask_settings, plugins=[second.append]):
        again = map_tasks(cached_square, range(6))
    assert again == computed  # the pids too: the values come from the cache
    assert [x for x, _ in computed] == [x * x for x in range(6)]
    assert len([e for e in first if e.kind == "CacheMissed"]) == 6
    hits = [e for e in second if e.kind == "CacheHit"]
    assert sorted(e.map_index for e in hits) == list(range(6))


def test_local_dataset_store_gets_the_workers_saves(dask_settings, tmp_path):
    events = []
    store = str(tmp_path / "datasets")
    with session(settings=dask_settings, dataset_store=store, plugins=[events.append]):
        assert map_tasks(saved_square, range(4)) == [0, 1, 4, 9]
    assert [load_dataset(f"squares/{x}.json", store=store) for x in range(4)] == [0, 1, 4, 9]
    saved = [e for e in events if e.kind == "DatasetSaved"]
    assert sorted(e.key for e in saved) == [f"squares/{x}.json" for x in range(4)]
