"""`TaskSpec`: a task's definition (binding, names, key state, pickling) and tasks as methods.

A task defined in a class binds like a function: `obj.method(x)` runs it with `obj` as its
first argument, on every backend (the object travels with each item, by value; the task by
reference), and a cached method keys the object it runs on.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import pickle
import types

import cloudpickle
import pytest

from daglite import BackendError
from daglite import current_task
from daglite import gather_tasks
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.caching import cache_key
from daglite.events import CacheHit
from daglite.events import TaskStarted
from daglite.taskspec import TaskSpec
from daglite.testing import capture_events

from .support.method_tasks import Keyed
from .support.method_tasks import Locked
from .support.method_tasks import Scaler


@task
def add(x: int, y: int = 1) -> int:
    return x + y


# -- the spec ---------------------------------------------------------------------------------


def test_a_task_is_its_spec_with_options_and_derived_facts():
    @task(name="add-{x}", retries=2, timeout=1)
    def named(x: int, y: int = 1) -> int:
        """Adds."""
        return x + y

    assert isinstance(named, TaskSpec)
    assert (named.name, named.description, named.retries, named.timeout) == (
        "add-{x}",
        "Adds.",
        2,
        1.0,
    )
    assert named.name_fields == frozenset({"x"})
    assert named.needs_inputs and not named.plain
    assert add.plain and not add.needs_inputs
    assert (add.is_async, add.is_stream) == (False, False)


def test_tasks_are_equal_only_to_themselves_and_hashable_whatever_their_options():
    def f(x):
        return x

    same_options = task(f), task(f)
    assert same_options[0] != same_options[1]
    assert len({*same_options, *same_options}) == 2


def test_cache_hash_is_also_read_by_its_former_attribute_name():
    def by_x(func, inputs):
        return str(inputs["x"])

    assert task(cache=True, cache_hash=by_x)(_plus_one).cache_hash_fn is by_x


def test_bind_gives_arguments_by_name_with_defaults_and_reports_bad_calls():
    assert add.bind((2,), {}) == {"x": 2, "y": 1}
    assert add.bind((), {"y": 3, "x": 2}) == {"x": 2, "y": 3}
    with pytest.raises(TypeError, match=r"^task 'add': missing a required argument: 'x'$"):
        add.bind((), {})


def test_resolve_name_fills_the_template_and_says_which_value_does_not_fit():
    @task(name="n-{x:d}-{map_index}")
    def f(x):
        return x

    assert f.resolve_name({"x": 3}, 7) == "n-3-7"
    with pytest.raises(ValueError) as info:
        f.resolve_name({"x": "a"}, None)
    assert str(info.value) == (
        f"cannot fill the name template 'n-{{x:d}}-{{map_index}}' of task {f.qualname}: "
        "ValueError: Unknown format code 'd' for object of type 'str'"
    )


def test_the_key_state_is_a_field_built_on_first_use_and_not_pickled(tmp_path):
    @task(cache=True)
    def double(x: int) -> int:
        return 2 * x

    assert "keys" not in vars(double)  # nothing keyed yet: nothing built
    with session(cache_store=str(tmp_path)):
        assert double(2) == 4
    keys = vars(double)["keys"]
    assert double.keys is keys  # built once, kept
    assert not any(name.startswith("_daglite") for name in vars(double))
    copy = cloudpickle.loads(cloudpickle.dumps(double))  # a local task travels by value
    assert copy is not double and "keys" not in vars(copy)
    assert cache_key(copy, 2) == cache_key(double, 2)


def test_a_task_travels_by_value_without_its_signature_and_rebuilds_it():
    @task(name="scaled-{factor}", retries=1)
    def scaled(x: int, *rest: int, factor: float = 2.0, **extra: str) -> float:
        return x * factor

    data = cloudpickle.dumps(scaled)
    assert b"Signature" not in data and b"Parameter" not in data
    copy = cloudpickle.loads(data)
    assert copy is not scaled and copy.signature == scaled.signature
    assert copy.bind((3,), {"factor": 0.5}) == scaled.bind((3,), {"factor": 0.5})
    assert (copy.name, copy.retries, copy._defaults) == ("scaled-{factor}", 1, {"factor": 2.0})
    assert copy(3) == 6.0


def test_module_level_and_class_level_tasks_pickle_by_reference():
    assert pickle.loads(pickle.dumps(add)) is add
    assert pickle.loads(pickle.dumps(Scaler.scale)) is Scaler.scale
    assert pickle.loads(pickle.dumps(Scaler.negate)) is Scaler.negate
    label = vars(Scaler)["label"].__func__  # the task the classmethod wraps
    assert pickle.loads(pickle.dumps(label)) is label


# -- tasks are descriptors ------------------------------------------------------------------


def test_a_task_in_a_class_binds_the_instance_like_a_function():
    scaler = Scaler(3)
    assert scaler.scale(2) == 6
    assert Scaler.scale(scaler, 2) == 6  # read from the class: the task itself
    assert isinstance(Scaler.scale, TaskSpec)
    bound = scaler.scale
    assert isinstance(bound, types.MethodType)
    assert (bound.__func__, bound.__self__) == (Scaler.scale, scaler)
    assert list(inspect.signature(bound).parameters) == ["x"]
    assert list(inspect.signature(Scaler.scale).parameters) == ["self", "x"]
    assert bound.name == "scale"  # its attributes are the task's


def test_async_and_generator_methods_bind_too():
    scaler = Scaler(2)
    assert asyncio.run(scaler.later(5)) == 10
    assert list(scaler.upto(3)) == [0, 2, 4]


def test_staticmethod_and_classmethod_go_above_the_task():
    scaler = Scaler(2)
    assert (Scaler.negate(4), scaler.negate(4)) == (-4, -4)
    assert (Scaler.label(1), scaler.label(2)) == ("Scaler:1", "Scaler:2")


@pytest.mark.parametrize("kind", [staticmethod, classmethod])
def test_task_over_a_staticmethod_or_classmethod_says_to_swap_them(kind):
    def f(x):
        return x

    with pytest.raises(TypeError) as info:
        task(kind(f))
    name = kind.__name__
    assert str(info.value) == (
        f"`@task` cannot wrap a {name} object; put `@{name}` above `@task`, so that the "
        f"{name} wraps the task: `@{name}`, then `@task`, then `def f(...)`."
    )


def test_a_bound_call_binds_the_instance_as_its_first_input():
    class Greeter:
        def __init__(self, greeting: str) -> None:
            self.greeting = greeting

        @task(name="greet-{who}")
        def greet(self, who: str) -> dict:
            return current_task().inputs

    greeter = Greeter("hi")
    with capture_events() as capture, session(plugins=[capture]):
        assert greeter.greet("bob") == {"self": greeter, "who": "bob"}
    (started,) = capture.of_type(TaskStarted)
    assert started.name == "greet-bob"


def test_a_bound_call_with_wrong_arguments_reports_them_like_a_method():
    with session(plugins=[lambda event: None]), pytest.raises(TypeError) as info:
        Scaler(1).scale(1, 2)
    assert str(info.value) == "task 'scale': too many positional arguments"


@pytest.mark.parametrize("backend", ["inline", "thread", "process"])
def test_map_over_a_bound_task_runs_on_its_instance_on_every_backend(backend):
    scaler = Scaler(3)
    with session(backend=backend):
        results = map_tasks(scaler.where, [1, 2, 3])
    assert [value for _, value in results] == [3, 6, 9]
    pids = {pid for pid, _ in results}
    assert (os.getpid() not in pids) is (backend == "process")


def test_an_instance_that_cannot_travel_to_a_worker_is_named_as_the_argument_self():
    with session(backend="process"), pytest.raises(BackendError) as info:
        map_tasks(Locked().plain, [1])
    assert str(info.value) == (
        "argument 'self' of task 'plain' (map index 0) cannot be sent to a worker process: "
        "cannot pickle '_thread.lock' object"
    )


def test_map_over_a_classmethod_and_a_staticmethod_task_on_processes():
    with session(backend="process"):
        assert map_tasks(Scaler.label, [1, 2]) == ["Scaler:1", "Scaler:2"]
        assert map_tasks(Scaler.negate, [1, 2]) == [-1, -2]


def test_map_over_a_bound_task_names_the_iterable_of_its_own_parameter():
    with pytest.raises(TypeError) as info:
        map_tasks(Scaler(1).scale, None)  # type: ignore[arg-type]
    assert str(info.value).startswith(
        "`map_tasks(scale, ...)`: argument 1 (for parameter 'x') is NoneType None, which is "
        "not iterable"
    )


def test_gather_over_a_bound_async_task():
    scaler = Scaler(5)
    assert asyncio.run(gather_tasks(scaler.later, [1, 2])) == [5, 10]


# -- a cached method keys its instance --------------------------------------------------------


def test_two_instances_with_different_state_never_share_a_cache_entry(tmp_path):
    with capture_events() as capture, session(cache_store=str(tmp_path), plugins=[capture]):
        assert Scaler(2).cached(5)[1] == 10
        assert Scaler(3).cached(5)[1] == 15  # a shared key would give 10
        assert Scaler(2).cached(5)[1] == 10  # an equal instance: the same entry
    assert len(capture.of_type(CacheHit)) == 1
    assert cache_key(Scaler(2).cached, 5) != cache_key(Scaler(3).cached, 5)
    assert cache_key(Scaler(2).cached, 5) == cache_key(Scaler.cached, Scaler(2), 5)


def test_cached_maps_of_a_bound_task_on_processes_key_each_instance(tmp_path):
    with session(backend="process", cache_store=str(tmp_path)):
        first = map_tasks(Scaler(2).cached, [1, 2])
        other = map_tasks(Scaler(7).cached, [1, 2])
        again = map_tasks(Scaler(2).cached, [1, 2])
    assert [value for _, value in first] == [2, 4]
    assert [value for _, value in other] == [7, 14]
    assert again == first  # read back from the cache: the same worker pids too


def test_an_instance_that_cannot_be_keyed_is_a_clear_error(tmp_path):
    with session(cache_store=str(tmp_path)), pytest.raises(TypeError) as info:
        Locked().run(1)
    message = str(info.value)
    assert message.startswith(
        "task 'run': the object it is bound to (argument 'self', Locked) cannot be part of a "
        "cache key: "
    )
    assert message.endswith(
        "To cache this task, give its class a __cache_key__(self) method returning what "
        "identifies it (e.g. its parameters), or pass cache_hash=fn to key the calls yourself "
        "(fn(func, inputs) -> str receives the callable as func); or leave the object out of "
        "the key with cache_ignore=('self',)"
    )


def test_an_instance_keyed_by_its_cache_key_method(tmp_path):
    with capture_events() as capture, session(cache_store=str(tmp_path), plugins=[capture]):
        assert Keyed(1).run(1) == 2
        assert Keyed(1).run(1) == 2  # another lock, the same __cache_key__: a hit
        assert Keyed(2).run(1) == 3
    assert len(capture.of_type(CacheHit)) == 1


def test_cache_key_requires_a_task():
    with pytest.raises(TypeError, match=r"^cache_key requires a `@task`-decorated callable"):
        cache_key(len, 1)


def _model_class(offset: int) -> type:
    """A class `Model` whose helper method's code depends on `offset` (an edit between runs)."""
    if offset == 1:

        class Model:
            def helper(self, x):
                return x + 1

            @task(cache=True)
            def run(self, x):
                return self.helper(x)

    else:

        class Model:  # type: ignore[no-redef]
            def helper(self, x):
                return x + 2

            @task(cache=True)
            def run(self, x):
                return self.helper(x)

    Model.__qualname__ = "Model"
    return Model


