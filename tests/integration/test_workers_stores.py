"""Worker processes (process and loky backends) caching and saving datasets.

S3 stores (daglite-s3, on moto) are not local: a worker writes to them itself, so what it
saved is readable in the worker at once and the coordinator applies no relayed write.
Local stores are relayed: the worker hands the bytes to the coordinator, which writes
them before the map returns.
"""

from __future__ import annotations

import json
import os

import pytest
from integration_tasks import autosaved
from integration_tasks import frame
from integration_tasks import save_and_look
from integration_tasks import save_then_fail
from integration_tasks import table

from daglite import load_dataset
from daglite import map_tasks
from daglite import session
from daglite.settings import DagliteSettings

pytest.importorskip("daglite_loky")

BACKENDS = ["process", "loky"]
SETTINGS = DagliteSettings(max_workers=2, processors=())  # quiet: no logging lines


def _kinds(events, kind: str) -> list:
    return [event for event in events if event.kind == kind]


@pytest.fixture
def relayed(monkeypatch) -> list[str]:
    """The keys of the relayed dataset writes the coordinator applies (the real ones)."""
    from daglite import datasets

    applied: list[str] = []
    real = datasets.apply_relayed_write

    def counting(store, key, *args, **kwargs):
        applied.append(key)
        return real(store, key, *args, **kwargs)

    monkeypatch.setattr(datasets, "apply_relayed_write", counting)
    return applied


@pytest.mark.parametrize("backend", BACKENDS)
def test_workers_cache_and_save_straight_to_s3(s3, relayed, backend):
    events: list = []
    stores = {"cache_store": f"{s3.prefix}/cache", "dataset_store": f"{s3.prefix}/data"}
    with session(backend=backend, settings=SETTINGS, plugins=[events.append], **stores):
        first = map_tasks(save_and_look, range(6))
        saved = map_tasks(autosaved, range(3))
        hits_before = len(_kinds(events, "CacheHit"))
        second = map_tasks(save_and_look, range(6))  # the workers read the S3 cache

    assert [item["x"] for item in first] == list(range(6))
    assert os.getpid() not in {item["pid"] for item in first + saved}, "ran in workers"
    assert all(item["visible"] for item in first), "written by the worker, not relayed"
    assert relayed == [], "the coordinator wrote nothing"
    assert s3.keys("data/items/") == [f"data/items/{x}.json" for x in range(6)]
    assert s3.keys("data/auto/") == [f"data/auto/{x}.json" for x in range(3)]
    assert json.loads(s3.read("data/items/4.json")) == {"x": 4, "square": 16}
    assert json.loads(s3.read("data/auto/2.json"))["x"] == 2
    written = _kinds(events, "DatasetSaved")
    assert len(written) == 9, "a cache hit does not run the body again"
    assert {event.store for event in written} == {f"{s3.prefix}/data"}
    assert s3.keys("cache/")[0] == "cache/.daglite-cache"  # the cache store's marker
    assert len(s3.keys("cache/")) == 7, s3.keys("cache/")  # and 6 entries
    assert second == first, "every value comes from the S3 cache"
    assert (hits_before, len(_kinds(events, "CacheHit"))) == (0, 6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_workers_relay_local_dataset_writes_and_none_is_lost(relayed, tmp_path, backend):
    events: list = []
    data = tmp_path / "data"
    missing: list[str] = []

    def check_saved(event) -> None:  # on the coordinator: the relayed bytes come first
        if event.kind == "DatasetSaved" and not (data / event.key).is_file():
            missing.append(event.key)

    with session(
        backend=backend,
        settings=SETTINGS,
        dataset_store=str(data),
        cache_store=str(tmp_path / "cache"),
        plugins=[events.append, check_saved],
    ):
        first = map_tasks(save_and_look, range(40))
        # written before the map returned, by the coordinator
        assert sorted(os.listdir(data / "items")) == sorted(f"{x}.json" for x in range(40))
        map_tasks(autosaved, range(25))  # the last map of the session

    assert os.getpid() not in {item["pid"] for item in first}
    expected = [f"items/{x}.json" for x in range(40)] + [f"auto/{x}.json" for x in range(25)]
    assert sorted(relayed) == sorted(expected), "every write went through the coordinator"
    assert sorted(os.listdir(data / "auto")) == sorted(f"{x}.json" for x in range(25))
    for x in (0, 17, 39):
        assert json.loads((data / "items" / f"{x}.json").read_text()) == {"x": x, "square": x * x}
    assert len(_kinds(events, "DatasetSaved")) == 65
    assert missing == [], "each DatasetSaved event found its data written"
    assert load_dataset("auto/24.json", store=str(data))["x"] == 24


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pause", [0.0, 0.25], ids=["batched", "streamed"])
def test_relayed_writes_of_failed_items_are_kept(relayed, tmp_path, backend, pause):
    """Writes made before an item fails still reach the store, also from slow batches."""
    data = tmp_path / "data"
    count = 6 if pause else 30
    with session(backend=backend, settings=SETTINGS, dataset_store=str(data)):
        results = map_tasks(save_then_fail, range(count), [pause] * count, return_exceptions=True)
    failed = [x for x, result in enumerate(results) if isinstance(result, Exception)]
    assert failed == [x for x in range(count) if x % 3 == 0]
    assert "item 3 fails after saving" in str(results[3])
    assert sorted(os.listdir(data / "partial")) == sorted(f"{x}.json" for x in range(count))
    assert len(relayed) == count


@pytest.mark.parametrize("backend", BACKENDS)
def test_arrow_tables_cached_and_saved_on_s3_from_workers(s3, backend):
    pa = pytest.importorskip("pyarrow")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("daglite_arrow")
    events: list = []
    stores = {"cache_store": f"{s3.prefix}/cache", "dataset_store": f"{s3.prefix}/data"}
    with session(backend=backend, settings=SETTINGS, plugins=[events.append], **stores):
        tables = map_tasks(table, [2, 3, 5])
        frames = map_tasks(frame, [1, 4])
        hits_before = len(_kinds(events, "CacheHit"))
        cached_tables = map_tasks(table, [2, 3, 5])  # the workers read the S3 cache
        cached_frames = map_tasks(frame, [1, 4])

    assert [t.num_rows for t in tables] == [2, 3, 5]
    assert all(isinstance(t, pa.Table) for t in tables)
    assert s3.keys("data/tables/") == [f"data/tables/{n}.parquet" for n in (2, 3, 5)]
    assert s3.read("data/tables/5.parquet")[:4] == b"PAR1"
    loaded = load_dataset("tables/5.parquet", pa.Table, store=f"{s3.prefix}/data")
    assert loaded.equals(tables[2])
    as_pandas = load_dataset("tables/3.parquet", pd.DataFrame, store=f"{s3.prefix}/data")
    assert as_pandas["name"].tolist() == ["row 0", "row 1", "row 2"]
    # the cache entries name the Arrow format daglite-arrow registered
    entries = [s3.read(key) for key in s3.keys("cache/") if not key.endswith(".daglite-cache")]
    assert len(entries) == 5
    assert sum(b"feather" in entry[:64] for entry in entries) == 5, [e[:40] for e in entries]

    assert all(a.equals(b) for a, b in zip(cached_tables, tables))
    for a, b in zip(cached_frames, frames):
        pd.testing.assert_frame_equal(a, b)
    assert (hits_before, len(_kinds(events, "CacheHit"))) == (0, 5)
