"""Hook plugins: every task and session hook fires with its arguments; global registration."""

from __future__ import annotations

import threading

import pytest

import daglite
from daglite import PluginError
from daglite import TaskError
from daglite import hookimpl
from daglite import hookspecs
from daglite import map_tasks
from daglite import register_plugin
from daglite import session
from daglite import task
from daglite import unregister_plugin
from daglite.context import TaskMetadata
from daglite.hooks import build_hook
from daglite.hooks import global_plugins
from daglite.hooks import is_hook_plugin
from daglite.testing import CallLog


class Recorder:
    """Implements every hook the core fires and records (hook name, arguments)."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def named(self, name: str) -> list[dict]:
        return [kwargs for hook, kwargs in self.calls if hook == name]

    def hooks(self) -> list[str]:
        return [hook for hook, _ in self.calls]

    @hookimpl
    def on_session_start(self, session):
        self.calls.append(("on_session_start", {"session": session}))

    @hookimpl
    def on_session_end(self, session, error):
        self.calls.append(("on_session_end", {"session": session, "error": error}))

    @hookimpl
    def before_task(self, metadata, inputs):
        self.calls.append(("before_task", {"metadata": metadata, "inputs": inputs}))

    @hookimpl
    def after_task(self, metadata, inputs, result, duration):
        self.calls.append(
            (
                "after_task",
                {"metadata": metadata, "inputs": inputs, "result": result, "duration": duration},
            )
        )

    @hookimpl
    def on_task_error(self, metadata, inputs, error, duration, attempts):
        self.calls.append(
            (
                "on_task_error",
                {"metadata": metadata, "error": error, "duration": duration, "attempts": attempts},
            )
        )

    @hookimpl
    def on_task_retry(self, metadata, inputs, error, attempt, delay):
        self.calls.append(
            (
                "on_task_retry",
                {"metadata": metadata, "error": error, "attempt": attempt, "delay": delay},
            )
        )


@task(name="scale-{x}")
def scale(x: int, factor: int = 10) -> int:
    return x * factor


def test_hookimpl_is_exported_at_top_level():
    assert daglite.hookimpl is hookspecs.hookimpl
    assert "hookimpl" in daglite.__all__


def test_session_hooks_receive_the_session_and_the_error():
    recorder = Recorder()
    with session(plugins=[recorder]) as ok:
        pass
    with pytest.raises(ValueError), session(plugins=[recorder]) as failed:
        raise ValueError("stop")
    assert recorder.hooks() == ["on_session_start", "on_session_end"] * 2
    starts = recorder.named("on_session_start")
    ends = recorder.named("on_session_end")
    assert [s["session"] for s in starts] == [ok, failed]
    assert ends[0] == {"session": ok, "error": None}
    assert ends[1]["session"] is failed
    assert str(ends[1]["error"]) == "stop"


def test_before_and_after_task_receive_metadata_inputs_result_and_duration():
    recorder = Recorder()
    with session(plugins=[recorder]) as ctx:
        assert scale(2) == 20
    (before,) = recorder.named("before_task")
    (after,) = recorder.named("after_task")
    meta = before["metadata"]
    assert isinstance(meta, TaskMetadata)
    assert (meta.name, meta.session_id, meta.map_index, meta.backend) == (
        "scale-2",
        ctx.session_id,
        None,
        "inline",
    )
    assert meta.qualname == f"{__name__}.scale"
    assert before["inputs"] == {"x": 2, "factor": 10}  # defaults applied
    assert after["metadata"] is meta
    assert after["result"] == 20
    assert after["duration"] >= 0


def test_retry_and_error_hooks():
    recorder = Recorder()
    attempts = []

    @task(retries=2, retry_delay=0.001, retry_backoff=2)
    def never(x: int) -> None:
        attempts.append(x)
        raise LookupError(f"try {len(attempts)}")

    with session(plugins=[recorder]), pytest.raises(TaskError):
        never(1)
    retries = recorder.named("on_task_retry")
    assert [(r["attempt"], r["delay"], str(r["error"])) for r in retries] == [
        (1, 0.001, "try 1"),
        (2, 0.002, "try 2"),
    ]
    (error,) = recorder.named("on_task_error")
    assert isinstance(error["error"], LookupError)
    assert str(error["error"]) == "try 3"
    assert error["attempts"] == 3
    assert error["metadata"].name == "never"
    assert recorder.hooks() == [
        "on_session_start",
        "before_task",
        "on_task_retry",
        "on_task_retry",
        "on_task_error",
        "on_session_end",
    ]


def test_task_hooks_run_where_the_task_runs():
    threads = []

    class Where:
        @hookimpl
        def before_task(self, metadata):  # a subset of the arguments is enough
            threads.append((metadata.map_index, threading.current_thread().name))

    with session(plugins=[Where()], backend="thread"):
        map_tasks(scale, [1, 2])
    assert sorted(i for i, _ in threads) == [0, 1]
    assert all(name.startswith("daglite-thread") for _, name in threads)


def test_map_items_carry_their_index_and_map_id():
    recorder = Recorder()
    with session(plugins=[recorder]):
        map_tasks(scale, [3, 4])
    metas = [c["metadata"] for c in recorder.named("before_task")]
    assert [(m.name, m.map_index) for m in metas] == [("scale-3", 0), ("scale-4", 1)]
    assert len({m.map_id for m in metas}) == 1 and metas[0].map_id is not None


def test_register_plugin_globally_applies_to_later_sessions_until_unregistered():
    recorder = Recorder()
    register_plugin(recorder)
    register_plugin(recorder)  # twice is once
    assert global_plugins() == [recorder]
    with session():
        scale(1)
    with session(plugins=[recorder]):  # also passed to the session: still fires once
        scale(1)
    assert recorder.hooks().count("before_task") == 2
    unregister_plugin(recorder)
    unregister_plugin(recorder)  # unknown plugins are ignored
    with session():
        scale(1)
    assert recorder.hooks().count("before_task") == 2
    assert global_plugins() == []


def test_global_plugins_do_not_fire_in_bare_calls():
    recorder = Recorder()
    register_plugin(recorder)
    scale(1)
    assert recorder.calls == []


def test_register_plugin_rejects_objects_without_hook_implementations():
    thing = object()
    with pytest.raises(PluginError) as info:
        register_plugin(thing)
    assert str(info.value) == (
        f"{thing!r} has no @daglite.hookimpl method; mark its hook methods with "
        "@daglite.hookimpl (see daglite.hookspecs for their names)."
    )


def test_plugin_implementing_an_unknown_hook_is_rejected():
    class Typo:
        @hookimpl
        def before_tasks(self, metadata):
            pass

    with (
        pytest.raises(
            PluginError, match=r"^invalid daglite hook plugin: unknown hook 'before_tasks'"
        ),
        session(plugins=[Typo()]),
    ):
        pass


def test_plugin_with_wrong_hook_arguments_is_rejected():
    class Wrong:
        @hookimpl
        def before_task(self, metadata, colour):
            pass

    plugin = Wrong()
    with pytest.raises(PluginError) as info, session(plugins=[plugin]):
        pass
    assert str(info.value).startswith(f"invalid daglite hook plugin {plugin!r}: ")
    assert "colour" in str(info.value)


def test_module_objects_can_be_hook_plugins():
    import types

    module = types.ModuleType("my_hooks")
    seen = []

    @hookimpl
    def after_task(metadata, result):
        seen.append(result)

    module.after_task = after_task
    assert is_hook_plugin(module)
    with session(plugins=[module]):
        scale(5)
    assert seen == [50]


def test_build_hook_without_plugins_is_none():
    assert build_hook([]) is None
    with session() as ctx:
        assert ctx.runtime.hook is None


def test_cache_hit_hook_receives_key_and_value(tmp_path):
    seen = []

    class Hits:
        @hookimpl
        def on_cache_hit(self, metadata, inputs, key, value):
            seen.append((metadata.name, inputs, key, value))

    runs = CallLog()

    @task(cache=True)
    def cached(x: int) -> int:
        runs.append(x)
        return x * 3

    with session(plugins=[Hits()], cache_store=str(tmp_path / "cache")):
        assert cached(2) == 6
        assert cached(2) == 6
    assert runs == [2]
    ((name, inputs, key, value),) = seen
    assert (name, inputs, value) == ("cached", {"x": 2}, 6)
    assert isinstance(key, str) and key


def test_objects_whose_attributes_raise_can_still_be_plugins():
    class Touchy:
        @property
        def fragile(self):
            raise RuntimeError("do not touch")

        @hookimpl
        def before_task(self, metadata):
            self.seen = metadata.name

    touchy = Touchy()
    assert is_hook_plugin(touchy)
    with session(plugins=[touchy]):
        scale(1)
    assert touchy.seen == "scale-1"


def test_register_plugin_rejects_a_class_and_says_to_pass_an_instance():
    class Forgotten:
        @hookimpl
        def before_task(self, metadata, inputs):  # pragma: no cover - never registered
            pass

    with pytest.raises(PluginError) as info:
        register_plugin(Forgotten)
    assert str(info.value) == (
        "Forgotten is a class, not a hook plugin object: pass an instance, "
        "register_plugin(Forgotten())"
    )
    assert global_plugins() == []