def test_a_method_key_covers_the_code_of_its_class_as_a_bound_method_key_does():
    first, edited = _model_class(1), _model_class(2)
    # The same name, the same method code, equal (empty) state: only the helper differs.
    assert cache_key(first().run, 1) != cache_key(edited().run, 1)
    assert cache_key(first().run, 1) == cache_key(first().run, 1)


# -- a task as a value in a cache key (its __cache_key__: its function) -----------------------


def _plus_one(x):
    return x + 1


def _plus_two(x):
    return x + 2


def test_a_task_passed_as_an_argument_is_keyed_by_its_function():
    from daglite import cachekeys

    assert cachekeys.encode(task(_plus_one)) == cachekeys.encode(task(_plus_one))
    assert cachekeys.encode(task(_plus_one)) != cachekeys.encode(task(_plus_two))
    assert add.__cache_key__() is add.func


def test_a_task_read_as_a_global_is_followed_like_a_helper_function():
    from daglite.cacheidentity import code_fingerprint

    def caller_with(helper):
        namespace = {"__name__": __name__, "helper": helper}
        exec("def caller(x):\n    return helper(x)\n", namespace)
        return namespace["caller"]

    one, two = caller_with(task(_plus_one)), caller_with(task(_plus_two))
    assert code_fingerprint(one) != code_fingerprint(two)  # the helper task's code counts
    assert code_fingerprint(one) == code_fingerprint(caller_with(task(_plus_one)))
