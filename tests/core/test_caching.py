"""Result caching of task calls: hits and misses, keys, TTL, code-aware keys, failing stores."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.cachekeys import Unhashable
from daglite.cachekeys import encode
from daglite.caching import CacheStore
from daglite.caching import cache_key
from daglite.caching import open_cache_store
from daglite.testing import CallLog
from daglite.testing import ManualClock
from daglite.testing import memory_cache_store

from .support.cache_tasks import counted
from .support.cache_tasks import events_of

# -- hits and misses ------------------------------------------------------------------------


def test_second_call_is_a_hit_in_the_default_store(tmp_path):
    f, calls = counted(cache=True)
    assert f(1, 2) == {"sum": 3}
    assert f(1, y=2) == {"sum": 3}  # same bound arguments, same key
    assert f(2) == {"sum": 2}
    assert calls == [(1, 2), (2, 0)]
    assert len(open_cache_store(".daglite/cache").keys()) == 2
    assert (tmp_path / ".daglite" / "cache").is_dir()


def test_session_store_and_events(tmp_path):
    f, calls = counted(cache=True)
    events = []
    with session(cache_store=str(tmp_path / "c"), plugins=[events.append]):
        f(1)
        f(1)
    assert calls == [(1, 0)]
    missed = events_of("CacheMissed", events)
    hit = events_of("CacheHit", events)
    assert [e.reason for e in missed] == ["absent"]
    assert hit[0].key == missed[0].key
    succeeded = events_of("TaskSucceeded", events)
    assert [e.cached for e in succeeded] == [False, True]
    assert open_cache_store(str(tmp_path / "c")).keys() == [hit[0].key]


def test_cache_string_is_a_path_for_this_task(tmp_path):
    f, calls = counted(cache=str(tmp_path / "mine"))
    with session(cache_store=str(tmp_path / "session")):
        f(1)
        f(1)
    assert calls == [(1, 0)]
    assert len(CacheStore(str(tmp_path / "mine")).keys()) == 1
    assert not (tmp_path / "session").exists()


def test_cache_store_instance_is_used_as_given():
    store = memory_cache_store()
    f, calls = counted(cache=store)
    f(3)
    f(3)
    assert calls == [(3, 0)]
    assert len(store.keys()) == 1


def test_cache_store_option_overrides_the_session(tmp_path):
    store = memory_cache_store()
    f, calls = counted(cache=True, cache_store=store)
    with session(cache_store=str(tmp_path / "session")):
        f(1)
        f(1)
    assert calls == [(1, 0)] and len(store.keys()) == 1
    assert not (tmp_path / "session").exists()


def test_async_tasks_are_cached():
    store = memory_cache_store()
    calls = CallLog()

    @task(cache=store)
    async def double(x):
        calls.append(x)
        await asyncio.sleep(0)
        return x * 2

    async def main():
        return [await double(4), await double(4), await double(5)]

    assert asyncio.run(main()) == [8, 8, 10]
    assert calls == [4, 5]


def test_map_items_are_cached_on_the_thread_backend():
    store = memory_cache_store()
    f, calls = counted(cache=store)
    with session(backend="thread"):
        assert map_tasks(f, [1, 2, 1]) == [{"sum": 1}, {"sum": 2}, {"sum": 1}]
        map_tasks(f, [1, 2])
    assert sorted(calls)[:2] == [(1, 0), (2, 0)]
    assert len(calls) <= 3  # items 0 and 2 may race; the second map only hits
    assert len(store.keys()) == 2


def test_errors_are_not_cached():
    store = memory_cache_store()
    calls = CallLog()

    @task(cache=store)
    def flaky(x):
        calls.append(x)
        if len(calls) == 1:
            raise ValueError("first time")
        return x

    with pytest.raises(Exception, match="first time"):
        flaky(1)
    assert flaky(1) == 1 and flaky(1) == 1
    assert calls == [1, 1]


# -- keys -----------------------------------------------------------------------------------


def test_keyword_order_and_defaults_do_not_matter():
    @task(cache=True)
    def g(x, y, z=3):
        return x

    assert cache_key(g, 1, 2) == cache_key(g, y=2, x=1) == cache_key(g, z=3, y=2, x=1)
    assert cache_key(g, 1, 2) != cache_key(g, 2, 1)
    assert cache_key(g, 1, "2") != cache_key(g, 1, 2)  # scalar fast path keeps types apart
    assert cache_key(g, 1, 2) != cache_key(g, 1, [2])  # fast path vs general encoding
    assert cache_key(g, 1, 1) != cache_key(g, 1, True) != cache_key(g, 1, 1.0)


def test_varargs_and_kwargs_are_keyed():
    @task(cache=True)
    def h(*args, **kwargs):
        return args

    assert cache_key(h, 1, 2, a=1, b=2) == cache_key(h, 1, 2, b=2, a=1)
    assert cache_key(h, 1, 2) != cache_key(h, 2, 1)


def test_cache_version_and_ignore():
    f1, _ = counted(cache=True)
    f2, _ = counted(cache=True, cache_version="2")
    assert cache_key(f1, 1) != cache_key(f2, 1)
    g, calls = counted(cache=memory_cache_store(), cache_ignore=("y",))
    assert cache_key(g, 1, 5) == cache_key(g, 1, 6)
    g(1, 5)
    assert g(1, 6) == {"sum": 6}  # y is ignored: the first result is returned
    assert calls == [(1, 5)]


def test_custom_hash_may_return_any_string():
    seen = []

    def by_x(func, inputs):
        seen.append((func.__name__, dict(inputs)))
        return f"../../weird/{inputs['x']}/ünïcode\x00" if inputs["x"] else ""

    f, calls = counted(cache=memory_cache_store(), cache_hash=by_x)
    f(1, 2)
    f(1, 3)  # same custom hash: a hit
    f(0)
    f(0, 9)
    assert calls == [(1, 2), (0, 0)]
    assert seen[0] == ("f", {"x": 1, "y": 2})


def test_custom_hash_must_return_a_string():
    f, _ = counted(cache=memory_cache_store(), cache_hash=lambda func, inputs: 42)
    with pytest.raises(TypeError, match="cache_hash of task 'f' returned int 42; it must return"):
        f(1)


def test_unhashable_argument_is_named():
    f, calls = counted(cache=memory_cache_store())
    with pytest.raises(TypeError) as info:
        f(threading.Lock())
    message = str(info.value)
    assert "argument 'x'" in message and "task 'f'" in message
    assert "cache_ignore=('x',)" in message
    assert calls == []
    with pytest.raises(Unhashable, match="nested too deeply"):
        nested: list = []
        nested.append(nested)
        encode(nested)


def test_unpicklable_result_is_logged_not_raised(caplog):
    store = memory_cache_store()

    @task(cache=store)
    def make_lock():
        return threading.Lock()

    with caplog.at_level("WARNING", logger="daglite"):
        assert make_lock() is not None
    assert "cannot cache the result" in caplog.text
    assert store.keys() == []


# -- TTL --------------------------------------------------------------------------------------


def test_task_ttl_expires_with_the_injected_clock():
    clock = ManualClock()
    store = memory_cache_store(clock=clock)
    f, calls = counted(cache=store, cache_ttl=60)
    events = []
    with session(plugins=[events.append]):
        f(1)
        clock.advance(59)
        f(1)
        clock.advance(2)
        f(1)
        f(1)
    assert calls == [(1, 0), (1, 0)]
    assert [e.reason for e in events_of("CacheMissed", events)] == ["absent", "expired"]


def test_store_ttl_overrides_the_task_ttl():
    clock = ManualClock()
    store = memory_cache_store(ttl=10, clock=clock)
    f, calls = counted(cache=store, cache_ttl=1000)
    f(1)
    clock.advance(11)
    f(1)
    assert len(calls) == 2


# -- code-aware keys across interpreter runs --------------------------------------------------

MODULE = '''
"""Module docstring."""
from daglite import task
from {pkg}.helpers import helper
from otherpkg import outside


@task(cache=True)
def compute(x, table):
    """Docstring v1."""
    # a comment
    return helper(x) + outside(x) + len(table)
'''

HELPERS = """
def helper(x):
    return x + 1
