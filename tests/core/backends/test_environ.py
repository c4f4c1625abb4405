"""Workers receive only the environment variables a session needs, and no repr shows one."""

from __future__ import annotations

import pickle

import pytest

from daglite import map_tasks
from daglite import session
from daglite.backends.packing import worker_spec
from daglite.context import current_runtime
from daglite.errors import SettingsError
from daglite.settings import DagliteSettings
from daglite.settings import load_settings

from ..support.isolation_tasks import env_of

pytestmark = pytest.mark.timeout(60)

SECRET = "s3cr3t-value-that-must-not-travel"
AWS_SECRET = "aws-secret-shipped-for-s3-stores"
NAMES = ("MY_DB_PASSWORD", "MYAPP_TOKEN", "DAGLITE_TEST_MARK", "AWS_REGION", "PATH")


@pytest.fixture
def planted(monkeypatch):
    monkeypatch.setenv("MY_DB_PASSWORD", SECRET)
    monkeypatch.setenv("MYAPP_TOKEN", "app-token")
    monkeypatch.setenv("DAGLITE_TEST_MARK", "mark")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)


def test_process_workers_see_only_the_session_and_system_variables(planted):
    with session(backend="process", settings=DagliteSettings(max_workers=1)):
        [seen] = map_tasks(env_of, [NAMES])
    assert seen["MY_DB_PASSWORD"] is None
    assert seen["MYAPP_TOKEN"] is None
    assert seen["DAGLITE_TEST_MARK"] == "mark"
    assert seen["AWS_REGION"] == "eu-west-3"
    assert seen["PATH"]  # a worker still finds programs


def test_variables_named_in_the_worker_env_setting_reach_workers(planted):
    settings = DagliteSettings(max_workers=1, worker_env=("MYAPP_*",))
    with session(backend="process", settings=settings):
        [seen] = map_tasks(env_of, [NAMES])
    assert seen["MYAPP_TOKEN"] == "app-token"
    assert seen["MY_DB_PASSWORD"] is None


def test_the_worker_spec_ships_only_the_session_variables_and_never_prints_one(planted):
    with session(backend="process"):
        spec = worker_spec(current_runtime.get(), "process")
    assert "MY_DB_PASSWORD" not in spec.environ
    assert spec.environ["DAGLITE_TEST_MARK"] == "mark"
    assert SECRET.encode() not in pickle.dumps(spec)  # what every batch carries
    text = repr(spec)
    assert "AWS_SECRET_ACCESS_KEY" in text and "MY_DB_PASSWORD" not in text  # names only
    assert AWS_SECRET not in text and "eu-west-3" not in text
    assert "payload=<" in text  # the pickled stores and plugins: their size only


def test_the_worker_env_setting_from_the_environment_and_its_errors(monkeypatch):
    monkeypatch.setenv("DAGLITE_WORKER_ENV", "HF_TOKEN, MYAPP_*")
    assert load_settings().worker_env == ("HF_TOKEN", "MYAPP_*")
    monkeypatch.setenv("DAGLITE_WORKER_ENV", "HF_TOKEN=abc")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid value 'HF_TOKEN=abc' for 'worker_env' in the environment")
    assert "DAGLITE_WORKER_ENV" in message
    assert message.endswith(
        "worker_env takes variable names or patterns such as 'MYAPP_*', not 'HF_TOKEN=abc'"
    )
    with pytest.raises(ValueError, match="worker_env must be a list of variable names, not 3"):
        DagliteSettings(worker_env=3)


def test_which_variables_a_session_ships_and_a_local_worker_keeps():
    from daglite.backends.environ import local_worker_environ
    from daglite.backends.environ import session_environ

    coordinator = {
        "PATH": "/usr/bin",
        "LC_ALL": "C.UTF-8",
        "DAGLITE_BACKEND": "process",
        "AWS_REGION": "eu-west-3",
        "OTEL_SERVICE_NAME": "etl",
        "FSSPEC_S3_ANON": "1",
        "HF_TOKEN": "hf",
        "MYAPP_URL": "db",
        "GITHUB_TOKEN": "gh",
    }
    shipped = session_environ(coordinator, ["HF_TOKEN", "MYAPP_*"])
    assert sorted(shipped) == [
        "AWS_REGION",
        "DAGLITE_BACKEND",
        "FSSPEC_S3_ANON",
        "HF_TOKEN",
        "MYAPP_URL",
        "OTEL_SERVICE_NAME",
    ]
    local = local_worker_environ(shipped, coordinator)
    assert sorted(local) == sorted([*shipped, "PATH", "LC_ALL"])
    assert "GITHUB_TOKEN" not in local


def test_no_plugin_option_secret_in_the_repr_of_the_spec_every_batch_carries():
    settings = DagliteSettings(options={"s3": {"key": "AKIAEXAMPLE", "secret": SECRET}})
    with session(backend="process", settings=settings):
        spec = worker_spec(current_runtime.get(), "process")
    text = repr(spec)
    assert SECRET not in text and "AKIAEXAMPLE" not in text
    assert "'secret': '***'" in text  # the option is there, its value is not
