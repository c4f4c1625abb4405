"""`@task`: the four kinds of task, option validation at decoration time, eager calls."""

from __future__ import annotations

import asyncio
import inspect
import pickle
import sys

import pytest

from daglite import TaskError
from daglite import current_task
from daglite import session
from daglite import task
from daglite.tasks import AsyncTask
from daglite.tasks import AsyncTaskStream
from daglite.tasks import SyncTask
from daglite.tasks import SyncTaskStream


@task
def add(x: int, y: int = 10) -> int:
    """Add two numbers."""
    return x + y


# -- kinds and eager calls ----------------------------------------------------------------


def test_each_kind_of_function_gives_its_kind_of_task():
    def plain():
        return 1

    async def coro():
        return 1

    def gen():
        yield 1

    async def agen():
        yield 1

    kinds = [type(task(f)) for f in (plain, coro, gen, agen)]
    assert kinds == [SyncTask, AsyncTask, SyncTaskStream, AsyncTaskStream]
    assert [(t.is_async, t.is_stream) for t in map(task, (plain, coro, gen, agen))] == [
        (False, False),
        (True, False),
        (False, True),
        (True, True),
    ]


def test_a_call_runs_the_function_at_once_and_returns_its_value():
    calls = []

    @task
    def record(x: int) -> int:
        calls.append(x)
        return x * 2

    result = record(21)
    assert calls == [21]  # ran during the call, before anything else happened
    assert result == 42
    with session():
        assert record(1) == 2
        assert calls == [21, 1]


def test_defaults_and_keywords_work_as_for_the_function():
    assert add(1) == 11
    assert add(1, y=2) == 3
    assert add(y=5, x=1) == 6
    with session():
        assert add(1) == 11
        assert add(y=5, x=1) == 6


def test_async_task_returns_a_coroutine_that_gives_the_value():
    @task
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    pending = double(4)
    assert inspect.iscoroutine(pending)
    assert asyncio.run(pending) == 8


def test_generator_task_yields_its_items_lazily():
    produced = []

    @task
    def count(n: int):
        for i in range(n):
            produced.append(i)
            yield i

    stream = count(3)
    assert inspect.isgenerator(stream)
    assert next(stream) == 0
    assert produced == [0]  # lazily: only the first item so far
    assert list(stream) == [1, 2]


def test_async_generator_task_yields_its_items():
    @task
    async def count(n: int):
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def collect():
        return [i async for i in count(3)]

    assert inspect.isasyncgen(count(1))
    assert asyncio.run(collect()) == [0, 1, 2]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"cache": True}, "Caching is not supported for generator tasks."),
        ({"retries": 1}, "Retries are not supported for generator tasks."),
        ({"timeout": 1.0}, "Timeouts are not supported for generator tasks."),
        ({"dataset": "out.pkl"}, "Dataset auto-save is not supported for generator tasks"),
    ],
)
@pytest.mark.parametrize("is_async", [False, True])
def test_generator_tasks_reject_cache_retries_timeout_and_dataset(option, message, is_async):
    def gen():
        yield 1

    async def agen():
        yield 1

    with pytest.raises(ValueError, match=message):
        task(**option)(agen if is_async else gen)


# -- failures -----------------------------------------------------------------------------


def test_failure_raises_task_error_with_the_original_as_cause():
    @task
    def boom(x: int) -> int:
        raise KeyError(x)

    for context in (None, session()):
        with (
            context or _nothing(),
            pytest.raises(TaskError, match=r"^task 'boom' failed: KeyError: 3$") as info,
        ):
            boom(3)
        assert isinstance(info.value.__cause__, KeyError)
        assert (info.value.task_name, info.value.map_index, info.value.attempts) == (
            "boom",
            None,
            1,
        )


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("where", ["bare", "session", "listening session"])
def test_arguments_that_do_not_fit_raise_type_error_before_running(where, events):
    calls = []

    @task
    def one(x: int) -> int:
        calls.append(x)
        return x

    @task
    async def two(x: int) -> int:
        calls.append(x)
        return x

    @task
    def three(x: int):
        calls.append(x)
        yield x

    contexts = {
        "bare": _nothing(),
        "session": session(),
        "listening session": session(plugins=[events]),
    }
    with contexts[where]:
        with pytest.raises(TypeError, match=r"^task 'one': missing a required argument: 'x'$"):
            one()
        with pytest.raises(TypeError, match=r"^task 'two': too many positional arguments$"):
            asyncio.run(two(1, 2))
        with pytest.raises(TypeError, match=r"^task 'three': got an unexpected keyword argument"):
            list(three(1, y=1))
    assert calls == []
    assert "TaskStarted" not in events.kinds()