"""

OUTSIDE = """
def outside(x):
    return x * 2
"""

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from daglite.caching import cache_key
from {pkg}.tasks import compute
print(cache_key(compute, 3, {{"b": {{"y", "x"}}, "a": [1.5, None, (True,)]}}))
"""


def _write_project(root: Path, pkg: str, module=MODULE, helpers=HELPERS, outside=OUTSIDE):
    (root / pkg).mkdir(parents=True, exist_ok=True)
    (root / pkg / "__init__.py").write_text("")
    (root / pkg / "tasks.py").write_text(module.format(pkg=pkg))
    (root / pkg / "helpers.py").write_text(helpers)
    (root / "otherpkg").mkdir(exist_ok=True)
    (root / "otherpkg" / "__init__.py").write_text(outside)


def _key_in_fresh_interpreter(root: Path, pkg: str, seed: str = "1") -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(pkg=pkg), str(root)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


@pytest.mark.slow
def test_keys_follow_the_code_not_its_formatting(tmp_path):
    pkg = "proj"
    _write_project(tmp_path, pkg)
    base = _key_in_fresh_interpreter(tmp_path, pkg, seed="1")
    assert len(base) == 40
    # Same code in another interpreter with another string-hash seed: same key.
    assert _key_in_fresh_interpreter(tmp_path, pkg, seed="2") == base

    cosmetic = MODULE.replace('"""Docstring v1."""', '"""Docstring v2,\n\n    longer."""')
    cosmetic = cosmetic.replace("# a comment", "# another comment\n\n    # and more")
    cosmetic = "\n\n# header comment\n" + cosmetic.replace("@task", "\n\n@task")
    _write_project(tmp_path, pkg, module=cosmetic)
    assert _key_in_fresh_interpreter(tmp_path, pkg) == base

    body = MODULE.replace("len(table)", "len(table) + 0")
    _write_project(tmp_path, pkg, module=body)
    assert _key_in_fresh_interpreter(tmp_path, pkg) != base

    _write_project(tmp_path, pkg, helpers=HELPERS.replace("x + 1", "x + 2"))
    changed_helper = _key_in_fresh_interpreter(tmp_path, pkg)
    assert changed_helper != base

    # A function from another top-level package is not part of the fingerprint.
    _write_project(tmp_path, pkg, outside=OUTSIDE.replace("x * 2", "x * 3"))
    assert _key_in_fresh_interpreter(tmp_path, pkg) == base


