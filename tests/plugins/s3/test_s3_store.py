"""daglite-s3 against moto's S3 server on loopback: caching, datasets, workers, errors."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os

import pytest

from daglite import DagliteSettings
from daglite import DatasetError
from daglite import StoreError
from daglite import load_dataset
from daglite import map_tasks
from daglite import registry
from daglite import save_dataset
from daglite import session
from daglite import task
from daglite.caching import CacheStore
from daglite.caching import cache_key
from daglite.datasets import DatasetStore
from daglite.stores import open_store
from daglite.testing import CallLog
from daglite.testing import ManualClock
from daglite_s3.store import S3Store
from daglite_s3.store import filesystem_kwargs
from daglite_s3.store import resolve_options
from daglite_s3.store import s3_store


def _objects(client, url):
    bucket, _, prefix = url[len("s3://") :].partition("/")
    found = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return sorted(obj["Key"][len(prefix) + 1 :] for obj in found.get("Contents", []))


# -- registration and options -----------------------------------------------------------------


def test_s3_scheme_is_registered_by_the_distribution():
    assert registry.load("store", "s3") is s3_store
    assert registry.load("store", "s3a") is s3_store
    entries = {e.name: e for e in registry.entries("store")}
    assert entries["s3"].distribution == "daglite-s3"


def test_store_is_remote_and_strips_the_protocol(s3, prefix):
    store = open_store(prefix + "/cache/")
    assert isinstance(store, S3Store) and store.is_local is False
    assert store.root == prefix[len("s3://") :] + "/cache" and store.bucket == "daglite-test"
    assert open_store(prefix.replace("s3://", "s3a://")).url == prefix


def test_option_precedence_and_friendly_names(monkeypatch):
    monkeypatch.setenv("DAGLITE_S3_REGION", "eu-west-1")
    monkeypatch.setenv("DAGLITE_S3_ANON", "true")
    from daglite import settings as settings_module

    settings_module.set_global_settings(
        settings_module.DagliteSettings(
            options={"s3": {"profile": "from-settings", "region": "us-west-2"}}
        )
    )
    resolved = resolve_options({"endpoint_url": "http://127.0.0.1:1", "max_attempts": 2})
    assert resolved == {
        "profile": "from-settings",
        "region": "eu-west-1",  # the environment beats the settings
        "anon": True,
        "endpoint_url": "http://127.0.0.1:1",
        "max_attempts": 2,
    }
    kwargs = filesystem_kwargs({**resolved, "connect_timeout": 3, "read_timeout": 4})
    assert kwargs["client_kwargs"] == {"region_name": "eu-west-1"}
    assert kwargs["config_kwargs"] == {
        "retries": {"max_attempts": 2, "mode": "standard"},
        "connect_timeout": 3,
        "read_timeout": 4,
    }
    assert kwargs["profile"] == "from-settings" and kwargs["anon"] is True


def test_the_endpoint_can_come_from_the_sessions_settings(s3, prefix, monkeypatch):
    # The factory receives the session's settings: `[tool.daglite.options.s3]` there.
    monkeypatch.delenv("DAGLITE_S3_ENDPOINT_URL")
    settings = DagliteSettings(options={"s3": {"endpoint_url": s3.endpoint}}, processors=())
    with session(dataset_store=prefix + "/ds", settings=settings):
        save_dataset("rows.json", [1, 2])
        assert load_dataset("rows.json") == [1, 2]
    assert _objects(s3, prefix + "/ds") == ["rows.json"]


# -- caching --------------------------------------------------------------------------------------


def test_cache_hit_and_miss_in_a_session_store(s3, prefix):
    calls = CallLog()

    @task(cache=True)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    events = []
    with session(cache_store=prefix + "/cache", plugins=[events.append]):
        assert [square(3), square(3), square(4)] == [9, 9, 16]
    assert calls == [3, 4]
    assert [e.kind for e in events if e.kind.startswith("Cache")] == [
        "CacheMissed",
        "CacheHit",
        "CacheMissed",
    ]
    key = cache_key(square, 3)
    assert f"{key[:2]}/{key}" in _objects(s3, prefix + "/cache")


def test_per_task_cache_store_string_and_ttl(s3, prefix):
    clock = ManualClock()
    store = CacheStore(prefix + "/ttl", clock=clock)
    calls = CallLog()

    @task(cache=store, cache_ttl=30)
    def stamp(x: int) -> int:
        calls.append(x)
        return x

    stamp(1)
    clock.advance(10)
    stamp(1)
    clock.advance(25)
    stamp(1)
    assert calls == [1, 1]

    @task(cache=True, cache_store=prefix + "/per-task")
    def other(x: int) -> int:
        calls.append(-x)
        return x

    other(2)
    other(2)
    assert calls == [1, 1, -2]
    assert _objects(s3, prefix + "/per-task")[0] == ".daglite-cache"  # the store's marker
    assert len(_objects(s3, prefix + "/per-task")) == 2  # and one entry


def test_corrupt_cache_entry_on_s3_is_a_miss(s3, prefix):
    calls = CallLog()

    @task(cache=prefix + "/c")
    def value(x: int) -> list[int]:
        calls.append(x)
        return [x] * 10

    value(5)
    key = cache_key(value, 5)
    bucket, _, base = (prefix + "/c").removeprefix("s3://").partition("/")
    s3.put_object(Bucket=bucket, Key=f"{base}/{key[:2]}/{key}", Body=b"DGLC garbage")
    events = []
    with session(plugins=[events.append]):
        assert value(5) == [5] * 10
    assert calls == [5, 5]
    [missed] = [e for e in events if e.kind == "CacheMissed"]
    assert missed.reason.startswith("corrupt")


def test_cache_keys_and_clear(s3, prefix):
    store = CacheStore(prefix + "/clear")
    store.put("aa11", {"v": 1})
    store.put("bb22", [2])
    assert store.keys() == ["aa11", "bb22"]
    assert store.get("aa11")[:2] == (True, {"v": 1})
    assert store.clear() == 2
    assert store.keys() == [] and _objects(s3, prefix + "/clear") == [".daglite-cache"]


# -- datasets -------------------------------------------------------------------------------------

FORMATS = [
    ("data.json", {"a": [1, 2]}, None, None),
    ("notes.txt", "héllo", None, None),
    ("blob.bin", b"\x00\xff", None, None),
    ("model.pkl", {"t": (1, 2), "s": {3}}, None, None),
    ("plain", {"t": (1,)}, None, None),
    ("explicit", [1, 2], "json", None),
    ("typed", "text", None, str),
]


@pytest.mark.parametrize(("key", "value", "fmt", "return_type"), FORMATS)
def test_datasets_in_every_core_format(s3, prefix, key, value, fmt, return_type):
    url = prefix + "/ds"
    path = save_dataset(key, value, format=fmt, store=url)
    assert path == f"{url}/{key}"
    assert load_dataset(key, return_type, format=fmt, store=url) == value
    assert _objects(s3, url) == [key]


def test_json_on_s3_is_plain_json(s3, prefix):
    save_dataset("doc.json", {"k": 1}, store=prefix)
    bucket, _, base = prefix.removeprefix("s3://").partition("/")
    body = s3.get_object(Bucket=bucket, Key=f"{base}/doc.json")["Body"].read()
    assert json.loads(body) == {"k": 1}


def test_session_dataset_store_templated_keys_and_listing(s3, prefix):
    url = prefix + "/data"

    @task(dataset="squares/{x}.json")
    def square(x: int) -> int:
        return x * x

    with session(dataset_store=url, backend="thread"):
        map_tasks(square, [1, 2, 3])
        save_dataset("extra.txt", "x")
    store = DatasetStore(url)
    assert store.list() == ["extra.txt", "squares/1.json", "squares/2.json", "squares/3.json"]
    assert store.list("squares")[0] == "squares/1.json"
    assert load_dataset("squares/3.json", store=url) == 9
    assert store.delete("extra.txt") and not store.exists("extra.txt")


def test_missing_dataset_names_key_and_store(s3, prefix):
    with pytest.raises(DatasetError, match=f"dataset 'nope.json' not found in store '{prefix}'"):
        load_dataset("nope.json", store=prefix)


# -- workers write directly ----------------------------------------------------------------------


@task(dataset="w/{name}-{n}.json")
def _worker_item(name: str, n: int) -> dict:
    return {"name": name, "n": n, "pid": os.getpid()}


def _run_in_worker(url: str) -> None:
    from daglite.context import Runtime
    from daglite.context import current_runtime
    from daglite.settings import get_global_settings

    def relay(*args):
        raise AssertionError("an S3 store must not be relayed")

    runtime = Runtime(
        session_id="w",
        settings=get_global_settings(),
        backend="process",
        dataset_store=url,
        in_worker=True,
        dataset_relay=relay,
    )
    current_runtime.set(runtime)
    _worker_item("a", 1)
    save_dataset("w/direct.txt", "from the worker")


def test_worker_processes_write_templated_keys_directly(s3, prefix):
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_run_in_worker, args=(prefix,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    item = load_dataset("w/a-1.json", store=prefix)
    assert item["name"] == "a" and item["pid"] != os.getpid()
    assert load_dataset("w/direct.txt", store=prefix) == "from the worker"


def test_process_backend_maps_write_to_s3(s3, prefix):
    if "process" not in registry.names("backend"):
        pytest.skip("the process backend is not installed in this build")
    with session(backend="process", dataset_store=prefix):
        map_tasks(_worker_item, ["p", "q"], [1, 2])
    assert DatasetStore(prefix).list() == ["w/p-1.json", "w/q-2.json"]


# -- errors ----------------------------------------------------------------------------------------


def test_missing_bucket_is_a_clear_store_error(s3):
    url = "s3://no-such-bucket-here/p"
    with pytest.raises(StoreError) as info:
        save_dataset("x.json", 1, store=url)
    message = str(info.value)
    assert "cannot write key 'x.json' in store 's3://no-such-bucket-here/p'" in message
    assert "the bucket 'no-such-bucket-here' does not exist" in message
    with pytest.raises(StoreError, match="does not exist: create it"):
        load_dataset("x.json", store=url)

    @task(cache=url)
    def cached(x):
        return x

    with pytest.raises(StoreError, match="does not exist"):
        cached(1)


def test_unreachable_endpoint_is_a_store_error_and_a_cache_miss(s3, prefix, caplog):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    options = {
        "endpoint_url": f"http://127.0.0.1:{closed}",
        "connect_timeout": 1,
        "max_attempts": 1,
        "skip_instance_cache": True,
    }
    store = DatasetStore(prefix, **options)
    with pytest.raises(StoreError) as info:
        store.save("x.txt", "v")
    assert f"cannot reach the S3 endpoint http://127.0.0.1:{closed}" in str(info.value)
    cache = CacheStore(prefix, **options)
    with caplog.at_level(logging.WARNING, logger="daglite"):
        found, _, reason = cache.get("abcd")
    assert found is False and reason.startswith("unreadable: StoreError")


def test_wrong_credentials_never_leak(s3, prefix, caplog):
    import urllib.request

    secret_id, secret = "AKIADAGLITESECRET", "do-not-print-this-secret"
    store = DatasetStore(prefix, key=secret_id, secret=secret, skip_instance_cache=True)
    auth = f"{s3.endpoint}/moto-api/reset-auth"

    def require_auth(count: bytes) -> None:  # moto checks signatures after `count` requests
        request = urllib.request.Request(
            auth, data=count, method="POST", headers={"Content-Type": "text/plain"}
        )
        urllib.request.urlopen(request).read()

    require_auth(b"0")
    try:
        with pytest.raises(StoreError) as info:
            store.save("x.json", [1])
        events = []
        cache = CacheStore(prefix, key=secret_id, secret=secret, skip_instance_cache=True)

        @task(cache=cache)
        def f(x):
            return x

        with (
            caplog.at_level(logging.DEBUG, logger="daglite"),
            session(plugins=[events.append]),
            pytest.raises(StoreError) as cache_info,
        ):
            f(1)
    finally:
        require_auth(b"inf")
    message = str(info.value)
    assert "access was denied: check the AWS credentials" in message
    assert "cannot write key 'x.json'" in message and prefix in message
    texts = [message, str(cache_info.value), repr(store), repr(cache), repr(store.bytes)]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("daglite")]
    assert any("unreadable" in text for text in ours)  # the failed cache read was logged
    texts += ours
    texts += [repr(e) for e in events]
    for text in texts:
        assert secret not in text and secret_id not in text
