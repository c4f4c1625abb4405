"""dask: the `__main__` guard, per-item isolation and what crosses to the workers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from daglite import StoreError
from daglite import TaskError
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.errors import RemoteError

pytestmark = pytest.mark.slow


class TwoArgError(Exception):
    """An exception whose class pickle cannot rebuild (`__init__` takes two arguments)."""

    def __init__(self, quota: str, used: int) -> None:
        super().__init__(f"quota {quota} exceeded: {used} used")


@task
def over_quota(x: int) -> int:
    if x == 1:
        raise TwoArgError("disk", 42)
    return x


@task(dataset="out/{x}.pkl")
def saved(x: int) -> int:
    return x * 10


@task
def env_of(names: tuple[str, ...]) -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in names}


def test_an_exception_that_cannot_be_unpickled_comes_back_as_a_stand_in(dask_settings):
    with session(settings=dask_settings):
        out = map_tasks(over_quota, [0, 1, 2], return_exceptions=True)
    assert out[0] == 0 and out[2] == 2
    assert isinstance(out[1], TaskError)
    cause = out[1].__cause__
    assert isinstance(cause, RemoteError)
    assert str(cause) == f"{__name__}.TwoArgError: quota disk exceeded: 42 used"
    assert 'raise TwoArgError("disk", 42)' in cause.worker_traceback


def test_a_relayed_dataset_write_that_fails_fails_only_its_item(dask_settings, tmp_path):
    (tmp_path / "out" / "1.pkl").mkdir(parents=True)
    with session(settings=dask_settings, dataset_store=str(tmp_path)):
        out = map_tasks(saved, [0, 1, 2], return_exceptions=True)
    assert out[0] == 0 and out[2] == 20
    assert isinstance(out[1], StoreError) and "out/1.pkl" in str(out[1])


def test_only_the_session_variables_cross_to_dask_workers(dask_settings, monkeypatch):
    names = ("MY_DB_PASSWORD", "MYAPP_TOKEN", "DAGLITE_TEST_MARK")
    monkeypatch.setenv("MY_DB_PASSWORD", "s3cr3t")  # set after the cluster started
    monkeypatch.setenv("MYAPP_TOKEN", "app-token")
    monkeypatch.setenv("DAGLITE_TEST_MARK", "mark")
    with session(settings=dask_settings):
        [seen] = map_tasks(env_of, [names])
    assert seen == {"MY_DB_PASSWORD": None, "MYAPP_TOKEN": None, "DAGLITE_TEST_MARK": "mark"}
    named = dask_settings.evolve(worker_env=("MYAPP_*",))
    with session(settings=named):
        [seen] = map_tasks(env_of, [names])
    assert seen["MYAPP_TOKEN"] == "app-token" and seen["MY_DB_PASSWORD"] is None


SCRIPT = """
from daglite import map_tasks, session, task
from daglite.settings import DagliteSettings

@task
def double(x):
    return 2 * x

{body}
"""

UNGUARDED = """
with session(backend="dask", settings=DagliteSettings(max_workers=1)):
    print(map_tasks(double, range(4)))
"""

GUARDED = """
if __name__ == "__main__":
    with session(backend="dask", settings=DagliteSettings(max_workers=1)):
        print(map_tasks(double, range(4)))
"""


def run_script(tmp_path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT.format(body=textwrap.dedent(body)))
    env = dict(os.environ, DAGLITE_PROCESSORS="")
    env.pop("DAGLITE_DASK_ADDRESS", None)
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )


def test_a_script_without_a_main_guard_is_told_what_to_add(tmp_path):
    done = run_script(tmp_path, UNGUARDED)
    assert done.returncode == 1
    assert "Nanny failed to start" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        "daglite.errors.BackendError: pipeline.py starts a local dask cluster from "
        "module-level code (line 11), and each of its worker processes imports the script "
        'again: put that code under `if __name__ == "__main__":`'
    )
    assert len(done.stderr.splitlines()) < 40  # the traceback of one error, not pages


def test_a_guarded_script_runs_on_a_local_cluster(tmp_path):
    done = run_script(tmp_path, GUARDED)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[0, 2, 4, 6]"


def test_the_guard_check_ignores_code_that_is_not_a_script():
    from daglite_dask.mainguard import unguarded_line

    assert unguarded_line() is None  # called from pytest's functions, not a script's top level


DISK_FULL = """
import resource, sys
from daglite import map_tasks, session, task
from daglite.settings import DagliteSettings

@task(cache=True)
def blob(size):
    return b"x" * size

if __name__ == "__main__":
    limit = 1 << 20  # no file may grow past 1 MiB here, nor in the workers: EFBIG
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    settings = DagliteSettings(max_workers=1)
    with session(backend="dask", cache_store=sys.argv[1], settings=settings):
        out = map_tasks(blob, [10, 4 << 20, 20], return_exceptions=True)
    print([type(o).__name__ for o in out])
    print(out[1])
"""


def test_disk_full_while_caching_one_item_fails_only_that_item(tmp_path):
    script = tmp_path / "full.py"
    script.write_text(DISK_FULL)
    env = dict(os.environ, DAGLITE_PROCESSORS="")
    env.pop("DAGLITE_DASK_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    kinds, message = done.stdout.splitlines()[-2:]
    assert kinds == "['bytes', 'StoreError', 'bytes']"
    assert "File too large" in message
