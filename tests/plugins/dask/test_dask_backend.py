"""The dask backend on a real LocalCluster: the daglite run pipeline on dask workers."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

import pytest

import daglite
from daglite import BackendError
from daglite import TaskError
from daglite import TaskTimeoutError
from daglite import gather_tasks
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite import workflow
from daglite_dask import DaskBackend


@task
def square(x):
    return x * x


@task
def where(x):
    return os.getpid()


@task
def fragile(x):
    if x % 5 == 3:
        raise ValueError(f"bad item {x}")
    return x


@task
def count_up(n):
    yield from range(n)


@task
async def double_async(x):
    await asyncio.sleep(0)
    return 2 * x


@task(retries=2)
def flaky(path, x):
    # Fails on the first attempt of each item, succeeds on the second (state in a file).
    marker = f"{path}/{x}"
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        raise OSError(f"first attempt of {x}")
    return x


@task(timeout=0.3)
def spin(x):
    end = time.monotonic() + 30
    while time.monotonic() < end:
        pass
    return x


@task(timeout=0.3)
def stuck(x):
    time.sleep(30)  # in C: the abandoned attempt cannot be stopped inside the worker
    return x


@task(timeout=1.0)
def quick(x):
    time.sleep(0.05)
    return x


@task
def slow(x):
    time.sleep(1.0)
    return x


@task
def chatty(x):
    logging.getLogger("pipeline.user").warning("item %s on a worker", x)
    return x


@task
def inner_sum(x):
    return sum(map_tasks(square, range(x)))


@workflow
def pipeline(n):
    return map_tasks(square, range(n))


class Recorder:
    """A hook plugin that writes where it ran into a directory (it runs on the workers)."""

    def __init__(self, folder):
        self.folder = folder

    @daglite.hookimpl
    def before_task(self, metadata, inputs):
        with open(f"{self.folder}/{metadata.map_index}", "w") as fh:
            fh.write(f"{os.getpid()} {metadata.backend} {inputs['x']}")


class Unpicklable:
    def __init__(self):
        self.lock = threading.Lock()

    @daglite.hookimpl
    def before_task(self, metadata, inputs):
        pass


def test_results_come_back_in_input_order(dask_settings):
    with session(settings=dask_settings):
        assert map_tasks(square, range(200)) == [x * x for x in range(200)]
        assert map_tasks(square, range(7), chunksize=1) == [x * x for x in range(7)]
        assert map_tasks(square, iter(range(50))) == [x * x for x in range(50)]


def test_items_run_in_worker_processes(dask_settings):
    with session(settings=dask_settings):
        pids = map_tasks(where, range(8), chunksize=1)
    assert os.getpid() not in pids


def test_generator_and_async_tasks(dask_settings):
    with session(settings=dask_settings):
        assert map_tasks(count_up, [0, 2, 3]) == [[], [0, 1], [0, 1, 2]]
        assert map_tasks(double_async, range(5)) == [0, 2, 4, 6, 8]


def test_first_failure_raises_task_error_with_cause(dask_settings):
    with session(settings=dask_settings), pytest.raises(TaskError) as info:
        map_tasks(fragile, range(20), chunksize=4)
    assert str(info.value) == "task 'fragile' (map index 3) failed: ValueError: bad item 3"
    assert info.value.map_index == 3
    assert isinstance(info.value.__cause__, ValueError)


def test_return_exceptions_keeps_going(dask_settings):
    with session(settings=dask_settings):
        results = map_tasks(fragile, range(10), return_exceptions=True, chunksize=3)
    assert [r for r in results if not isinstance(r, TaskError)] == [0, 1, 2, 4, 5, 6, 7, 9]
    errors = [r for r in results if isinstance(r, TaskError)]
    assert [e.map_index for e in errors] == [3, 8]
    assert str(errors[1]) == "task 'fragile' (map index 8) failed: ValueError: bad item 8"


def test_events_are_relayed_to_the_coordinator(dask_settings):
    events = []
    with session(settings=dask_settings, plugins=[events.append]) as ctx:
        map_tasks(square, range(30), chunksize=7)
    started = [e for e in events if e.kind == "TaskStarted"]
    succeeded = [e for e in events if e.kind == "TaskSucceeded"]
    assert sorted(e.map_index for e in started) == list(range(30))
    assert len(succeeded) == 30
    assert {e.session_id for e in started} == {ctx.session_id}
    assert {e.backend for e in started} == {"dask"}
    (map_started,) = [e for e in events if e.kind == "MapStarted"]
    assert {e.map_id for e in started} == {map_started.map_id}
    (map_ended,) = [e for e in events if e.kind == "MapEnded"]
    assert (map_ended.total, map_ended.failures) == (30, 0)


def test_a_processor_gets_exactly_the_events_it_asked_for_from_dask_workers(dask_settings):
    from daglite.testing import EventCapture

    wanted = {"MapStarted", "MapEnded", "SessionEnded"}
    picky = EventCapture(kinds=wanted)
    everything = EventCapture()
    with session(settings=dask_settings, plugins=[picky, everything]):
        map_tasks(square, range(30), chunksize=7)
    assert [e.kind for e in picky.events] == ["MapStarted", "MapEnded", "SessionEnded"]
    assert [e for e in everything.events if e.kind in wanted] == picky.events
    _, ended, session_end = picky.events
    assert (ended.done, ended.failures, ended.total) == (30, 0, 30)
    assert ended.done == sum(e.kind == "TaskSucceeded" for e in everything.events)
    assert session_end.succeeded == 30


def test_events_of_slow_items_arrive_while_they_run(dask_settings):
    seen = []
    with session(settings=dask_settings, plugins=[lambda e: seen.append((time.monotonic(), e))]):
        assert map_tasks(slow, range(2)) == [0, 1]
        returned = time.monotonic()
    started = {e.map_index: t for t, e in seen if e.kind == "TaskStarted"}
    succeeded = {e.map_index: t for t, e in seen if e.kind == "TaskSucceeded"}
    assert sorted(started) == sorted(succeeded) == [0, 1]
    assert all(started[i] < succeeded[i] for i in (0, 1))
    assert max(started.values()) < returned - 0.5  # seen while the items were sleeping


def test_retries_run_on_the_worker(dask_settings, tmp_path):
    events = []
    with session(settings=dask_settings, plugins=[events.append]):
        assert map_tasks(flaky, [str(tmp_path)] * 4, range(4)) == [0, 1, 2, 3]
    retried = [e for e in events if e.kind == "TaskRetried"]
    assert sorted(e.map_index for e in retried) == [0, 1, 2, 3]
    assert {e.error_message for e in retried} == {f"first attempt of {x}" for x in range(4)}


def test_timeouts_are_enforced_on_the_worker(dask_settings):
    with session(settings=dask_settings), pytest.raises(TaskTimeoutError) as info:
        map_tasks(spin, range(2), chunksize=1)
    assert "task 'spin' (map index 0) timed out after 0.3 s" in str(info.value)


def test_attempt_stuck_in_c_code_gets_its_worker_restarted(cluster, dask_settings):
    from distributed import Client

    with Client(cluster, set_as_default=False) as client:
        before = set(client.run(os.getpid).values())
        with session(settings=dask_settings), pytest.raises(TaskTimeoutError) as info:
            map_tasks(stuck, [1])
        client.wait_for_workers(2, timeout=60)
        after = set(client.run(os.getpid).values())
    # Timed out in the worker (the attempt is abandoned there), or, when the worker did not
    # answer within the grace period, by the coordinator: either way its worker is replaced.
    assert str(info.value).startswith("task 'stuck' (map index 0) timed out after 0.3 s")
    assert len(before - after) == 1


def test_timed_items_are_timed_from_their_start_not_their_wait_in_the_queue(cluster, dask_settings):
    from distributed import Client

    with Client(cluster, set_as_default=False) as other:
        busy = other.map(time.sleep, [3, 3], pure=False)  # both workers, for 3 s
        deadline = time.monotonic() + 30
        while sum(map(len, other.processing().values())) < 2:  # both naps are on a worker
            assert time.monotonic() < deadline, "the cluster never took the naps"
            time.sleep(0.01)
        start = time.monotonic()
        with session(settings=dask_settings):
            assert map_tasks(quick, range(4)) == [0, 1, 2, 3]
        assert time.monotonic() - start > 2  # waited longer than timeout + grace
        other.gather(busy)


def test_worker_log_records_reach_the_coordinator(dask_settings, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.user"), session(settings=dask_settings):
        map_tasks(chatty, range(3))
    messages = sorted(r.getMessage() for r in caplog.records if r.name == "pipeline.user")
    assert messages == [f"item {x} on a worker" for x in range(3)]


def test_hooks_run_on_the_workers(dask_settings, tmp_path):
    with session(settings=dask_settings, plugins=[Recorder(str(tmp_path))]):
        map_tasks(square, range(6), chunksize=2)
    lines = [(tmp_path / str(i)).read_text().split() for i in range(6)]
    assert {pid for pid, _, _ in lines}.isdisjoint({str(os.getpid())})
    assert [(backend, x) for _, backend, x in lines] == [("dask", str(i)) for i in range(6)]


def test_unpicklable_hook_plugin_is_named(dask_settings):
    plugin = Unpicklable()
    with session(settings=dask_settings, plugins=[plugin]), pytest.raises(BackendError) as info:
        map_tasks(square, range(3))
    assert str(info.value) == (
        f"hook plugin {plugin!r} cannot be sent to a worker process: "
        "cannot pickle '_thread.lock' object"
    )


def test_nested_maps_run_inline_on_the_worker(dask_settings):
    events = []
    with session(settings=dask_settings, plugins=[events.append]):
        assert map_tasks(inner_sum, [3, 4]) == [5, 14]
    outer = {e.task_id: e for e in events if e.kind == "TaskStarted" and e.name == "inner_sum"}
    inner = [e for e in events if e.kind == "TaskStarted" and e.name == "square"]
    assert len(inner) == 7
    assert {e.backend for e in inner} == {"inline"}
    assert {e.parent_id for e in inner} == set(outer)


def test_map_inside_a_workflow_has_the_workflow_as_parent(dask_settings):
    events = []
    with session(settings=dask_settings, plugins=[events.append]):
        assert pipeline(4) == [0, 1, 4, 9]
    (wf,) = [e for e in events if e.kind == "WorkflowStarted"]
    started = [e for e in events if e.kind == "TaskStarted"]
    assert {e.parent_id for e in started} == {wf.workflow_id}


def test_gather_tasks_with_dask_backend(dask_settings):
    async def main():
        async with daglite.async_session(settings=dask_settings):
            return await gather_tasks(double_async, range(4), backend="dask")

    assert asyncio.run(main()) == [0, 2, 4, 6]


def test_the_application_client_is_used_and_left_open(cluster):
    from distributed import Client

    with Client(cluster) as client:
        with session(backend="dask") as ctx:
            assert map_tasks(square, range(5)) == [0, 1, 4, 9, 16]
            backend = ctx.get_backend()
            assert backend.client is client
        assert client.status == "running"
        assert backend._client is None


def test_address_from_the_environment(cluster, monkeypatch):
    monkeypatch.setenv("DAGLITE_DASK_ADDRESS", cluster.scheduler_address)
    with session(backend="dask") as ctx:
        assert map_tasks(square, range(3)) == [0, 1, 4]
        client = ctx.get_backend().client
        assert client.scheduler.address == cluster.scheduler_address
    assert client.status == "closed"


def test_unreachable_scheduler_fails_at_session_open(free_port):
    address = f"tcp://127.0.0.1:{free_port}"
    settings = daglite.DagliteSettings(options={"dask": {"address": address}})
    with pytest.raises(BackendError) as info, session(backend="dask", settings=settings):
        pass  # pragma: no cover - never reached
    message = str(info.value)
    assert message.startswith(f"cannot reach the dask scheduler at {address} (ConnectionRefused")
    assert "check that `dask scheduler` is running there" in message


def test_unreachable_scheduler_from_the_environment(free_port, monkeypatch):
    monkeypatch.setenv("DAGLITE_DASK_ADDRESS", f"127.0.0.1:{free_port}")
    with (
        pytest.raises(BackendError, match=f"at tcp://127.0.0.1:{free_port} "),
        session(backend="dask"),
    ):
        pass  # pragma: no cover - never reached


def test_unreachable_scheduler_at_first_map_outside_a_dask_session(free_port):
    address = f"tcp://127.0.0.1:{free_port}"
    settings = daglite.DagliteSettings(
        options={"dask": {"address": address, "connect_timeout": 0.5}}
    )
    with session(settings=settings), pytest.raises(BackendError) as info:
        map_tasks(square, range(3), backend="dask")
    assert str(info.value).startswith(f"cannot connect to the dask scheduler at {address} (")


def test_address_without_port_is_rejected():
    settings = daglite.DagliteSettings(options={"dask": {"address": "tcp://scheduler-host"}})
    with pytest.raises(BackendError) as info:
        DaskBackend.check(settings)
    assert str(info.value) == (
        "dask scheduler address 'tcp://scheduler-host' has no host and port; "
        "expected e.g. tcp://10.0.0.5:8786"
    )


def test_unknown_option_is_rejected():
    settings = daglite.DagliteSettings(options={"dask": {"adress": "tcp://x:1"}})
    with pytest.raises(daglite.SettingsError) as info:
        session(backend="dask", settings=settings).__enter__()
    assert str(info.value) == (
        "unknown option(s) ['adress'] for plugin 'dask'; known options of 'dask': ['address', "
        "'connect_timeout', 'memory_limit', 'n_workers', 'threads_per_worker'] (set in "
        "[tool.daglite.options.dask], DAGLITE_DASK_<OPTION> or --option dask.<key>=<value>)"
    )


def test_options_must_be_a_table():
    with pytest.raises(ValueError, match=r"options of plugin 'dask' must be a table \(\[tool"):
        daglite.DagliteSettings(options={"dask": "tcp://x:1"})


class Scaler:
    """An object whose method is a task: bound, it travels with each item to the workers."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    @task
    def where(self, x: int) -> tuple[int, int]:
        return os.getpid(), self.factor * x


def test_a_bound_method_task_runs_on_its_instance_on_the_cluster(dask_settings):
    with session(settings=dask_settings):
        results = map_tasks(Scaler(3).where, [1, 2, 3])
    assert [value for _, value in results] == [3, 6, 9]
    assert os.getpid() not in {pid for pid, _ in results}
