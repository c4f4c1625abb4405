"""Cache keys identify the computation, not just the function's name and code.

Each shape builds pairs of cached callables: two that compute different things must never
share a key, two that compute the same thing must. Every pair is checked twice: on the key
function (`cache_key`) and through real cached calls on a real file store (a wrong key
there returns the other callable's value).
"""

from __future__ import annotations

import functools
import threading

import pytest

from daglite import session
from daglite import task
from daglite.caching import cache_key

SCALE = 2
TABLE = {"a": 1}


def add(a, b):
    return a + b


def scaled(x):
    return x * SCALE


def looked_up(x):
    return TABLE.get(x, 0)


def offset(x, k=1):
    return x + k


def uses_offset(x):
    return offset(x)


class Model:
    def __init__(self, k):
        self.k = k

    def predict(self, x):
        return x * self.k


class Keyed:
    """An object that says itself what identifies it (`__cache_key__`)."""

    def __init__(self, k):
        self.k = k
        self.lock = threading.Lock()  # not encodable: the object names its identity

    def __cache_key__(self):
        return self.k

    def predict(self, x):
        return x * self.k


class Scale:
    def __init__(self, k):
        self.k = k

    def __call__(self, x):
        return x * self.k


def closure(n):
    def mul(x):
        return x * n

    return mul


def nested_closure(n):
    inner = closure(n)

    def outer(x):
        return inner(x) + 1

    return outer


def with_default(k):
    def f(x, k=k):
        return x + k

    return f


def lambdas_bound_in_a_loop():
    return [lambda x, i=i: x + i for i in range(3)]


def lambdas_closing_over_a_loop():
    return [lambda x: x * i for i in range(3)]  # noqa: B023 - late binding is the point


# (name, build A, build B, argument, same computation?)
SHAPES = [
    ("closures", lambda: closure(2), lambda: closure(3), 5, False),
    ("equal closures", lambda: closure(2), lambda: closure(2), 5, True),
    ("nested closures", lambda: nested_closure(2), lambda: nested_closure(3), 5, False),
    ("methods", lambda: Model(1).predict, lambda: Model(10).predict, 7, False),
    ("equal methods", lambda: Model(4).predict, lambda: Model(4).predict, 7, True),
    ("__cache_key__", lambda: Keyed(1).predict, lambda: Keyed(10).predict, 7, False),
    (
        "partials",
        lambda: functools.partial(add, 100),
        lambda: functools.partial(add, 200),
        1,
        False,
    ),
    (
        "equal partials",
        lambda: functools.partial(add, 5),
        lambda: functools.partial(add, 5),
        1,
        True,
    ),
    (
        "partial keywords",
        lambda: functools.partial(add, b=1),
        lambda: functools.partial(add, b=2),
        1,
        False,
    ),
    ("instances", lambda: Scale(2), lambda: Scale(3), 5, False),
    ("equal instances", lambda: Scale(2), lambda: Scale(2), 5, True),
    ("default arguments", lambda: with_default(1), lambda: with_default(2), 5, False),
    (
        "lambdas bound in a loop",
        lambda: lambdas_bound_in_a_loop()[0],
        lambda: lambdas_bound_in_a_loop()[2],
        5,
        False,
    ),
    (
        "lambdas closing over a loop",  # late binding: every one of them computes x * 2
        lambda: lambdas_closing_over_a_loop()[0],
        lambda: lambdas_closing_over_a_loop()[2],
        5,
        True,
    ),
]


def plain(func):
    return func


@pytest.mark.parametrize(
    ("shape", "make_a", "make_b", "arg", "same"), SHAPES, ids=[s[0] for s in SHAPES]
)
def test_keys_tell_computations_apart(tmp_path, shape, make_a, make_b, arg, same):
    a, b = make_a(), make_b()
    store = str(tmp_path / "cache")
    task_a, task_b = task(a, cache=store), task(b, cache=store)
    assert (cache_key(task_a, arg) == cache_key(task_b, arg)) is same
    assert task_a(arg) == a(arg)
    assert task_b(arg) == b(arg)  # the value of b, not a's cached one
    assert task_a(arg) == a(arg)


@pytest.mark.parametrize(
    ("shape", "make_a", "make_b", "arg", "same"), SHAPES, ids=[s[0] for s in SHAPES]
)
def test_equal_computations_hit_in_a_session(tmp_path, events, shape, make_a, make_b, arg, same):
    store = str(tmp_path / "cache")
    with session(cache_store=store, plugins=[events]):
        task(make_a(), cache=True)(arg)
        task(make_b(), cache=True)(arg)
    cached = [e.cached for e in events.events if e.kind == "TaskSucceeded"]
    assert cached == [False, same]


def test_globals_the_function_reads_are_part_of_the_key(tmp_path, monkeypatch):
    store = str(tmp_path / "cache")
    f = task(scaled, cache=store)
    first = cache_key(f, 5)
    assert f(5) == 10
    monkeypatch.setitem(globals(), "SCALE", 3)
    assert cache_key(f, 5) != first
    assert f(5) == 15
    monkeypatch.setitem(globals(), "SCALE", 2)
    assert cache_key(f, 5) == first


def test_global_containers_are_read_at_each_call(tmp_path):
    f = task(looked_up, cache=str(tmp_path / "cache"))
    assert f("a") == 1
    TABLE["a"] = 5
    try:
        assert f("a") == 5
    finally:
        TABLE["a"] = 1
    assert f("a") == 1


def test_defaults_of_helpers_are_part_of_the_key(tmp_path):
    f = task(uses_offset, cache=str(tmp_path / "cache"))
    assert f(1) == 2
    offset.__defaults__ = (10,)
    try:
        assert f(1) == 11
    finally:
        offset.__defaults__ = (1,)


