"""Packing and relaying: what cannot be pickled fails before any worker starts, and
per-item isolation: whatever fails while finishing one map item is that item's error.

On every core backend, with `return_exceptions=True`, a failed cache write (a real file
size limit), a bad dataset key and a relayed dataset write that fails on the coordinator
each become the error of their item only: never a dead worker nor an error for the whole
map (an exception whose class cannot be unpickled: `test_worker.py`).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import daglite
from daglite import BackendError
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.errors import DagliteError
from daglite.errors import StoreError
from daglite.errors import TaskError

from ..support.isolation_tasks import named
from ..support.isolation_tasks import saved
from ..support.process_tasks import fetch
from ..support.process_tasks import square

pytestmark = pytest.mark.timeout(120)

BACKENDS = ["inline", "thread", "process"]
HERE = Path(__file__).parent.parent / "support"  # the helper task modules the scripts import


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


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_item_whose_write_fails_is_reported_failed_and_never_succeeded_or_saved(
    backend, tmp_path
):
    from daglite.testing import EventCapture

    (tmp_path / "out" / "1.pkl").mkdir(parents=True)  # the write of item 1 cannot land
    capture = EventCapture()
    with session(backend=backend, dataset_store=str(tmp_path), plugins=[capture]):
        map_tasks(saved, [0, 1, 2], return_exceptions=True)
    of_item = [e for e in capture.events if getattr(e, "map_index", None) == 1]
    kinds = [e.kind for e in of_item]
    assert "TaskSucceeded" not in kinds and "DatasetSaved" not in kinds, kinds
    (failed,) = [e for e in of_item if e.kind == "TaskFailed"]
    assert failed.error_type == "StoreError" and "out/1.pkl" in failed.error_message
    assert failed.name == "saved" and failed.traceback
    saved_keys = sorted(e.key for e in capture.events if e.kind == "DatasetSaved")
    assert saved_keys == ["out/0.pkl", "out/2.pkl"]


def test_the_default_log_names_an_item_whose_relayed_write_failed(tmp_path):
    script = tmp_path / "flow.py"
    script.write_text(
        "import sys\n"
        "from daglite import map_tasks, session\n"
        "from isolation_tasks import saved\n"
        "with session(backend='process', dataset_store=sys.argv[1]):\n"
        "    map_tasks(saved, [0, 1, 2], return_exceptions=True)\n"
    )
    (tmp_path / "out" / "1.pkl").mkdir(parents=True)
    support = Path(__file__).parents[1] / "support"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGLITE_")}  # defaults
    env.update(PYTHONPATH=str(support), DAGLITE_LOG_FORMAT="json")
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    (failed,) = [line for line in lines if line["event"] == "task failed"]
    assert (failed["task"], failed["map_index"]) == ("saved[1]", 1)
    assert failed["error"].startswith("StoreError: ") and "out/1.pkl" in failed["error"]
    (ended,) = [line for line in lines if line["event"] == "map finished"]
    assert (ended["done"], ended["failed"], ended["total"]) == (2, 1, 3)


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


# -- sending things: what cannot be pickled fails before any worker starts ------------------


@pytest.mark.timeout(60)
def test_unpicklable_argument_fails_before_any_worker_starts():
    with session(backend="process") as ctx:
        with pytest.raises(BackendError) as info:
            map_tasks(fetch, [threading.Lock()], [1])
        assert str(info.value) == (
            "argument 'client' of task 'fetch' (map index 0) cannot be sent to a worker "
            "process: cannot pickle '_thread.lock' object"
        )
        assert ctx.get_backend("process").pool.pids == []
        assert map_tasks(fetch, [1], [2]) == [2]  # still usable


@pytest.mark.timeout(60)
def test_unpicklable_task_fails_before_any_worker_starts():
    lock = threading.Lock()

    @task
    def locked(x: int) -> int:
        with lock:
            return x

    with session(backend="process") as ctx:
        with pytest.raises(BackendError) as info:
            map_tasks(locked, [1])
        assert str(info.value) == (
            "task 'locked' cannot be sent to a worker process: cannot pickle '_thread.lock' object"
        )
        assert ctx.get_backend("process").pool.pids == []


@pytest.mark.timeout(60)
def test_unpicklable_hook_plugin_is_named():
    class LockedHook:
        lock = threading.Lock()

        def __init__(self):
            self.lock = threading.Lock()

        @daglite.hookimpl
        def before_task(self, metadata, inputs):
            pass

    match = r"hook plugin .*LockedHook.* cannot be sent to a worker process: cannot pickle"
    with (
        session(backend="process", plugins=[LockedHook()]),
        pytest.raises(BackendError, match=match),
    ):
        map_tasks(square, [1])


@pytest.mark.timeout(60)
def test_task_that_cannot_be_imported_in_the_worker(tmp_path, monkeypatch):
    module = tmp_path / "vanishing_tasks.py"
    module.write_text("from daglite import task\n\n@task\ndef gone(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import vanishing_tasks

    module.unlink()
    with session(backend="process"), pytest.raises(BackendError) as info:
        map_tasks(vanishing_tasks.gone, [1])
    message = str(info.value)
    assert message.startswith("task 'gone' could not be loaded in worker process ")
    assert "ModuleNotFoundError: No module named 'vanishing_tasks'" in message


# -- shared arguments ---------------------------------------------------------------------


def test_a_large_argument_repeated_across_items_is_pickled_once_per_map():
    from daglite import DagliteSettings
    from daglite.backends.packing import SHARED_BYTES

    from ..support.process_tasks import PICKLED
    from ..support.process_tasks import Table
    from ..support.process_tasks import table_size

    table = Table(SHARED_BYTES)
    PICKLED.clear()
    with session(backend="process", settings=DagliteSettings(max_workers=2)):
        results = map_tasks(table_size, range(100), [table] * 100, chunksize=5)  # 20 batches
    assert [value for value, _, _ in results] == [x + SHARED_BYTES for x in range(100)]
    # Pickled with the first batch's items, then once more as the shared argument: not 20.
    assert len(PICKLED) == 2
    loads: dict[int, int] = {}
    for _, pid, loaded in results:  # unpickled at most twice per worker (same reasons)
        loads[pid] = max(loads.get(pid, 0), loaded)
    assert max(loads.values()) <= 2


def test_a_large_value_repeated_in_a_map_of_one_iterable_is_shared():
    from daglite import DagliteSettings
    from daglite.backends.packing import SHARED_BYTES

    from ..support.process_tasks import PICKLED
    from ..support.process_tasks import Table
    from ..support.process_tasks import table_rows

    table = Table(SHARED_BYTES)
    PICKLED.clear()
    with session(backend="process", settings=DagliteSettings(max_workers=2)):
        results = map_tasks(table_rows, [table] * 100, chunksize=5)  # 20 batches
    assert [value for value, _, _ in results] == [SHARED_BYTES] * 100
    assert len(PICKLED) == 2  # with the first batch's values, then as the shared argument


@pytest.mark.parametrize("kind", ["list", "tuple", "range", "iterator", "generator"])
def test_a_map_of_one_iterable_sends_its_values_without_a_tuple_each(kind):
    from daglite import DagliteSettings

    numbers = {
        "list": list(range(300)),
        "tuple": tuple(range(300)),
        "range": range(300),
        "iterator": iter(range(300)),
        "generator": (x for x in range(300)),
    }[kind]
    sent = []
    with session(backend="process", settings=DagliteSettings(max_workers=2)) as ctx:
        transport = ctx.get_backend("process").transport
        submit = transport.submit

        def watched(request):
            sent.append(pickle.loads(request.items))
            return submit(request)

        transport.submit = watched
        assert map_tasks(square, numbers) == [x * x for x in range(300)]
    values = [value for indexes, args, *_ in sent for value in args]
    assert sorted(values) == list(range(300))  # the values themselves, not 1-tuples
    assert all(single for *_, single in sent)


def test_only_the_same_large_object_in_a_row_is_shared():
    from daglite.backends.packing import SHARED_BYTES
    from daglite.backends.packing import SharedArgs
    from daglite.backends.packing import pack_items
    from daglite.backends.transport import SharedArg

    big, small = bytes(SHARED_BYTES), [1, 2, 3]
    shared = SharedArgs()
    shared.scan([(0, big, small, bytes(SHARED_BYTES))])  # the first item's arguments
    shared.scan([(1, big, small, bytes(SHARED_BYTES))])  # a copy is not the same object
    assert len(shared.entries) == 1
    key, data = shared.entries[0]
    assert pickle.loads(data) == big
    swapped = shared.swap([(2, big, small)])
    assert isinstance(swapped[0][1], SharedArg) and swapped[0][1].key == key
    assert swapped[0][2] is small
    assert len(pack_items(square, [(2, (big,))], shared)) < SHARED_BYTES
    assert len(pack_items(square, [(2, (big,))])) > SHARED_BYTES


def test_a_shared_argument_a_worker_was_not_sent_is_named():
    from daglite.backends.transport import load_shared

    with pytest.raises(RuntimeError) as info:
        load_shared((("k1", None),))
    assert str(info.value) == f"worker {os.getpid()} has no value of shared argument k1"


@pytest.mark.timeout(60)
def test_an_unpicklable_argument_is_named_by_its_map_index_in_a_batch():
    with session(backend="process"), pytest.raises(BackendError) as info:
        map_tasks(fetch, [1, 2, 3, threading.Lock()], [1] * 4, chunksize=4)
    assert str(info.value) == (
        "argument 'client' of task 'fetch' (map index 3) cannot be sent to a worker "
        "process: cannot pickle '_thread.lock' object"
    )


def test_items_travel_as_indexes_and_arguments_side_by_side():
    from daglite.backends.packing import pack_items

    consecutive = pickle.loads(pack_items(square, [(3, (3,)), (4, (4,)), (5, (5,))]))
    assert consecutive == (range(3, 6), [(3,), (4,), (5,)])  # a range: a few bytes
    rerun = pickle.loads(pack_items(square, [(0, (0,)), (2, (2,))]))  # re-run after a loss
    assert rerun == ([0, 2], [(0,), (2,)])