@pytest.mark.slow
def test_a_cached_result_survives_the_interpreter(tmp_path):
    pkg = "proj2"
    _write_project(tmp_path, pkg)
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(tmp_path)!r})
        os.chdir({str(tmp_path)!r})
        from daglite import session
        from {pkg} import helpers
        runs = []
        original = helpers.helper
        from {pkg}.tasks import compute
        compute.func.__globals__["helper"] = lambda x: runs.append(x) or original(x)
        print(compute(3, {{"k": 1}}), len(runs))
        """
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
        ).stdout.split()
        for _ in range(2)
    ]
    assert outputs[0] == ["11", "1"]
    assert outputs[1] == ["11", "0"]  # the second interpreter read the first one's entry


def test_a_failing_store_fails_the_call_with_a_store_error(tmp_path):
    from daglite import StoreError

    root = tmp_path / "c"
    f, calls = counted(cache=str(root))
    root.mkdir()
    key = cache_key(f, 1)
    (root / key[:2]).write_text("a file where the entry's folder should be")
    with pytest.raises(StoreError, match=f"cannot write key '{key[:2]}/{key}'"):
        f(1)
    assert calls == [(1, 0)]


def test_a_cache_hit_still_saves_the_tasks_dataset(tmp_path, events):
    from daglite import load_dataset

    calls = CallLog()

    @task(cache=str(tmp_path / "cache"), dataset="out/{x}.json")
    def tenfold(x: int) -> int:
        calls.append(x)
        return 10 * x

    with session(dataset_store=str(tmp_path / "first")):
        assert tenfold(1) == 10
    with session(dataset_store=str(tmp_path / "second"), plugins=[events]):
        assert tenfold(1) == 10  # a hit: the function does not run again
        assert load_dataset("out/1.json") == 10  # ... but its dataset is saved here too
    assert calls == [1]
    assert events.kinds()[1:-2] == ["CacheHit", "DatasetSaved", "TaskSucceeded"]
