"""Credentials in store URLs never reach a message, repr, event or CLI output (core stores).

The same, against a real S3 API server and every output channel at once, lives in
`tests/plugins/s3/test_secrets.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daglite import StoreError
from daglite import session
from daglite import task
from daglite.context import Runtime
from daglite.datasets import DatasetStore
from daglite.redaction import redact
from daglite.redaction import redact_url
from daglite.redaction import split_credentials
from daglite.redaction import summarize_arguments
from daglite.settings import DagliteSettings
from daglite.stores import open_store
from daglite.testing import EventCapture

KEY, SECRET = "AKIAPLANTEDKEY", "planted-secret-value"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"s3://{KEY}:{SECRET}@bucket/p", "s3://***@bucket/p"),
        (
            f"cannot open 'sftp://{KEY}:{SECRET}@host:22/dir' now",
            "cannot open 'sftp://***@host:22/dir' now",
        ),
        (f"https://{KEY}@host/x", "https://***@host/x"),
        (f"s3://b/p?token={SECRET}&region=eu", "s3://b/p?token=***&region=eu"),
        (f"abfs://c/p?sv=1&sig={SECRET}", "abfs://c/p?sv=1&sig=***"),
        (f"s3://b/p?X-Amz-Signature={SECRET}", "s3://b/p?X-Amz-Signature=***"),
        ("s3://b/p?versionId=3", "s3://b/p?versionId=3"),
        ("/data/user@host/cache", "/data/user@host/cache"),  # a path, not a URL
        ("mail me@example.com", "mail me@example.com"),
    ],
)
def test_redact_url_masks_credentials_in_any_text(text, expected):
    assert redact_url(text) == expected


def test_split_credentials_takes_them_out_of_the_url():
    assert split_credentials(f"s3://{KEY}:{SECRET}@bucket/p/q") == (
        "s3://bucket/p/q",
        {"username": KEY, "password": SECRET},
    )
    assert split_credentials("sftp://me%40corp:p%3Aw@host/dir") == (
        "sftp://host/dir",
        {"username": "me@corp", "password": "p:w"},
    )
    assert split_credentials("s3://bucket/a@b") == ("s3://bucket/a@b", {})  # '@' in the path
    assert split_credentials("/plain/path") == ("/plain/path", {})


def test_redact_hides_usernames_and_passwords_given_as_options():
    text = f"failed for {KEY} with {SECRET} at s3://{KEY}:{SECRET}@b"
    assert (
        redact(text, {"username": KEY, "password": SECRET})
        == "failed for *** with *** at s3://***@b"
    )


def test_settings_and_runtime_reprs_mask_store_credentials():
    url = f"s3://{KEY}:{SECRET}@bucket/cache?token={SECRET}"
    settings = DagliteSettings(cache_store=url, dataset_store=url)
    runtime = Runtime(
        session_id="s", settings=settings, backend="inline", cache_store=url, dataset_store=url
    )
    for text in (repr(settings), repr(runtime), str(settings)):
        assert KEY not in text and SECRET not in text
        assert "cache_store='s3://***@bucket/cache?token=***'" in text
    assert settings.cache_store == url  # the value itself is kept for the store to use


def test_an_opened_store_holds_no_credential_in_its_url(tmp_path):
    store = open_store(f"memory://{KEY}:{SECRET}@scratch-redaction")
    assert store.url == "memory://scratch-redaction"
    assert store.options == {"username": KEY, "password": SECRET}
    datasets = DatasetStore(f"memory://{KEY}:{SECRET}@scratch-redaction")
    for text in (repr(store), repr(datasets), datasets.url, store.safe_url):
        assert KEY not in text and SECRET not in text
    with pytest.raises(StoreError) as info:
        open_store(f"file://{KEY}:{SECRET}@{tmp_path}")
    assert str(info.value) == (
        f"the file store 'file://{tmp_path}' takes no options, got ['password', 'username']; "
        "options are for remote stores (s3://..., ...)"
    )


def test_a_store_built_by_hand_holds_no_credential_in_its_url_either():
    from fsspec.implementations.memory import MemoryFileSystem

    from daglite.stores import ByteStore

    store = ByteStore(MemoryFileSystem(), f"memory://{KEY}:{SECRET}@by-hand", options={"a": 1})
    assert (store.url, store.root) == ("memory://by-hand", "/by-hand")
    assert store.options == {"username": KEY, "password": SECRET, "a": 1}
    store.write("k", b"v")
    assert store.read("k") == b"v"
    with pytest.raises(FileNotFoundError) as info:
        store.read("missing")
    assert str(info.value) == "no key 'missing' in store 'memory://by-hand'"


def test_a_secret_in_the_query_string_is_refused_without_repeating_it():
    with pytest.raises(StoreError) as info:
        open_store(f"memory://scratch?token={SECRET}&v=1")
    assert str(info.value) == (
        "the store URL 'memory://scratch?token=***&v=1' carries a secret in its query string "
        "(token): daglite reads no credential from a URL's query; pass it as a store option "
        "(CacheStore(url, token=...)), in [tool.daglite.options] or through the store's "
        "environment variables (e.g. AWS_SESSION_TOKEN)"
    )
    events = EventCapture()
    with (
        pytest.raises(StoreError) as info,
        session(dataset_store=f"memory://x?sig={SECRET}", plugins=[events]),
    ):
        pass
    assert SECRET not in str(info.value) and "(sig)" in str(info.value)
    with pytest.raises(ValueError) as info:
        task(cache_store=f"memory://x?password={SECRET}")(lambda: 1)
    assert SECRET not in str(info.value) and "(password)" in str(info.value)


def test_an_unknown_scheme_with_credentials_fails_at_session_open_without_them():
    events = EventCapture()
    with (
        pytest.raises(StoreError) as info,
        session(cache_store=f"gs://{KEY}:{SECRET}@bucket/c", plugins=[events]),
    ):
        pass
    assert str(info.value) == (
        "cannot use 'gs://bucket/c' as the cache store: unknown store 'gs'; installed stores: "
        "file, memory"
    )
    assert events.events == []


# -- the command line ------------------------------------------------------------------------

FLOW = """
from daglite import task, workflow