def test_a_type_error_raised_inside_the_task_is_a_task_error():
    @task
    def wrong(x: int) -> int:
        return x + "a"  # type: ignore[operator]

    with pytest.raises(TaskError, match=r"task 'wrong' failed: TypeError: unsupported operand"):
        wrong(1)


def test_base_exceptions_are_not_wrapped():
    @task
    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupt()
    with session(), pytest.raises(KeyboardInterrupt):
        interrupt()


# -- names, templates and descriptions -----------------------------------------------------


def test_name_defaults_to_the_function_name_and_description_to_its_docstring():
    assert add.name == "add"
    assert add.description == "Add two numbers."

    @task(name="custom", description="explicit")
    def f() -> None:
        """Ignored."""

    assert (f.name, f.description) == ("custom", "explicit")


def test_name_template_is_filled_from_arguments_and_map_index():
    from daglite import map_tasks

    seen = []

    @task(name="load-{path}-{map_index}")
    def load(path: str) -> str:
        seen.append(current_task().name)
        return path

    load("a")
    map_tasks(load, ["b", "c"])
    assert seen == ["load-a-None", "load-b-0", "load-c-1"]


def test_name_template_with_unknown_placeholder_is_rejected_naming_it_and_the_available_ones():
    with pytest.raises(ValueError) as info:

        @task(name="run-{nope}")
        def f(a: int, b: int) -> None: ...

    assert str(info.value) == (
        "Name template 'run-{nope}' references {'nope'} which won't be available at runtime. "
        "Available placeholders: ['a', 'b', 'map_index']."
    )


def test_dataset_template_with_unknown_placeholder_is_rejected():
    with pytest.raises(
        ValueError, match=r"Dataset template 'out/\{day\}.pkl' references \{'day'\}"
    ):

        @task(dataset="out/{day}.pkl")
        def f(a: int) -> None: ...


def test_empty_and_malformed_templates_are_rejected():
    with pytest.raises(ValueError, match=r"has an empty placeholder '\{\}': name a parameter"):
        task(name="x-{}")(lambda a: a)
    with pytest.raises(ValueError, match=r"^Template 'x-\{a' is malformed: "):
        task(name="x-{a")(lambda a: a)


def test_name_with_a_period_is_rejected():
    with pytest.raises(ValueError) as info:
        task(name="my.task")(lambda: None)
    assert str(info.value) == (
        "Task name 'my.task' cannot contain period ('.') characters; use '_' or '-'."
    )


def test_empty_name_is_rejected():
    with pytest.raises(ValueError, match=r"^Task name must be a non-empty string, not ''\.$"):
        task(name="")(lambda: None)


# -- what can be decorated ----------------------------------------------------------------


@pytest.mark.parametrize("target", [int, type("Thing", (), {}), 42, "text", None])
def test_classes_and_non_callables_are_rejected_with_type_error(target):
    decorate = task()
    with pytest.raises(TypeError, match=r"^`@task` can only be applied to callable functions\.$"):
        decorate(target)


def test_decorating_a_class_directly_is_rejected():
    with pytest.raises(TypeError, match="can only be applied to callable functions"):

        @task
        class Thing:
            pass


def test_a_task_cannot_be_decorated_again():
    with pytest.raises(TypeError, match=r"is already a task; apply `@task` to the function only"):
        task(add)


# -- option validation --------------------------------------------------------------------

