"""Datasets: save/load, stores, formats, placeholders, auto-save, hooks, events, relay."""

from __future__ import annotations

import json
import pickle

import pytest

import daglite
from daglite import DatasetError
from daglite import StoreError
from daglite import load_dataset
from daglite import map_tasks
from daglite import save_dataset
from daglite import session
from daglite import task
from daglite.context import Runtime
from daglite.context import current_runtime
from daglite.datasets import DatasetStore
from daglite.datasets import apply_relayed_write
from daglite.datasets import open_dataset_store
from daglite.settings import get_global_settings
from daglite.testing import memory_dataset_store


def test_round_trips_by_extension_and_type(tmp_path):
    store = str(tmp_path / "ds")
    path = save_dataset("a/doc.json", {"x": [1, 2]}, store=store)
    assert path == str(tmp_path / "ds" / "a" / "doc.json")
    assert json.loads((tmp_path / "ds" / "a" / "doc.json").read_text()) == {"x": [1, 2]}
    save_dataset("notes.txt", "hello", store=store)
    assert (tmp_path / "ds" / "notes.txt").read_text() == "hello"
    save_dataset("blob", b"\x00\x01", store=store)
    save_dataset("obj", {"tuple": (1, 2), "set": {3}}, store=store)
    assert load_dataset("a/doc.json", store=store) == {"x": [1, 2]}
    assert load_dataset("notes.txt", store=store) == "hello"
    assert load_dataset("blob", bytes, store=store) == b"\x00\x01"
    assert load_dataset("obj", store=store) == {"tuple": (1, 2), "set": {3}}
    assert load_dataset("obj", format="pickle", store=store) == {"tuple": (1, 2), "set": {3}}


def test_default_store_is_the_settings_one(tmp_path):
    save_dataset("k.json", [1])
    assert (tmp_path / ".daglite" / "datasets" / "k.json").is_file()
    assert load_dataset("k.json") == [1]
    assert get_global_settings().dataset_store == ".daglite/datasets"


def test_session_store_and_explicit_override(tmp_path):
    mem = memory_dataset_store()
    with session(dataset_store=mem):
        save_dataset("v.json", {"a": 1})
        assert load_dataset("v.json") == {"a": 1}
        save_dataset("v.json", {"a": 2}, store=str(tmp_path / "other"))
    assert mem.load("v.json") == {"a": 1}
    assert DatasetStore(str(tmp_path / "other")).load("v.json") == {"a": 2}
    with session(dataset_store=str(tmp_path / "s")):
        save_dataset("w.txt", "x")
    assert (tmp_path / "s" / "w.txt").read_text() == "x"


def test_explicit_format_and_options(tmp_path):
    store = str(tmp_path)
    save_dataset("pretty", {"b": 1, "a": 2}, format="json", store=store, options={"indent": 2})
    assert (tmp_path / "pretty").read_text() == '{\n  "b": 1,\n  "a": 2\n}'
    assert load_dataset("pretty", format="json", store=store) == {"b": 1, "a": 2}
    save_dataset("latin.txt", "é", store=store, options={"encoding": "latin-1"})
    assert (tmp_path / "latin.txt").read_bytes() == b"\xe9"
    assert load_dataset("latin.txt", store=store, options={"encoding": "latin-1"}) == "é"


def test_text_key_without_extension_needs_a_hint():
    store = memory_dataset_store()
    save_dataset("notes", "hello", store=store)
    assert load_dataset("notes", str, store=store) == "hello"
    assert load_dataset("notes", format="text", store=store) == "hello"
    with pytest.raises(DatasetError, match="cannot tell the format of dataset 'notes'"):
        load_dataset("notes", store=store)


def test_missing_key_names_key_and_store():
    store = memory_dataset_store()
    save_dataset("dir/present.json", 1, store=store)
    with pytest.raises(DatasetError) as info:
        load_dataset("dir/absent.json", store=store)
    message = str(info.value)
    assert "dataset 'dir/absent.json' not found in store" in message
    assert store.url in message and "dir/present.json" in message


def test_unknown_format_says_what_to_install():
    store = memory_dataset_store()
    with pytest.raises(
        DatasetError, match="format 'parquet' is not installed: install daglite-arrow from a clone"
    ):
        save_dataset("t.parquet", [1], format="parquet", store=store)
    with pytest.raises(DatasetError, match="installed formats: bytes, json, pickle, text"):
        save_dataset("t.x", [1], format="nope", store=store)
    assert store.list() == []


