"""The public plugin API (`daglite.plugin`): worker-side facts, events, store factories, formats.

A third party's `TransportBackend` built on this API: `backends/test_transport.py`.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

import daglite
import daglite.plugin
from daglite import load_dataset
from daglite import map_tasks
from daglite import save_dataset
from daglite import session
from daglite.plugin import BaseFormat
from daglite.plugin import ByteStore
from daglite.plugin import DagliteSettings
from daglite.plugin import current_settings
from daglite.plugin import emit
from daglite.plugin import in_worker
from daglite.testing import override_plugin

from .support.plugin_api_tasks import Pinged
from .support.plugin_api_tasks import WorkerStartRecorder
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