TIMEOUT = (
    "timeout must be a finite number of seconds > 0 and <= 2592000 (30 days), or None for no "
    "timeout, not "
)
DELAY = "retry_delay must be a finite number of seconds >= 0 and <= 2592000 (30 days), not "
TTL = (
    "cache_ttl must be a finite number of seconds > 0, or None to keep entries until cleared, not "
)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries must be a whole number >= 0, not -1."),
        ({"retries": True}, "retries must be a whole number >= 0, not True."),
        ({"retries": 1.5}, "retries must be a whole number >= 0, not 1.5."),
        ({"timeout": 0}, TIMEOUT + "0."),
        ({"timeout": "1"}, TIMEOUT + "'1'."),
        # not finite, or beyond what a thread can wait for: refused here, not mid-run
        ({"timeout": float("inf")}, TIMEOUT + "inf."),
        ({"timeout": float("nan")}, TIMEOUT + "nan."),
        ({"timeout": 1e10}, TIMEOUT + "10000000000.0."),
        ({"timeout": 2592001}, TIMEOUT + "2592001."),
        ({"retry_delay": -0.1}, DELAY + "-0.1."),
        ({"retry_delay": float("inf")}, DELAY + "inf."),
        ({"retry_delay": 1e10}, DELAY + "10000000000.0."),
        ({"retry_backoff": 0.5}, "retry_backoff must be a finite number >= 1, not 0.5."),
        ({"retry_backoff": float("nan")}, "retry_backoff must be a finite number >= 1, not nan."),
        ({"cache_ttl": 0}, TTL + "0."),
        ({"cache_ttl": float("nan")}, TTL + "nan."),
        (
            {"cache_ignore": ["z"]},
            "cache_ignore names ['z'] which are not parameters of 'f': ['a', 'b'].",
        ),
    ],
)
def test_invalid_options_are_rejected_at_decoration(options, message):
    def f(a, b):
        return a

    with pytest.raises(ValueError) as info:
        task(**options)(f)
    assert str(info.value) == message


def test_options_are_kept_on_the_task():
    @task(retries=2, timeout=3, retry_delay=0.5, retry_backoff=2, backend="thread")
    def f() -> None: ...

    assert (f.retries, f.timeout, f.retry_delay, f.retry_backoff, f.backend) == (
        2,
        3.0,
        0.5,
        2.0,
        "thread",
    )
    assert isinstance(f.timeout, float)


def test_tasks_are_immutable():
    import attrs

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        add.retries = 3  # type: ignore[misc]


# -- looking like the function ------------------------------------------------------------


def test_task_keeps_signature_name_doc_and_module_of_the_function():
    def original(a: int, *, b: str = "x") -> str:
        """Docs."""
        return b * a

    t = task(original)
    assert inspect.signature(t) == inspect.signature(original)
    assert t.__name__ == "original"
    assert t.__qualname__ == original.__qualname__
    assert t.__doc__ == "Docs."
    assert t.__module__ == __name__
    assert t.__wrapped__ is original


def test_decorating_does_not_rename_or_mutate_the_function():
    def original(a: int) -> int:
        return a

    before = (original.__name__, original.__qualname__, dict(original.__dict__))
    module_before = set(vars(sys.modules[__name__]))
    task(original)
    task(name="other", retries=1)(original)
    assert (original.__name__, original.__qualname__, dict(original.__dict__)) == before
    assert set(vars(sys.modules[__name__])) == module_before
    assert original(3) == 3


def test_module_level_tasks_pickle_by_reference():
    assert pickle.loads(pickle.dumps(add)) is add


def test_repr_names_the_task_and_its_function():
    assert repr(add) == f"<SyncTask 'add' of {__name__}.add>"


def test_an_argument_given_twice_is_a_type_error():
    with session(plugins=[lambda event: None]), pytest.raises(TypeError) as info:
        add(1, x=2)
    assert str(info.value) == "task 'add': multiple values for argument 'x'"


def test_keyword_only_and_variadic_parameters_bind_like_the_function():
    seen = []

    @task
    def flexible(a, *rest, key=1, **extra):
        seen.append(current_task().inputs)
        return (a, rest, key, extra)

    with session(plugins=[lambda event: None]):
        assert flexible(1, 2, 3, key=4, other=5) == (1, (2, 3), 4, {"other": 5})
    assert seen == [{"a": 1, "rest": (2, 3), "key": 4, "extra": {"other": 5}}]


def test_callable_objects_and_partials_can_be_tasks():
    import functools

    class Scale:
        """Multiply by a factor."""

        def __init__(self, factor: int) -> None:
            self.factor = factor

        def __call__(self, x: int) -> int:
            return x * self.factor

    scaled = task(Scale(3))
    assert scaled.name == "Scale"
    assert scaled.qualname == f"{__name__}.{Scale.__qualname__}"
    assert inspect.signature(scaled) == inspect.signature(Scale(3))
    assert scaled(2) == 6
    partial = task(functools.partial(add.func, 1))
    assert (partial.name, partial.qualname) == ("partial", "functools.partial")
    with session(plugins=[lambda event: None]):
        assert scaled(3) == 9
        assert partial(2) == 3
