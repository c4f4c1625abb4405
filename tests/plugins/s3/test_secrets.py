"""A secret planted in `s3://KEY:SECRET@bucket/...` URLs never reaches any output channel.

Against moto's S3 server on 127.0.0.1: exception messages and reprs, the `daglite`
logger, captured events, the jsonl event log, stdout and stderr of `daglite run` (with
and without `--traceback`, inline and on process workers) and of `daglite cache`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from daglite import DatasetError
from daglite import StoreError
from daglite import TaskError
from daglite import load_dataset
from daglite import save_dataset
from daglite import session
from daglite import task
from daglite.caching import CacheStore
from daglite.datasets import DatasetStore
from daglite.settings import DagliteSettings
from daglite.testing import EventCapture

KEY = "AKIAPLANTEDKEY7"
SECRET = "planted-secret-9f3c"


def _clean(*texts: str) -> None:
    for text in texts:
        assert KEY not in text, text
        assert SECRET not in text, text


def _url(bucket: str, prefix: str) -> str:
    return f"s3://{KEY}:{SECRET}@{bucket}/{prefix}"


def _require_auth(endpoint: str, count: bytes) -> None:
    """moto checks request signatures after `count` more requests (`inf`: never again)."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=count,
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request).read()


def test_credentials_in_the_url_are_used_and_never_shown(s3, prefix):
    folder = prefix.split("/", 3)[3]
    url = _url("daglite-test", folder)
    store = DatasetStore(url)
    cache = CacheStore(url + "/cache")
    assert store.url == prefix and cache.bytes.url == prefix + "/cache"
    assert store.bytes.fs.key == KEY and store.bytes.fs.secret == SECRET  # used as credentials
    store.save("x.json", [1])
    assert store.load("x.json") == [1]
    _clean(repr(store), repr(cache), repr(store.bytes), store.url, str(cache.info()))


def test_every_channel_of_a_failing_run_is_clean(s3, prefix, caplog, capsys, tmp_path):
    folder = prefix.split("/", 3)[3]
    good, missing = _url("daglite-test", folder), _url("no-such-bucket-for-secrets", folder)
    log = tmp_path / "events.jsonl"
    events = EventCapture()
    errors: list[BaseException] = []

    @task(cache=True)
    def cached(x: int) -> int:
        return x

    @task(dataset="out/{x}.json")
    def saved(x: int) -> int:
        return x

    @task
    def loads(x: int) -> int:
        return load_dataset("nothing/{x}.json")

    settings = DagliteSettings(
        cache_store=good, dataset_store=missing, event_log=str(log), processors=("logging",)
    )
    with (
        caplog.at_level(logging.DEBUG, logger="daglite"),
        session(settings=settings, plugins=[events]) as ctx,
    ):
        _clean(repr(ctx.runtime), repr(ctx.settings))
        assert cached(1) == 1  # the URL's credentials reach the server
        for call in (lambda: saved(1), lambda: loads(1)):
            with pytest.raises((TaskError, DatasetError, StoreError)) as info:
                call()
            errors.append(info.value)
        with pytest.raises(StoreError) as info:
            save_dataset("direct.json", 1, store=missing)
        errors.append(info.value)
        _require_auth(s3.endpoint, b"0")  # from now on the planted key is refused
        try:
            with pytest.raises(StoreError) as info:
                save_dataset("denied.json", 1, store=good)
            errors.append(info.value)
            with pytest.raises(StoreError) as info:
                load_dataset("denied.json", store=good)
            errors.append(info.value)
        finally:
            _require_auth(s3.endpoint, b"inf")
    assert "the bucket 'no-such-bucket-for-secrets' does not exist" in str(errors[0])
    assert "access was denied: check the AWS credentials" in str(errors[3])
    texts = []
    for error in errors:  # the message, the repr, and every exception chained to it
        while error is not None:
            texts += [str(error), repr(error)]
            error = error.__cause__ or error.__context__
    out = capsys.readouterr()
    texts += [out.out, out.err, log.read_text()]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(event) for event in events.events]
    texts += [json.dumps(event.to_dict(), default=repr) for event in events.events]
    _clean(*texts)
    assert events.kinds().count("TaskFailed") == 2 and log.read_text().count("TaskFailed") == 2


# -- the command line -----------------------------------------------------------------------

FLOW = """
from daglite import map_tasks, save_dataset, task, workflow

@task(cache=True)
def square(x: int) -> int:
    return x * x

@task
def publish(x: int) -> str:
    return save_dataset("out/{x}.json", x)

@workflow
def flow(n: int = 2) -> list:
    squares = map_tasks(square, range(n))
    return map_tasks(publish, squares)
"""


def _daglite(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("daglite")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "daglite.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


@pytest.mark.parametrize("backend", ["inline", "process"])
def test_daglite_run_and_cache_commands_never_print_the_credentials(s3, prefix, tmp_path, backend):
    folder = prefix.split("/", 3)[3]
    cache, data = _url("daglite-test", folder + "/cache"), _url("daglite-test", folder + "/data")
    missing = _url("no-such-bucket-for-secrets", folder)
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGLITE_")}
    env.update(DAGLITE_S3_ENDPOINT_URL=s3.endpoint, DAGLITE_LOG_FORMAT="json")
    log = tmp_path / "events.jsonl"
    outputs = []
    # 1. a run that works: the cache is written through the URL's credentials
    done = _daglite(
        "run", "--backend", backend, "--cache-store", cache, "--dataset-store", data,
        "--event-log", str(log), "flow.py:flow", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outputs += [done.stdout, done.stderr]
    # 2. a run whose datasets go to a missing bucket: fails, with and without --traceback
    for extra in ([], ["--traceback"]):
        done = _daglite(
            "run", "--backend", backend, "--cache-store", cache, "--dataset-store", missing,
            "--event-log", str(log), *extra, "flow.py:flow", cwd=tmp_path, env=env,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert "the bucket 'no-such-bucket-for-secrets' does not exist" in done.stderr
        outputs += [done.stdout, done.stderr]
    # 3. the cache commands on the same URL
    info = _daglite("cache", "info", "--store", cache, cwd=tmp_path, env=env)
    assert info.returncode == 0, info.stderr
    assert f"store: s3://daglite-test/{folder}/cache\nentries: 2\n" in info.stdout
    clear = _daglite("cache", "clear", "--store", cache, cwd=tmp_path, env=env)
    assert clear.returncode == 0, clear.stderr
    assert f"removed 2 cache entries from s3://daglite-test/{folder}/cache" in clear.stdout
    outputs += [info.stdout, info.stderr, clear.stdout, clear.stderr, log.read_text()]
    assert "DatasetSaved" in log.read_text()  # the log is there and has the store events
    _clean(*outputs)