@task
def one() -> int:
    return 1

@workflow
def flow() -> int:
    return one()
"""


def _daglite(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGLITE_")}
    script = Path(sys.executable).with_name("daglite")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "daglite.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


@pytest.mark.parametrize("option", ["--cache-store", "--dataset-store"])
def test_cli_run_with_a_bad_store_url_exits_2_without_the_credentials(tmp_path, option):
    (tmp_path / "flow.py").write_text(FLOW)
    log = tmp_path / "events.jsonl"
    done = _daglite(
        "run",
        "--event-log",
        str(log),
        option,
        f"gs://{KEY}:{SECRET}@bucket/x",
        "flow.py:flow",
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "cannot use 'gs://bucket/x' as the" in done.stderr
    assert "unknown store 'gs'" in done.stderr
    for text in (done.stdout, done.stderr, log.read_text() if log.exists() else ""):
        assert KEY not in text and SECRET not in text


def test_cli_cache_commands_never_print_the_credentials(tmp_path):
    for args in (["info"], ["clear"]):
        done = _daglite("cache", *args, "--store", f"gs://{KEY}:{SECRET}@bucket/c", cwd=tmp_path)
        assert done.returncode == 2
        assert "cannot open the cache store 'gs://***@bucket/c'" in done.stderr
        assert KEY not in done.stderr + done.stdout and SECRET not in done.stderr + done.stdout


def test_summarize_arguments_is_short_and_never_shows_a_secret():
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    summary = summarize_arguments(
        {
            "x": 3,
            "token": "T0K3N",
            "AWS_Secret": "s",
            "url": "https://user:pw@host/path",
            "big": "y" * 500,
            "odd": Broken(),
        }
    )
    assert summary == {
        "x": "3",
        "token": "***",
        "AWS_Secret": "***",
        "url": "'https://***@host/path'",
        "big": "'" + "y" * 78 + "…",
        "odd": "<Broken: repr failed: RuntimeError>",
    }