def test_unsavable_and_unloadable_values_name_key_and_format():
    store = memory_dataset_store()
    with pytest.raises(DatasetError) as info:
        save_dataset("bad.json", {1, 2}, store=store)
    assert "cannot save dataset 'bad.json'" in str(info.value) and "as json" in str(info.value)
    assert "not JSON serializable" in str(info.value)
    store.bytes.write("broken.json", b"{not json")
    with pytest.raises(
        DatasetError, match="cannot load dataset 'broken.json' from store .* as json"
    ):
        load_dataset("broken.json", store=store)
    assert store.list() == ["broken.json"]


@pytest.mark.parametrize("key", ["../out.json", "/etc/x.json", "a//b.json", ""])
def test_keys_outside_the_root_are_refused(tmp_path, key):
    root = tmp_path / "root"
    with pytest.raises(StoreError, match="invalid store key"):
        save_dataset(key, [1], store=str(root))
    with pytest.raises(StoreError, match="invalid store key"):
        load_dataset(key, store=str(root))
    assert not (tmp_path / "out.json").exists() and not root.exists()


# -- placeholders and auto-save -------------------------------------------------------------


def test_placeholders_resolve_from_the_running_task():
    store = memory_dataset_store()

    @task
    def produce(region: str, year: int = 2024):
        save_dataset("raw/{region}/{year}.json", {"r": region}, store=store)
        return load_dataset("raw/{region}/{year}.json", store=store)

    assert produce("eu") == {"r": "eu"}
    assert store.list() == ["raw/eu/2024.json"]


def test_placeholders_need_a_task_and_a_known_name():
    store = memory_dataset_store()
    with pytest.raises(DatasetError, match="has placeholders but no task is running"):
        save_dataset("x/{a}.json", 1, store=store)

    @task
    def t(a):
        save_dataset("x/{b}.json", a, store=store)

    with pytest.raises(daglite.TaskError, match=r"cannot fill dataset key 'x/\{b\}.json'"):
        t(1)


def test_task_dataset_autosaves_each_call():
    store = memory_dataset_store()

    @task(dataset="out/{name}-{n}.json", dataset_store=store)
    def make(name: str, n: int):
        return {"name": name, "n": n}

    make("a", 1)
    make(name="b", n=2)
    assert store.list() == ["out/a-1.json", "out/b-2.json"]
    assert store.load("out/b-2.json") == {"name": "b", "n": 2}


def test_autosave_per_map_item_and_dataset_format(tmp_path):
    @task(dataset="items/{map_index}", dataset_format="json")
    def square(x):
        return x * x

    with session(backend="thread", dataset_store=str(tmp_path / "ds")):
        assert map_tasks(square, [1, 2, 3]) == [1, 4, 9]
    store = open_dataset_store(str(tmp_path / "ds"))
    assert store.list() == ["items/0", "items/1", "items/2"]
    assert [json.loads((tmp_path / "ds" / "items" / str(i)).read_text()) for i in range(3)] == [
        1,
        4,
        9,
    ]


def test_autosave_with_an_async_task():
    import asyncio

    store = memory_dataset_store()

    @task(dataset="a/{x}.txt", dataset_store=store)
    async def shout(x: str):
        return x.upper()

    assert asyncio.run(shout("hi")) == "HI"
    assert store.load("a/hi.txt") == "HI"


def test_dataset_template_is_checked_at_decoration():
    with pytest.raises(ValueError, match="references"):

        @task(dataset="{nope}.json")
        def f(x):
            return x


# -- hooks and events -----------------------------------------------------------------------


class Recorder:
    def __init__(self):
        self.calls = []

    @daglite.hookimpl
    def before_dataset_save(self, key, value, format, options, metadata):
        self.calls.append(("before_save", key, value, format, metadata.name if metadata else None))

    @daglite.hookimpl
    def after_dataset_save(self, key, value, format, options, metadata):
        self.calls.append(("after_save", key, value, format))

    @daglite.hookimpl
    def before_dataset_load(self, key, return_type, format, options, metadata):
        self.calls.append(("before_load", key, return_type, format))

    @daglite.hookimpl
    def after_dataset_load(self, key, return_type, format, options, metadata, result, duration):
        self.calls.append(("after_load", key, result, duration >= 0))