def test_a_closure_variable_rebound_between_calls(tmp_path):
    def counter():
        step = 1

        def add_step(x):
            return x + step

        def bump():
            nonlocal step
            step += 1

        return add_step, bump

    add_step, bump = counter()
    f = task(add_step, cache=str(tmp_path / "cache"))
    assert f(1) == 2
    bump()
    assert f(1) == 3


def test_a_bound_object_mutated_between_calls(tmp_path):
    model = Model(2)
    f = task(model.predict, cache=str(tmp_path / "cache"))
    assert f(3) == 6
    model.k = 5
    assert f(3) == 15


def test_partials_and_callable_objects_are_named_and_cached(tmp_path, events):
    p = task(functools.partial(add, 100), cache=True)
    s = task(Scale(3), cache=True)
    assert (p.name, s.name) == ("partial", "Scale")
    with session(cache_store=str(tmp_path / "c"), plugins=[events]):
        assert p(1) == 101 and p(1) == 101
        assert s(2) == 6 and s(2) == 6
    assert [e.cached for e in events.events if e.kind == "TaskSucceeded"] == [
        False,
        True,
        False,
        True,
    ]


class Locked:
    def __init__(self):
        self.lock = threading.Lock()

    def run(self, x):
        return x

    def __call__(self, x):
        return x


def test_a_callable_whose_state_cannot_be_keyed_is_refused_at_decoration():
    lock = threading.Lock()

    def holds_lock(x):
        with lock:
            return x

    cases = [
        (holds_lock, "closure variable 'lock'"),
        (Locked().run, "the object 'run' is bound to"),
        (Locked(), "the callable object"),
        (functools.partial(add, lock), "the partial's arguments"),
    ]
    for func, what in cases:
        with pytest.raises(TypeError) as info:
            task(func, cache=True)
        message = str(info.value)
        assert what in message, message
        assert "cannot be part of a cache key" in message
        assert "__cache_key__" in message and "cache_hash=" in message
        task(func)  # without caching it is fine


def test_cache_hash_takes_over_what_cannot_be_keyed(tmp_path):
    obj = Locked()
    f = task(obj.run, cache=str(tmp_path / "c"), cache_hash=lambda func, inputs: "same")
    assert f(1) == 1
    assert f(2) == 1  # the custom key says these calls are the same


def test_cache_hash_keeps_the_encodable_state_in_the_key(tmp_path):
    def by_x(func, inputs):
        return str(inputs["x"])

    store = str(tmp_path / "c")
    assert task(closure(2), cache=store, cache_hash=by_x)(5) == 10
    assert task(closure(3), cache=store, cache_hash=by_x)(5) == 15


_RESOURCE = threading.Lock()


def reads_a_lock(x):
    with _RESOURCE:
        return x


def test_an_unencodable_global_is_a_resource_left_out_of_the_key(tmp_path, events):
    f = task(reads_a_lock, cache=str(tmp_path / "c"))
    with session(plugins=[events]):
        assert f(1) == 1 and f(1) == 1
    assert [e.cached for e in events.events if e.kind == "TaskSucceeded"] == [False, True]


def late_global(x):
    return x + LATE  # noqa: F821 - defined by the test


def test_a_global_defined_after_the_task_becomes_unencodable(tmp_path, monkeypatch):
    f = task(late_global, cache=str(tmp_path / "c"))
    monkeypatch.setitem(globals(), "LATE", 1)
    assert f(1) == 2
    monkeypatch.setitem(globals(), "LATE", threading.Lock())
    with pytest.raises(TypeError) as info:
        f(1)
    message = str(info.value)
    assert "task 'late_global': global 'LATE' (lock) cannot be part of a cache key" in message
    assert "__cache_key__" in message and "cache_hash=" in message


def test_worker_processes_key_closures_like_the_coordinator(tmp_path, events):
    from daglite import map_tasks

    store = str(tmp_path / "cache")
    two, three = task(closure(2), cache=store), task(closure(3), cache=store)
    with session(backend="process"):
        assert map_tasks(two, [1, 2]) == [2, 4]
        assert map_tasks(three, [1, 2]) == [3, 6]  # not the values of `two`
    with session(plugins=[events]):
        assert task(closure(3), cache=store)(2) == 6
    assert [e.cached for e in events.events if e.kind == "TaskSucceeded"] == [True]


def test_a_task_that_calls_itself_through_its_closure_is_keyed(tmp_path, events):
    def make(step):
        @task(cache=str(tmp_path / "c"))
        def total(n):
            return 0 if n == 0 else step + total(n - 1)

        return total

    with session(plugins=[events]):
        assert make(1)(5) == 5
        assert make(2)(5) == 10  # another closure value: no value of make(1) reused
        assert make(2)(5) == 10
    cached = [e.cached for e in events.events if e.kind == "TaskSucceeded"]
    assert cached.count(True) == 1 and len(cached) == 13


def test_a_task_that_changes_what_its_key_reads_is_warned_about_once(tmp_path, caplog):
    seen = []

    @task(cache=str(tmp_path / "c"))
    def record(x):
        seen.append(x)
        return x

    with caplog.at_level("WARNING", logger="daglite"):
        record(1)
        record(1)  # `seen` changed: another key, a miss again
    assert seen == [1, 1]
    (warning,) = [r.getMessage() for r in caplog.records if "changed" in r.getMessage()]
    assert warning.startswith(
        "task 'record' changed closure variable 'seen' while it ran: that is part of its "
        "cache key, so its calls keep missing the cache."
    )
    assert "daglite.testing.CallLog" in warning and "__cache_key__()" in warning
