"""The ray backend on a real local Ray (127.0.0.1): the daglite run pipeline in Ray workers."""

from __future__ import annotations

import logging
import os

import pytest
import ray_tasks as t

from daglite import BackendError
from daglite import DagliteSettings
from daglite import TaskError
from daglite import TaskTimeoutError
from daglite import map_tasks
from daglite import session
from daglite.errors import SettingsError
from daglite_ray import transport

pytestmark = pytest.mark.timeout(300)

QUIET = DagliteSettings(backend="ray", processors=())


def _kinds(events, kind):
    return [event for event in events if event.kind == kind]


def test_results_come_back_in_order_computed_in_ray_workers(runs_on):
    actors = runs_on()
    with session(settings=QUIET):
        results = map_tasks(t.where, range(200))
        ran_on = set(map_tasks(t.ray_actor, range(20)))
    assert ran_on <= actors if actors else ran_on == {None}  # warm actors, or Ray tasks
    assert ran_on
    assert [x for x, _ in results] == list(range(200))
    pids = {pid for _, pid in results}
    assert os.getpid() not in pids


def test_ray_tasks_are_named_after_the_daglite_task_they_run(runs_on):
    runs_on()
    with session(settings=QUIET):
        plain = map_tasks(t.ray_name, range(20))
        renamed = map_tasks(t.renamed_ray_name, range(20))
        again = map_tasks(t.ray_name, range(20))  # a second map of the task: the same name
    assert set(plain) == set(again) == {"daglite-ray_name"}
    assert set(renamed) == {"daglite-renamed"}  # the daglite task's name, not its function's


def test_waiting_for_the_last_batch_in_flight_keeps_to_the_timeout(local_ray, sent):
    with session(settings=QUIET) as ctx:
        assert map_tasks(t.nap, [1.0]) == [1.0]
        transport = ctx.get_backend("ray").transport
        ticket = transport.submit(sent[0])  # the same batch again, alone in flight
        assert transport.wait(0.05) == []  # it naps 1 s: nothing yet, after the timeout
        ((done, data),) = transport.wait(None)
    assert done == ticket and isinstance(data, bytes)


def test_first_failure_raises_task_error_with_the_original_cause(runs_on):
    runs_on()
    with session(settings=QUIET), pytest.raises(TaskError) as info:
        map_tasks(t.fragile, range(10))
    assert str(info.value) == "task 'fragile' (map index 3) failed: ValueError: bad item 3"
    assert type(info.value.__cause__) is ValueError
    assert info.value.map_index == 3


def test_a_bound_method_task_runs_on_its_instance_in_ray_workers_and_keys_it(local_ray, tmp_path):
    with session(settings=QUIET, cache_store=str(tmp_path)):
        first = map_tasks(t.Scaler(3).where, [1, 2])
        other = map_tasks(t.Scaler(5).where, [1, 2])
        again = map_tasks(t.Scaler(3).where, [1, 2])
    assert [value for _, value in first] == [3, 6]
    assert [value for _, value in other] == [5, 10]  # another instance: not the cache's 3, 6
    assert os.getpid() not in {pid for pid, _ in first}
    assert again == first  # an equal instance: read back from the cache, worker pids too


def test_return_exceptions_gives_errors_in_place(runs_on):
    runs_on()
    with session(settings=QUIET):
        results = map_tasks(t.fragile, range(10), return_exceptions=True)
    errors = [r for r in results if isinstance(r, TaskError)]
    assert [r for r in results if not isinstance(r, TaskError)] == [0, 1, 2, 4, 5, 6, 7, 9]
    assert [type(e.__cause__) for e in errors] == [ValueError, ValueError]
    assert str(errors[1]) == "task 'fragile' (map index 8) failed: ValueError: bad item 8"


