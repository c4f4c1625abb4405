"""Per-item isolation: whatever fails while finishing one map item is that item's error.

On every core backend, with `return_exceptions=True`, a failed cache write (a real file
size limit), a bad dataset key, a relayed dataset write that fails on the coordinator and
an exception whose class cannot be unpickled each become the error of their item only:
never a dead worker nor an error for the whole map.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daglite import map_tasks
from daglite import session
from daglite.errors import DagliteError
from daglite.errors import RemoteError
from daglite.errors import StoreError
from daglite.errors import TaskError

from ..support.isolation_tasks import TwoArgError
from ..support.isolation_tasks import named
from ..support.isolation_tasks import over_quota
from ..support.isolation_tasks import saved

pytestmark = pytest.mark.timeout(120)

BACKENDS = ["inline", "thread", "process"]
HERE = Path(__file__).parent.parent / "support"  # the helper task modules the scripts import


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_exception_that_cannot_be_unpickled_is_its_items_error(backend):
    with session(backend=backend):
        out = map_tasks(over_quota, [0, 1, 2], return_exceptions=True)
    assert out[0] == 0 and out[2] == 2
    error = out[1]
    assert isinstance(error, TaskError) and error.map_index == 1
    cause = error.__cause__
    if backend == "process":  # crossed a process boundary: a stand-in that keeps it all
        assert isinstance(cause, RemoteError)
        assert cause.type_name == "core.support.isolation_tasks.TwoArgError"
        assert cause.message == "quota disk exceeded: 42 used"
        assert (
            str(cause) == "core.support.isolation_tasks.TwoArgError: quota disk exceeded: 42 used"
        )
        assert 'raise TwoArgError("disk", 42)' in cause.worker_traceback
        assert 'raise TwoArgError("disk", 42)' in error.worker_traceback
    else:
        assert isinstance(cause, TwoArgError)
    assert "quota disk exceeded: 42 used" in str(error)


def test_the_stand_in_travels_and_raises_like_the_original():
    with (
        session(backend="process"),
        pytest.raises(TaskError, match="quota disk exceeded") as caught,
    ):
        map_tasks(over_quota, [0, 1, 2])
    assert isinstance(caught.value.__cause__, RemoteError)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_bad_dataset_key_fails_only_its_item(backend, tmp_path):
    with session(backend=backend, dataset_store=str(tmp_path)):
        out = map_tasks(named, ["a", "", "b"], return_exceptions=True)
    assert out[0] == "a" and out[2] == "b"
    assert isinstance(out[1], DagliteError) and not isinstance(out[1], TaskError)
    assert "out//value.pkl" in str(out[1])
    assert (tmp_path / "out/a/value.pkl").is_file()
    assert (tmp_path / "out/b/value.pkl").is_file()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_dataset_write_that_fails_on_the_coordinator_fails_only_its_item(backend, tmp_path):
    (tmp_path / "out" / "1.pkl").mkdir(parents=True)  # the write of item 1 cannot land
    with session(backend=backend, dataset_store=str(tmp_path)):
        out = map_tasks(saved, [0, 1, 2], return_exceptions=True)
    assert out[0] == 0 and out[2] == 20
    assert isinstance(out[1], StoreError)
    assert "out/1.pkl" in str(out[1])
    assert (tmp_path / "out/0.pkl").is_file() and (tmp_path / "out/2.pkl").is_file()


def test_a_failed_relayed_write_raises_for_its_item_without_return_exceptions(tmp_path):
    (tmp_path / "out" / "1.pkl").mkdir(parents=True)
    with (
        session(backend="process", dataset_store=str(tmp_path)),
        pytest.raises(StoreError, match="out/1.pkl"),
    ):
        map_tasks(saved, [0, 1, 2])


DISK_FULL = textwrap.dedent(
    """
    import resource, sys
    limit = 1 << 20  # a file may not grow past 1 MiB: writing more fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    from daglite import map_tasks, session
    from isolation_tasks import blob
    with session(backend=sys.argv[1], cache_store=sys.argv[2]):
        out = map_tasks(blob, [10, 4 << 20, 20], return_exceptions=True)
        again = map_tasks(blob, [10, 20])  # the session and its workers still work
    print([type(o).__name__ for o in out])
    print(len(out[0]), len(out[2]), [len(v) for v in again])
    print(out[1])
    """
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_disk_full_while_caching_one_item_fails_only_that_item(backend, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
    proc = subprocess.run(
        [sys.executable, "-c", DISK_FULL, backend, str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr
    kinds, sizes, message = proc.stdout.splitlines()[:3]
    assert kinds == "['bytes', 'StoreError', 'bytes']"
    assert sizes == "10 20 [10, 20]"
    assert message.startswith("cannot write key") and "File too large" in message
