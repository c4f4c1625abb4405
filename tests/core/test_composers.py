"""`map_tasks` and `gather_tasks`: zipping, ordering, failures, concurrency, nesting."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from daglite import TaskError
from daglite import gather_tasks
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.events import MapEnded
from daglite.events import MapStarted
from daglite.events import TaskFailed
from daglite.events import TaskStarted
from daglite.settings import DagliteSettings


@task
def add(x: int, y: int) -> int:
    return x + y


@task
async def aadd(x: int, y: int) -> int:
    await asyncio.sleep(0)
    return x + y


@task
def upto(n: int):
    yield from range(n)


@task
async def aupto(n: int):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


BACKENDS = ["inline", "thread"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    with session(backend=request.param):
        yield request.param


# -- map_tasks ----------------------------------------------------------------------------


def test_map_zips_the_iterables(backend):
    assert map_tasks(add, [1, 2, 3], [10, 20, 30]) == [11, 22, 33]


def test_map_stops_at_the_shortest_iterable(backend):
    assert map_tasks(add, [1, 2, 3], [10]) == [11]
    assert map_tasks(add, range(1000), (10 * i for i in range(4))) == [0, 11, 22, 33]


def test_map_keeps_input_order_when_items_finish_out_of_order():
    @task
    def late(i: int) -> int:
        time.sleep(0.002 * (20 - i))  # first items finish last
        return i

    with session(backend="thread", settings=DagliteSettings(max_workers=4)):
        assert map_tasks(late, range(20), chunksize=1) == list(range(20))


def test_map_of_empty_input_is_an_empty_list(backend, events):
    assert map_tasks(add, [], []) == []
    assert map_tasks(add, iter([]), [1]) == []
    assert map_tasks(add) == []


def test_map_runs_async_tasks(backend):
    assert map_tasks(aadd, [1, 2], [3, 4]) == [4, 6]


def test_map_collects_generator_tasks_into_lists(backend):
    assert map_tasks(upto, [0, 1, 3]) == [[], [0], [0, 1, 2]]
    assert map_tasks(aupto, [2, 1]) == [[0, 1], [0]]


def test_map_outside_a_session_uses_the_default_backend():
    assert map_tasks(add, [1], [2]) == [3]
    assert map_tasks(add, [1, 2], [2, 3], backend="thread") == [3, 5]


def test_map_from_async_code_runs_async_tasks():
    async def main():
        return map_tasks(aadd, [1, 2], [1, 1])

    assert asyncio.run(main()) == [2, 3]


def test_map_failure_raises_the_first_failed_item_with_its_index(backend):
    @task
    def fragile(i: int) -> int:
        if i in (3, 5):
            raise ValueError(f"bad {i}")
        return i

    with pytest.raises(TaskError) as info:
        map_tasks(fragile, range(8), chunksize=1)
    assert str(info.value) == "task 'fragile' (map index 3) failed: ValueError: bad 3"
    assert info.value.map_index == 3
    assert isinstance(info.value.__cause__, ValueError)


def test_map_failure_stops_the_remaining_items():
    ran = []

    @task
    def stop_early(i: int) -> int:
        ran.append(i)
        if i == 0:
            raise ValueError("first item fails")
        return i

    with session(backend="inline"), pytest.raises(TaskError):
        map_tasks(stop_early, range(100))
    assert ran == [0]


def test_map_return_exceptions_keeps_going_and_returns_errors_in_place(backend, events):
    @task
    def fragile(i: int) -> int:
        if i % 2:
            raise ValueError(f"odd {i}")
        return i

    results = map_tasks(fragile, range(5), return_exceptions=True)
    assert [r for r in results if not isinstance(r, TaskError)] == [0, 2, 4]
    errors = [r for r in results if isinstance(r, TaskError)]
    assert [(e.map_index, str(e.__cause__)) for e in errors] == [(1, "odd 1"), (3, "odd 3")]
    assert [results.index(e) for e in errors] == [1, 3]


@pytest.mark.parametrize("chunksize", [1, 3, 100])
def test_map_chunksize_does_not_change_results(backend, chunksize):
    assert map_tasks(add, range(10), range(10), chunksize=chunksize) == list(range(0, 20, 2))


@pytest.mark.parametrize("chunksize", [0, -1, 1.5, "2", True])
def test_map_rejects_bad_chunksize(chunksize):
    with pytest.raises(ValueError) as info:
        map_tasks(add, [1], [1], chunksize=chunksize)
    assert str(info.value) == f"chunksize must be a whole number >= 1 or None, not {chunksize!r}"


def test_thread_backend_runs_items_concurrently():
    barrier = threading.Barrier(2, timeout=10)

    @task
    def meet(i: int) -> int:
        barrier.wait()  # only returns once both items are running at the same time
        return i

    with session(backend="thread", settings=DagliteSettings(max_workers=2)):
        assert map_tasks(meet, [0, 1], chunksize=1) == [0, 1]


def test_map_reports_start_and_end(events):
    with session(plugins=[events], backend="thread"):
        map_tasks(add, [1, 2, 3], [1, 2, 3])
    (started,) = events.of_type(MapStarted)
    (ended,) = events.of_type(MapEnded)
    assert (started.name, started.backend, started.total) == ("add", "thread", 3)
    assert (ended.map_id, ended.total, ended.failures) == (started.map_id, 3, 0)
    items = events.of_type(TaskStarted)
    assert sorted(e.map_index for e in items) == [0, 1, 2]
    assert {e.map_id for e in items} == {started.map_id}
    assert {e.backend for e in items} == {"thread"}


def test_map_of_a_generator_input_has_unknown_total(events):
    with session(plugins=[events]):
        assert map_tasks(add, (i for i in range(3)), [0, 0, 0]) == [0, 1, 2]
    (started,) = events.of_type(MapStarted)
    assert started.total is None
    (ended,) = events.of_type(MapEnded)
    assert (ended.total, ended.failures) == (3, 0)


def test_map_backend_comes_from_argument_then_task_then_session(events):
    @task(backend="thread")
    def threaded(x: int) -> int:
        return x

    with session(plugins=[events], backend="inline"):
        map_tasks(add, [1], [1])
        map_tasks(threaded, [1])
        map_tasks(threaded, [1], backend="inline")
    assert [e.backend for e in events.of_type(MapStarted)] == ["inline", "thread", "inline"]


def test_nested_maps_inside_a_mapped_task_run_inline(events):
    @task
    def inner(x: int) -> int:
        return threading.get_ident()

    @task
    def outer(n: int) -> tuple[int, list[int]]:
        return threading.get_ident(), map_tasks(inner, range(n))

    with session(plugins=[events], backend="thread"):
        results = map_tasks(outer, [2, 3], chunksize=1)
    for outer_thread, inner_threads in results:
        assert set(inner_threads) == {outer_thread}  # ran in the outer item's own thread
    backends = [e.backend for e in events.of_type(MapStarted)]
    assert backends == ["thread", "inline", "inline"]
    maps = {e.map_id: e for e in events.of_type(MapStarted)}
    outer_ids = {e.task_id for e in events.of_type(TaskStarted) if e.name == "outer"}
    assert {m.parent_id for m in maps.values() if m.backend == "inline"} == outer_ids


def test_nested_map_with_explicit_backend_on_the_same_pool_does_not_deadlock():
    @task
    def inner(x: int) -> int:
        return x

    @task
    def outer(n: int) -> list[int]:
        return map_tasks(inner, range(n), backend="thread")

    with session(backend="thread", settings=DagliteSettings(max_workers=1)):
        assert map_tasks(outer, [2, 3], chunksize=1) == [[0, 1], [0, 1, 2]]


def test_nested_map_on_the_same_pool_from_a_helper_thread_of_the_item_does_not_deadlock():
    # A timed task runs its attempt in a helper thread, and `gather_tasks(backend=...)` hands
    # the map to one: the nested map must still see that it runs inside the pool.
    @task
    def inner(x: int) -> int:
        return x

    @task(timeout=5)
    def timed(n: int) -> list[int]:
        return map_tasks(inner, range(n), backend="thread")

    @task
    async def gathered(x: int) -> int:
        return x

    @task
    def via_gather(n: int) -> list[int]:
        return asyncio.run(gather_tasks(gathered, range(n), backend="thread"))

    with session(backend="thread", settings=DagliteSettings(max_workers=1)):
        start = time.perf_counter()
        assert map_tasks(timed, [2, 3], chunksize=1) == [[0, 1], [0, 1, 2]]
        assert map_tasks(via_gather, [2, 3], chunksize=1) == [[0, 1], [0, 1, 2]]
        assert time.perf_counter() - start < 10


@pytest.mark.parametrize("composer", ["map_tasks", "gather_tasks"])
@pytest.mark.parametrize("target", [len, lambda x: x, "add", None])
def test_composers_reject_callables_that_are_not_tasks(composer, target):
    with pytest.raises(TypeError) as info:
        if composer == "map_tasks":
            map_tasks(target, [1])
        else:
            asyncio.run(gather_tasks(target, [1]))
    assert str(info.value) == (
        f"`{composer}` requires a `@task`-decorated callable, got {target!r}. "
        "Decorate the function with `@task` first."
    )


# -- gather_tasks -------------------------------------------------------------------------


def test_gather_runs_async_tasks_concurrently():
    @task
    async def handshake(i: int, flags: list[asyncio.Event]) -> int:
        flags[i].set()
        # Waits for the other item: only possible if both run at the same time.
        await asyncio.wait_for(flags[1 - i].wait(), 10)
        return i

    async def main():
        flags = [asyncio.Event(), asyncio.Event()]
        return await gather_tasks(handshake, [0, 1], [flags, flags])

    assert asyncio.run(main()) == [0, 1]


def test_gather_zips_keeps_order_and_handles_empty_input():
    async def main():
        return (
            await gather_tasks(aadd, [1, 2, 3], [10, 20]),
            await gather_tasks(aadd, [], []),
            await gather_tasks(aupto, [2, 0]),
        )

    assert asyncio.run(main()) == ([11, 22], [], [[0, 1], []])


def test_gather_rejects_sync_tasks():
    for sync_task in (add, upto):
        with pytest.raises(TypeError) as info:
            asyncio.run(gather_tasks(sync_task, [1]))
        assert str(info.value) == (
            "`gather_tasks` requires an async `@task`. Use `map_tasks` for sync tasks, or make "
            "your task async."
        )


def test_gather_failure_cancels_the_other_items():
    cancelled = []

    @task
    async def item(i: int) -> int:
        if i == 0:
            await asyncio.sleep(0)
            raise ValueError("first fails")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        return i

    async def main():
        return await gather_tasks(item, range(3))

    start = time.perf_counter()
    with pytest.raises(TaskError, match=r"^task 'item' \(map index 0\) failed: ValueError"):
        asyncio.run(main())
    assert time.perf_counter() - start < 10
    assert sorted(cancelled) == [1, 2]


def test_gather_return_exceptions(events):
    @task
    async def item(i: int) -> int:
        if i == 1:
            raise ValueError("one")
        return i

    async def run():
        return await gather_tasks(item, range(3), return_exceptions=True)

    with session(plugins=[events]):
        results = asyncio.run(run())
    assert results[0] == 0 and results[2] == 2
    assert isinstance(results[1], TaskError) and results[1].map_index == 1
    (ended,) = events.of_type(MapEnded)
    assert (ended.total, ended.failures) == (3, 1)
    (started,) = events.of_type(MapStarted)
    assert started.backend == "asyncio"


def test_gather_with_a_backend_hands_the_items_to_it(events):
    async def main():
        return await gather_tasks(aadd, [1, 2], [1, 1], backend="thread")

    with session(plugins=[events]):
        assert asyncio.run(main()) == [2, 3]
    assert [e.backend for e in events.of_type(MapStarted)] == ["thread"]


def test_inside_a_worker_process_maps_never_fan_out_again(events):
    import attrs

    from daglite.context import bare_runtime
    from daglite.context import current_runtime

    worker = attrs.evolve(bare_runtime(), in_worker=True, emit=events)
    token = current_runtime.set(worker)
    try:
        assert map_tasks(add, [1, 2], [2, 3], backend="thread") == [3, 5]
    finally:
        current_runtime.reset(token)
    assert [e.backend for e in events.of_type(MapStarted)] == ["inline"]


def test_the_error_is_the_first_failing_item_by_index_even_when_a_later_one_fails_first():
    later_failed = threading.Event()
    ran = []

    @task
    def ordered(i: int) -> int:
        if i == 2:
            assert later_failed.wait(10)  # item 5 (another chunk) fails while this one runs
        ran.append(i)
        if i == 5:
            later_failed.set()
            raise ValueError("five")
        if i == 3:
            raise ValueError("three")
        return i

    with (
        session(backend="thread", settings=DagliteSettings(max_workers=3)),
        pytest.raises(TaskError) as info,
    ):
        map_tasks(ordered, range(8), chunksize=2)  # chunks [0, 1] [2, 3] [4, 5] [6, 7]
    assert info.value.map_index == 3
    assert str(info.value.__cause__) == "three"
    assert 3 in ran


def test_gather_reports_the_items_it_cancelled_as_failed(events):
    @task
    async def item(i: int) -> int:
        if i == 0:
            await asyncio.sleep(0)
            raise ValueError("first fails")
        await asyncio.sleep(30)
        return i

    with session(plugins=[events]), pytest.raises(TaskError):
        asyncio.run(gather_tasks(item, range(3)))
    kinds = events.kinds()
    assert kinds.count("TaskStarted") == 3
    assert kinds.count("TaskFailed") == 3
    assert sorted(e.error_type for e in events.of_type(TaskFailed)) == [
        "CancelledError",
        "CancelledError",
        "ValueError",
    ]
    assert kinds[-2] == "MapEnded"


def test_gather_with_wrong_arguments_still_ends_its_map(events):
    @task
    async def pair(a: int, b: int) -> int:
        return a + b

    with (
        session(plugins=[events]),
        pytest.raises(TypeError, match="task 'pair': missing a required argument: 'b'"),
    ):
        asyncio.run(gather_tasks(pair, [1, 2]))
    assert events.kinds()[1:-1] == ["MapStarted", "MapEnded"]


def test_cancelling_gather_with_a_backend_stops_the_map_in_its_thread():
    ran = []

    @task
    async def slow(x: int) -> int:
        ran.append(x)
        await asyncio.sleep(0.05)
        return x

    async def main():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await gather_tasks(slow, range(100), backend="thread")

    with session(settings=DagliteSettings(max_workers=1)):
        asyncio.run(main())
        time.sleep(0.3)  # a map still running would go on starting items meanwhile
        started = len(ran)
    assert 1 <= started < 20
    assert len(ran) == started  # nothing ran after the session ended either


# -- map arguments ---------------------------------------------------------------------------


def test_a_non_iterable_map_argument_is_named():
    with pytest.raises(TypeError) as info:
        map_tasks(add, [1, 2], 5)
    assert str(info.value) == (
        "`map_tasks(add, ...)`: argument 2 (for parameter 'y') is int 5, which is not "
        "iterable; pass one iterable of values per parameter, e.g. a list, or [value] * n to "
        "repeat a constant"
    )
    with pytest.raises(TypeError, match=r"argument 1 \(for parameter 'x'\) is NoneType None"):
        map_tasks(add, None, [1])

    @task
    async def aadd(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError) as info:
        asyncio.run(gather_tasks(aadd, 7, [1]))
    assert str(info.value).startswith(
        "`gather_tasks(aadd, ...)`: argument 1 (for parameter 'x') is int 7, which is not iterable"
    )


def test_lazy_iterables_are_not_consumed_by_the_check():
    assert map_tasks(add, iter([1, 2]), (n * 10 for n in range(2))) == [1, 12]