def test_hooks_and_events_of_saves_and_loads():
    store = memory_dataset_store()
    recorder = Recorder()
    events = []

    @task(dataset="r/{x}.json", dataset_store=store)
    def t(x):
        return [x]

    with session(plugins=[recorder, events.append]):
        t(1)
        assert load_dataset("r/1.json", list, store=store) == [1]
    assert recorder.calls == [
        ("before_save", "r/1.json", [1], None, "t"),
        ("after_save", "r/1.json", [1], None),
        ("before_load", "r/1.json", list, None),
        ("after_load", "r/1.json", [1], True),
    ]
    saved = [e for e in events if e.kind == "DatasetSaved"]
    loaded = [e for e in events if e.kind == "DatasetLoaded"]
    assert len(saved) == 1 and len(loaded) == 1
    assert saved[0].key == "r/1.json" and saved[0].format == "json"
    assert saved[0].store == store.url and saved[0].task_id is not None
    assert loaded[0].format == "json" and loaded[0].task_id is None


def test_hooks_do_not_run_for_an_invalid_key():
    recorder = Recorder()
    with session(plugins=[recorder]), pytest.raises(StoreError):
        save_dataset("../x.json", 1, store=memory_dataset_store())
    assert recorder.calls == []


# -- worker relay -----------------------------------------------------------------------------


def _worker_runtime(relay):
    settings = get_global_settings()
    return Runtime(
        session_id="worker",
        settings=settings,
        backend="process",
        in_worker=True,
        dataset_relay=relay,
    )


def test_worker_saves_to_local_stores_are_relayed(tmp_path):
    relayed = []
    store = DatasetStore(str(tmp_path / "ds"))
    token = current_runtime.set(_worker_runtime(lambda *args: relayed.append(args)))
    try:
        path = save_dataset("r/v.json", {"a": 1}, store=store)
    finally:
        current_runtime.reset(token)
    assert path == str(tmp_path / "ds" / "r" / "v.json")
    assert store.list() == []  # nothing written in the worker
    [(write,)] = relayed
    spec, key, data, index = write
    assert (spec, key, index) == (store.url, "r/v.json", None)
    assert data == b'{"a": 1}'
    # The coordinator writes the bytes as they came, through a freshly opened store.
    shipped = pickle.loads(pickle.dumps(write))
    assert shipped == write
    assert shipped.apply(None) == path
    assert store.load("r/v.json") == {"a": 1}
    store.delete("r/v.json")
    assert apply_relayed_write(spec, key, data) == path
    assert store.load("r/v.json") == {"a": 1}


def test_relayed_writes_are_validated_again(tmp_path):
    with pytest.raises(StoreError, match="leaves the store's root"):
        apply_relayed_write(str(tmp_path / "ds"), "../evil", b"x")
    assert list(tmp_path.iterdir()) == []


def test_worker_saves_to_remote_stores_are_written_directly():
    from fsspec.implementations.memory import MemoryFileSystem

    from daglite.stores import ByteStore

    remote = DatasetStore(ByteStore(MemoryFileSystem(), "memory://remote-ds", is_local=False))
    relayed = []
    token = current_runtime.set(_worker_runtime(lambda *args: relayed.append(args)))
    try:
        save_dataset("x.txt", "direct", store=remote)
    finally:
        current_runtime.reset(token)
    assert relayed == []
    assert remote.load("x.txt") == "direct"


def test_store_with_options_relays_its_config():
    store = DatasetStore("memory://with-opts", skip_instance_cache=True)
    assert store.config() == {"url": "memory://with-opts", "options": {"skip_instance_cache": True}}
    reopened = open_dataset_store(store.config())
    reopened.save("k.txt", "v")
    assert store.load("k.txt") == "v"


def _save_from_helper(store):
    save_dataset("h/{a}.json", 1, store=store)


def test_placeholders_from_a_helper_without_bound_arguments_say_why():
    store = memory_dataset_store()

    @task
    def t(a):
        return _save_from_helper(store)  # the task's own code never names save_dataset

    with pytest.raises(daglite.TaskError, match="only bound when its own body calls save_dataset"):
        t(1)
    with session(), pytest.raises(daglite.TaskError, match="available placeholders"):
        t(1)
    assert store.list() == []


@task(dataset="relayed/{name}/{map_index}.json")
def _relayed_item(name: str) -> dict:
    save_dataset("relayed/{name}.txt", f"explicit {name}")
    return {"name": name}


def test_process_workers_relay_saves_to_local_stores(tmp_path):
    root = tmp_path / "ds"
    with session(backend="process", dataset_store=str(root)):
        map_tasks(_relayed_item, ["a", "b"])
    store = DatasetStore(str(root))
    assert store.list() == [
        "relayed/a.txt",
        "relayed/a/0.json",
        "relayed/b.txt",
        "relayed/b/1.json",
    ]
    assert store.load("relayed/b/1.json") == {"name": "b"}