def test_task_retries_run_on_the_worker(runs_on, tmp_path):
    runs_on()
    events = []
    with session(settings=QUIET, plugins=[events.append]):
        assert map_tasks(t.flaky, [str(tmp_path)] * 4, range(4)) == [0, 1, 2, 3]
    retried = _kinds(events, "TaskRetried")
    assert sorted(e.map_index for e in retried) == [0, 1, 2, 3]
    assert {e.error_message for e in retried} == {f"first attempt of {x}" for x in range(4)}


def test_a_timeout_stops_a_python_attempt_in_its_worker(local_ray):
    with session(settings=QUIET), pytest.raises(TaskTimeoutError) as info:
        map_tasks(t.spin, range(2))
    assert str(info.value).startswith("task 'spin' (map index 0) timed out after 0.5 s")
    with session(settings=QUIET):  # the cluster is still usable
        assert map_tasks(t.square, range(5)) == [0, 1, 4, 9, 16]


def test_an_attempt_stuck_in_c_code_gets_its_worker_killed(local_ray):
    with session(settings=QUIET):
        results = map_tasks(t.stuck, range(2), return_exceptions=True)
        assert all(isinstance(r, TaskTimeoutError) for r in results)
        assert str(results[1]).startswith("task 'stuck' (map index 1) timed out after 0.5 s")
        # the killed workers are replaced by Ray: the next map runs
        assert [x for x, _ in map_tasks(t.where, range(4))] == [0, 1, 2, 3]


def test_events_are_relayed_with_the_session_ids(runs_on):
    runs_on()
    events = []
    with session(settings=QUIET, plugins=[events.append]) as ctx:
        map_tasks(t.square, range(30), chunksize=7)
    started = _kinds(events, "TaskStarted")
    assert sorted(e.map_index for e in started) == list(range(30))
    assert len(_kinds(events, "TaskSucceeded")) == 30
    assert {e.session_id for e in started} == {ctx.session_id}
    assert {e.backend for e in started} == {"ray"}
    (map_started,) = _kinds(events, "MapStarted")
    assert {e.map_id for e in started} == {map_started.map_id}
    (map_ended,) = _kinds(events, "MapEnded")
    assert (map_ended.total, map_ended.failures) == (30, 0)


def test_events_of_slow_items_arrive_while_they_run(runs_on):
    import time

    runs_on()
    seen = []
    with session(settings=QUIET, plugins=[lambda e: seen.append((time.monotonic(), e))]):
        assert map_tasks(t.slow, range(2)) == [0, 1]
        returned = time.monotonic()
    started = {e.map_index: at for at, e in seen if e.kind == "TaskStarted"}
    succeeded = {e.map_index: at for at, e in seen if e.kind == "TaskSucceeded"}
    assert sorted(started) == sorted(succeeded) == [0, 1]
    assert max(started.values()) < returned - 0.5  # seen while the items were sleeping


def _told(monkeypatch):
    """What streaming batches tell before their result (`started`, `item`), as the
    coordinator reads it (from the real `ray.get`)."""
    import ray

    told = []
    real_get = ray.get

    def reading_get(*args, **kwargs):
        value = real_get(*args, **kwargs)
        if isinstance(value, tuple) and value and value[0] in ("started", "item"):
            told.append(value[:2] if value[0] == "item" else ("started",))
        return value

    monkeypatch.setattr(ray, "get", reading_get)
    return told


def test_a_streamed_batch_tells_its_items_only_once_they_are_slow(runs_on, monkeypatch):
    runs_on()
    told = _told(monkeypatch)
    with session(settings=QUIET, plugins=[lambda event: None]):  # a listener: batches stream
        # the coordinator sends the threshold with each batch; no batch here runs a minute
        monkeypatch.setattr(transport, "TELL_ITEMS_AFTER", 60.0)
        assert map_tasks(t.square, range(2000)) == [x * x for x in range(2000)]
        assert told == []  # quick items: not even that the batch started
        monkeypatch.setattr(transport, "TELL_ITEMS_AFTER", 0.4)
        naps = [0.0, 1.2] + [0.0] * 8  # item 1 runs from about 0 s to 1.2 s
        assert map_tasks(t.nap, naps, chunksize=10) == naps
    # 0.4 s in, the batch says who runs it and the item running then (item 0 went untold),
    # and every item after it
    assert told == [("started",)] + [("item", index) for index in range(1, 10)]


