"""The transport contract of process-style backends, through a third party's `TransportBackend`.

The toy backend below is written as a third party would: it imports only `daglite.plugin`
(and the standard library), and runs its batches in real worker processes.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Hashable
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import CancelledError
from concurrent.futures import Future
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import wait
from concurrent.futures.process import BrokenProcessPool

import pytest

from daglite import BackendError
from daglite import TaskError
from daglite import map_tasks
from daglite import session
from daglite.events import TaskStarted
from daglite.plugin import BatchRequest
from daglite.plugin import DagliteSettings
from daglite.plugin import EarlyEvents
from daglite.plugin import TransportBackend
from daglite.plugin import WorkerLost
from daglite.plugin import run_batch
from daglite.testing import override_plugin

from ..support.plugin_api_tasks import Pinged
from ..support.plugin_api_tasks import exit_at
from ..support.plugin_api_tasks import fail_at
from ..support.plugin_api_tasks import ping
from ..support.plugin_api_tasks import run_batch_of_nothing
from ..support.plugin_api_tasks import where

Answer = bytes | WorkerLost | EarlyEvents


class PoolTransport:
    """A `Transport` over a spawn `ProcessPoolExecutor`, as a plugin author would write it."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        self.pending: set[Future[bytes]] = set()
        self.pools = 0

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            context = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(self.workers, mp_context=context)
            self.pools += 1
        return self.pool

    def submit(self, request: BatchRequest) -> Hashable:
        future = self._pool().submit(run_batch, request)
        self.pending.add(future)
        return future

    def wait(self, timeout: float | None) -> list[tuple[Hashable, Answer]]:
        if not self.pending:
            return []
        done, self.pending = wait(self.pending, timeout, return_when=FIRST_COMPLETED)
        answers: list[tuple[Hashable, Answer]] = []
        for future in done:
            try:
                answers.append((future, future.result()))
            except (BrokenProcessPool, CancelledError):  # the pool broke as a whole
                answers.append((future, WorkerLost(certain=False, detail="the pool broke")))
                self._drop()
        return answers

    def _drop(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def kill(self, ticket: Hashable) -> None:
        self.pending.discard(ticket)  # type: ignore[arg-type]
        self._drop()

    def abort(self) -> None:
        self.pending.clear()
        self._drop()

    def close(self) -> None:
        self.pending.clear()
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


class PoolBackend(TransportBackend):
    """The whole backend: say how to build the transport."""

    def make_transport(self) -> PoolTransport:
        return PoolTransport(self.settings.max_workers or 2)


@pytest.fixture
def pool_backend():
    with override_plugin("backend", "toy-pool", PoolBackend):
        yield "toy-pool"


def test_a_third_party_transport_backend_runs_a_real_map(pool_backend, events):
    settings = DagliteSettings(max_workers=2)
    with session(backend=pool_backend, plugins=[events], settings=settings) as ctx:
        out = map_tasks(where, range(20))
        assert map_tasks(ping, range(3)) == [True] * 3
        backend = ctx.get_backend()
        assert isinstance(backend, PoolBackend)
        transport = backend.transport
        assert isinstance(transport, PoolTransport) and transport.pools == 1
    assert all(pid != os.getpid() and flag is True for pid, flag in out)
    assert len({pid for pid, _ in out}) <= 2
    started = [e for e in events.of_type(TaskStarted) if e.name.startswith("where")]
    assert sorted(e.map_index for e in started) == list(range(20))
    assert {e.backend for e in started} == {"toy-pool"}
    assert len(events.of_type(Pinged)) == 6
    assert transport.pool is None  # the session closed it


def test_a_third_party_transport_backend_reports_the_first_failure(pool_backend):
    with session(backend=pool_backend, settings=DagliteSettings(max_workers=2)):
        with pytest.raises(TaskError, match=r"item 4 is bad") as caught:
            map_tasks(fail_at, range(10), [4] * 10)
        assert caught.value.map_index == 4
        out = map_tasks(fail_at, range(6), [2] * 6, return_exceptions=True)
    assert out[:2] + out[3:] == [0, 1, 3, 4, 5] and isinstance(out[2], TaskError)


def test_a_third_party_transport_backend_names_the_item_that_kills_its_worker(pool_backend):
    with session(backend=pool_backend, settings=DagliteSettings(max_workers=2)) as ctx:
        out = map_tasks(exit_at, range(6), [3] * 6, return_exceptions=True)
        assert map_tasks(where, range(2))[0][1] is True  # a new pool took over
        pools = ctx.get_backend().transport.pools  # type: ignore[attr-defined]
    assert out[:3] + out[4:] == [0, 10, 20, 40, 50]
    assert isinstance(out[3], BackendError)
    assert str(out[3]) == (
        "worker process died running task 'exit_at' (map index 3): an unknown exit status; "
        "the pool broke"
    )
    assert pools >= 2


def test_a_transport_backend_without_make_transport_says_so():
    class Incomplete(TransportBackend):
        pass

    with (
        override_plugin("backend", "incomplete", Incomplete),
        session(backend="incomplete"),
        pytest.raises(NotImplementedError, match=r"^Incomplete does not implement "),
    ):
        map_tasks(where, range(2))


# -- a batch's result on the wire ---------------------------------------------------------


def _travel(result):
    import pickle

    import cloudpickle

    return pickle.loads(cloudpickle.dumps(result))


def test_a_batch_result_of_successes_travels_compact_and_reads_the_same():
    from daglite.backends.transport import BatchResult

    outcomes = [(10, True, "a"), (11, True, None), (12, True, ("c",))]
    result = BatchResult(outcomes=list(outcomes))
    assert result.compact(range(10, 16))  # the batch stopped after its first three items
    assert (result.indexes, result.values) == (range(10, 13), ["a", None, ("c",)])
    back = _travel(result)
    assert (back.indexes, back.values, back.size) == (range(10, 13), ["a", None, ("c",)], 3)
    assert back.outcomes == outcomes
    back.outcomes = [(10, True, "x")]  # setting outcomes drops the compact form
    assert (back.indexes, back.values, back.size) == (None, None, 1)

    rerun = BatchResult(outcomes=[(0, True, 0), (2, True, 20), (5, True, 50)])
    assert rerun.compact([0, 2, 5])  # re-run items (not consecutive) have their indexes listed
    assert _travel(rerun).outcomes == [(0, True, 0), (2, True, 20), (5, True, 50)]


@pytest.mark.parametrize(
    ("outcomes", "indexes"),
    [
        ([(0, True, 0), (1, False, ValueError("bad"))], range(2)),  # a failure
        ([], range(3)),  # nothing ran
        ([(1, True, 1)], range(3)),  # not the batch's first item
        ([(0, True, 0), (1, True, 1)], range(1)),  # more outcomes than items
    ],
    ids=["failure", "empty", "not-first", "too-many"],
)
def test_a_batch_result_that_is_not_all_successes_of_its_items_travels_whole(outcomes, indexes):
    from daglite.backends.transport import BatchResult

    result = BatchResult(outcomes=list(outcomes))
    assert not result.compact(indexes)
    assert (result.indexes, result.values, result.size) == (None, None, len(outcomes))
    back = _travel(result)
    assert [(i, ok) for i, ok, _ in back.outcomes] == [(i, ok) for i, ok, _ in outcomes]


class DroppingTransport(PoolTransport):
    """A broken plugin: its workers run every batch with its items dropped."""

    def submit(self, request: BatchRequest) -> Hashable:
        future = self._pool().submit(run_batch_of_nothing, request)
        self.pending.add(future)
        return future


class DroppingBackend(TransportBackend):
    def make_transport(self) -> DroppingTransport:
        return DroppingTransport(self.settings.max_workers or 2)


def test_a_worker_that_runs_none_of_its_items_is_an_error_not_a_loop():
    dropping = override_plugin("backend", "toy-dropping", DroppingBackend)
    one = DagliteSettings(max_workers=1)  # one batch of the three items: one answer first
    with (
        dropping,
        session(backend="toy-dropping", settings=one),
        pytest.raises(BackendError) as caught,
    ):
        map_tasks(ping, range(3))
    assert str(caught.value) == (
        "a worker of backend 'toy-dropping' sent back none of the 3 items of a batch of "
        "task 'ping' (map index 0 on): does its transport hand `run_batch` the request as "
        "it was submitted?"
    )
