"""The public plugin API (`daglite.plugin`): worker-side facts, transports, store factories.

The toy backend below is written as a third party would: it imports only `daglite.plugin`
(and the standard library), and runs its batches in real worker processes.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Hashable
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import CancelledError
from concurrent.futures import Future
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pytest

import daglite
import daglite.plugin
from daglite import BackendError
from daglite import TaskError
from daglite import load_dataset
from daglite import map_tasks
from daglite import save_dataset
from daglite import session
from daglite.events import TaskStarted
from daglite.plugin import BaseFormat
from daglite.plugin import BatchRequest
from daglite.plugin import ByteStore
from daglite.plugin import DagliteSettings
from daglite.plugin import EarlyEvents
from daglite.plugin import TransportBackend
from daglite.plugin import WorkerLost
from daglite.plugin import current_settings
from daglite.plugin import emit
from daglite.plugin import in_worker
from daglite.plugin import run_batch
from daglite.testing import override_plugin

from .support.plugin_api_tasks import Pinged
from .support.plugin_api_tasks import WorkerStartRecorder
from .support.plugin_api_tasks import exit_at
from .support.plugin_api_tasks import fail_at
from .support.plugin_api_tasks import ping
from .support.plugin_api_tasks import settings_here
from .support.plugin_api_tasks import where


def test_every_name_of_the_api_resolves():
    assert isinstance(daglite.plugin.API_VERSION, int)
    for name in daglite.plugin.__all__:
        assert getattr(daglite.plugin, name) is not None, name


# -- in_worker() ------------------------------------------------------------------------------


def test_in_worker_is_false_on_the_coordinator():
    assert in_worker() is False
    assert where(1) == (os.getpid(), False)
    with session(backend="thread"):
        assert map_tasks(where, range(4)) == [(os.getpid(), False)] * 4


def test_in_worker_is_true_in_a_process_worker():
    with session(backend="process", settings=DagliteSettings(max_workers=2)):
        out = map_tasks(where, range(4))
    assert all(pid != os.getpid() and flag is True for pid, flag in out)
    assert in_worker() is False


def test_in_worker_is_true_in_on_worker_start(tmp_path):
    record = tmp_path / "started.txt"
    recorder = WorkerStartRecorder(str(record))
    settings = DagliteSettings(max_workers=2)
    with session(backend="process", settings=settings, plugins=[recorder]):
        pids = {pid for pid, _ in map_tasks(where, range(4))}
    lines = record.read_text().splitlines()
    assert {line.split()[0] for line in lines} <= {str(pid) for pid in pids}
    assert lines and all(line.split()[1:] == ["True", "True"] for line in lines)


# -- emit() -----------------------------------------------------------------------------------


def test_emit_reaches_the_processors_inline(events):
    with session(plugins=[events]) as ctx:
        assert ping(3) is True
    pinged = events.of_type(Pinged)
    assert [(e.value, e.session_id) for e in pinged] == [(3, ctx.session_id), (-4, ctx.session_id)]


def test_emit_from_a_process_worker_is_relayed_in_order(events):
    with session(backend="process", plugins=[events], settings=DagliteSettings(max_workers=2)):
        assert map_tasks(ping, range(6)) == [True] * 6
    pinged = events.of_type(Pinged)
    assert sorted(e.value for e in pinged) == [-6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5]
    assert all(e.pid != os.getpid() for e in pinged)
    kinds = [
        (e.kind, getattr(e, "map_index", None), getattr(e, "value", None)) for e in events.events
    ]
    for x in range(6):  # between its item's start and success, like the built-in events
        started = kinds.index(("TaskStarted", x, None))
        succeeded = kinds.index(("TaskSucceeded", x, None))
        assert started < kinds.index(("Pinged", None, x)) < succeeded
        assert started < kinds.index(("Pinged", None, -x - 1)) < succeeded


def test_emit_without_listeners_builds_nothing_and_says_so():
    assert emit(Pinged, value=1, pid=0) is False  # outside any session
    quiet = DagliteSettings(max_workers=1, processors=())
    with session(backend="process", settings=quiet):
        assert map_tasks(ping, range(3)) == [False] * 3  # nobody listens: nothing relayed


def test_emit_rejects_what_is_not_an_event(events):
    with session(plugins=[events]):
        with pytest.raises(TypeError, match=r"^emit\(\) takes a daglite.events.Event .*not dict$"):
            emit({"value": 1})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"not the class <class 'dict'>"):
            emit(dict)  # type: ignore[type-var]
        event = Pinged(session_id="s", value=1, pid=0)
        with pytest.raises(TypeError, match=r"fields only with an event class"):
            emit(event, value=2)
    assert events.of_type(Pinged) == []


# -- current_settings() -----------------------------------------------------------------------


def test_current_settings_are_the_sessions_also_in_a_worker():
    from daglite.settings import get_global_settings

    assert current_settings() is get_global_settings()
    chosen = DagliteSettings(max_workers=2, cache_store="elsewhere/cache", log_level="ERROR")
    with session(backend="process", settings=chosen) as ctx:
        assert current_settings() is ctx.settings
        out = map_tasks(settings_here, range(3))
    assert out == [ctx.settings] * 3
    assert out[0].cache_store == "elsewhere/cache"


# -- a third party's TransportBackend ---------------------------------------------------------


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


# -- store factories --------------------------------------------------------------------------


def _memory(url: str, options: dict[str, Any]) -> ByteStore:
    from fsspec.implementations.memory import MemoryFileSystem

    return ByteStore(MemoryFileSystem(), "memory://" + url.split("://", 1)[1], options=options)


def test_a_store_factory_receives_the_sessions_settings():
    seen: list[tuple[str, dict[str, Any], DagliteSettings]] = []

    def factory(url: str, options: dict[str, Any], settings: DagliteSettings) -> ByteStore:
        seen.append((url, options, settings))
        return _memory(url, options)

    url = f"probe://{uuid.uuid4().hex}"
    chosen = DagliteSettings(max_workers=3)
    with (
        override_plugin("store", "probe", factory),
        session(dataset_store=url, settings=chosen) as ctx,
    ):
        save_dataset("a.json", {"x": 1})
        assert load_dataset("a.json") == {"x": 1}
    assert len(seen) == 1
    assert seen[0][0] == url and seen[0][1] == {} and seen[0][2] is ctx.settings


def test_a_store_factory_outside_a_session_gets_the_global_settings():
    from daglite.settings import get_global_settings
    from daglite.stores import open_store

    seen = []

    def factory(url, options, settings):
        seen.append(settings)
        return _memory(url, options)

    with override_plugin("store", "probe", factory):
        open_store(f"probe://{uuid.uuid4().hex}", flavour="x")
    assert seen == [get_global_settings()]


def test_a_store_factory_of_url_and_options_still_works():
    seen = []

    def factory(url, options):
        seen.append((url, options))
        return _memory(url, options)

    url = f"old://{uuid.uuid4().hex}"
    with override_plugin("store", "old", factory), session(dataset_store=url):
        save_dataset("b.json", [1])
        assert load_dataset("b.json") == [1]
    assert seen == [(url, {})]


# -- formats ----------------------------------------------------------------------------------


class Shout(BaseFormat):
    """Text saved upper-cased: only `name`, `extensions`, `dumps` and `loads` written."""

    name = "shout"
    extensions = ("shout",)

    def dumps(self, value: Any, options: dict[str, Any]) -> bytes:
        return str(value).upper().encode()

    def loads(self, data: bytes, return_type: Any, options: dict[str, Any]) -> Any:
        return data.decode()


def test_a_base_format_subclass_works_by_extension_and_by_name(tmp_path):
    with override_plugin("format", "shout", Shout), session(dataset_store=str(tmp_path)):
        save_dataset("note.shout", "quiet")
        assert (tmp_path / "note.shout").read_bytes() == b"QUIET"
        assert load_dataset("note.shout") == "QUIET"
        save_dataset("other", "x", format="shout")
        assert load_dataset("other", format="shout") == "X"
    assert Shout().types == () and Shout().cache_types == () and Shout.cache_options == {}


def test_a_base_format_without_loads_cannot_be_built():
    class Half(BaseFormat):
        name = "half"

        def dumps(self, value: Any, options: dict[str, Any]) -> bytes:
            return b""

    with pytest.raises(TypeError, match=r"Can't instantiate abstract class Half .*loads"):
        Half()  # type: ignore[abstract]


def test_a_transport_backend_runs_a_map_inline_inside_a_worker():
    import attrs

    from daglite.context import bare_runtime
    from daglite.plugin import MapJob

    worker = attrs.evolve(bare_runtime(), in_worker=True)
    job = MapJob(
        task=fail_at,
        items=iter([(0, 9), (1, 9), (2, 9)]),
        total=3,
        map_id="m",
        runtime=worker,
        parent=None,
        backend="toy-pool",
    )
    backend = PoolBackend(DagliteSettings())
    assert backend.map(job) == [0, 1, 2]
    assert backend._transport is None  # no transport was built: nothing left this process