def test_a_batch_busy_sending_events_still_tells_its_items_on_time(runs_on, monkeypatch):
    runs_on()
    told = _told(monkeypatch)
    with session(settings=QUIET, plugins=[lambda event: None]):  # events of every item
        assert map_tasks(t.nap, [0.0001] * 3000, chunksize=3000) == [0.0001] * 3000
    # its events never leave the message queue empty; it says it started all the same
    assert told[0] == ("started",) and len(told) > 1


def test_a_timed_batch_says_at_once_that_it_started(local_ray, monkeypatch):
    told = _told(monkeypatch)
    with session(settings=QUIET):
        assert map_tasks(t.timed_square, [3]) == [9]
    assert told == [("started",)]


def test_log_records_of_workers_reach_the_coordinator(runs_on, caplog):
    runs_on()
    events = []
    with (
        caplog.at_level(logging.WARNING, logger="pipeline.user"),
        session(settings=QUIET, plugins=[events.append]),
    ):
        map_tasks(t.chatty, range(3))
    messages = sorted(r.getMessage() for r in caplog.records if r.name == "pipeline.user")
    assert messages == [f"item {x} on a worker" for x in range(3)]
    logged = [e for e in _kinds(events, "LogRecorded") if "structured" in e.message]
    assert sorted((e.message, e.map_index) for e in logged) == [
        (f"structured {x}", x) for x in range(3)
    ]


def test_nested_maps_run_inline_on_the_worker(runs_on):
    runs_on()
    events = []
    with session(settings=QUIET, plugins=[events.append]):
        assert map_tasks(t.inner_sum, [3, 4]) == [5, 14]
    outer = {e.task_id: e for e in _kinds(events, "TaskStarted") if e.name == "inner_sum"}
    inner = [e for e in _kinds(events, "TaskStarted") if e.name == "square"]
    assert len(inner) == 7
    assert {e.backend for e in inner} == {"inline"}
    assert {e.parent_id for e in inner} == set(outer)


def _counted_puts(monkeypatch):
    """The sizes of what goes into Ray's object store, through the real `ray.put`."""
    import ray

    puts = []
    real_put = ray.put

    def counting_put(value, *args, **kwargs):
        puts.append(len(value))
        return real_put(value, *args, **kwargs)

    monkeypatch.setattr(ray, "put", counting_put)
    return puts


def test_small_payloads_ride_inline_and_a_large_task_goes_through_the_object_store_once(
    local_ray, monkeypatch
):
    from daglite_ray.transport import INLINE_BYTES

    puts = _counted_puts(monkeypatch)
    big = t.with_table(INLINE_BYTES)  # closes over a table larger than INLINE_BYTES
    with session(settings=QUIET):
        assert map_tasks(t.square, range(40), chunksize=1) == [x * x for x in range(40)]
        assert puts == []  # the spec and a small task travel inside each Ray task
        assert map_tasks(big, range(40), chunksize=1) == [x + INLINE_BYTES for x in range(40)]
        assert len(puts) == 1 and puts[0] > INLINE_BYTES  # once per map, not per batch (40)
        assert map_tasks(big, range(10), chunksize=1) == [x + INLINE_BYTES for x in range(10)]
    assert len(puts) == 2  # a new map: its task once more


def test_a_large_argument_repeated_across_items_goes_through_the_object_store_once(
    runs_on, monkeypatch
):
    runs_on()
    from daglite_ray.transport import INLINE_BYTES

    puts = _counted_puts(monkeypatch)
    table = t.Table(2 * INLINE_BYTES)
    with session(settings=QUIET):
        results = map_tasks(t.table_size, range(60), [table] * 60, chunksize=3)  # 20 batches
    assert [value for value, _, _ in results] == [x + 2 * INLINE_BYTES for x in range(60)]
    assert len(puts) == 1 and puts[0] > 2 * INLINE_BYTES  # the table, once (not 20 times)
    loads: dict[int, int] = {}
    for _, pid, loaded in results:  # with the first batch, then as the shared argument
        loads[pid] = max(loads.get(pid, 0), loaded)
    assert max(loads.values()) <= 2


def test_the_application_ray_is_used_and_left_running(local_ray):
    with session(backend="ray"):
        map_tasks(t.square, range(3))
    assert local_ray.is_initialized()


def test_unknown_option_fails_at_session_open():
    settings = DagliteSettings(options={"ray": {"adress": "127.0.0.1:6379"}})
    with pytest.raises(SettingsError) as info, session(backend="ray", settings=settings):
        pass
    assert str(info.value) == (
        "unknown option(s) ['adress'] for plugin 'ray'; known options of 'ray': "
        "['actors', 'address', 'connect_timeout', 'idle_timeout', 'max_retries', 'num_cpus', "
        "'object_store_memory'] "
        "(set in [tool.daglite.options.ray], DAGLITE_RAY_<OPTION> or --option ray.<key>=<value>)"
    )


def test_bad_option_value_fails_at_session_open():
    settings = DagliteSettings(options={"ray": {"max_retries": "three"}})
    with pytest.raises(SettingsError) as info, session(backend="ray", settings=settings):
        pass
    assert str(info.value) == (
        "invalid value 'three' for option 'max_retries' of plugin 'ray': expected an integer"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "maybe",
            "invalid value 'maybe' for option 'actors' of plugin 'ray': expected true or false",
        ),
        (2, "invalid value 2 for 'actors' in [tool.daglite.options.ray]: true or false"),
    ],
)
def test_a_bad_actors_option_fails_at_session_open(value, message):
    settings = DagliteSettings(options={"ray": {"actors": value}})
    with pytest.raises(SettingsError) as info, session(backend="ray", settings=settings):
        pass
    assert str(info.value) == message


def test_out_of_range_option_fails_at_session_open():
    settings = DagliteSettings(options={"ray": {"max_retries": -5}})
    with pytest.raises(SettingsError) as info, session(backend="ray", settings=settings):
        pass
    assert str(info.value) == (
        "invalid value -5 for 'max_retries' in [tool.daglite.options.ray]: a whole number > -1"
    )


@pytest.mark.parametrize("value", [0, -1.5])
def test_a_bad_idle_timeout_fails_at_session_open(value):
    settings = DagliteSettings(options={"ray": {"idle_timeout": value}})
    with pytest.raises(SettingsError) as info, session(backend="ray", settings=settings):
        pass
    assert str(info.value) == (
        f"invalid value {value!r} for 'idle_timeout' in [tool.daglite.options.ray]: "
        "a number of seconds > 0"
    )


def test_unreachable_address_fails_at_session_open(free_port):
    address = f"127.0.0.1:{free_port}"
    settings = DagliteSettings(options={"ray": {"address": address, "connect_timeout": 2}})
    with pytest.raises(BackendError) as info, session(backend="ray", settings=settings):
        pass
    message = str(info.value)
    assert message.startswith(f"cannot reach Ray at {address} (ConnectionRefusedError")
    assert "`ray status --address ADDRESS`" in message
    assert "RAY_ADDRESS or `address` in [tool.daglite.options.ray]" in message


def test_unreachable_address_from_the_environment(free_port, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{free_port}")
    with pytest.raises(BackendError) as info, session(backend="ray"):
        pass
    assert str(info.value).startswith(f"cannot reach Ray at 127.0.0.1:{free_port} ")


def test_an_address_without_a_port_is_explained():
    settings = DagliteSettings(options={"ray": {"address": "head-node"}})
    with pytest.raises(BackendError) as info, session(backend="ray", settings=settings):
        pass
    assert str(info.value).startswith("Ray address 'head-node' has no host and port; expected")
