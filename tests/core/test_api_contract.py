"""The public API contract: `/work/shared/seed/daglite-api-reference.txt`, name by name.

"Every name, signature, default and documented behaviour in it must work exactly so." The
signatures below are the reference's text, verbatim; `reference()` turns each into an
`inspect.Signature` (annotations stay strings, as with `from __future__ import annotations`
in the core) and `assert_conforms` compares it with the real one: same parameters, kinds,
order, defaults and annotations. Parameters that issues added are allowed only after the
reference's, keyword-only, with defaults that keep the reference behaviour; each is listed
here with the issue that asked for it.

Documented behaviour already tested elsewhere is not repeated; where it is tested:
- eager calls, the four task kinds, async task -> coroutine, generator tasks reject cache /
  retries / timeout: `test_tasks.py`.
- name defaults to `__name__`, description to the docstring, `{param}` / `{map_index}` name
  templates validated at decoration, `.` rejected: `test_tasks.py`.
- `@task` / `@workflow` on a class or non-callable, `@workflow` on a generator function
  (`TypeError` with its message), the workflow docstring examples: `test_tasks.py`,
  `test_workflows.py`.
- a workflow sets up (or joins) a session; sync returns the value, async a coroutine:
  `test_workflows.py`.
- `cache=True` / `str` / `CacheStore`, `cache_store`, `cache_ttl` and a store's own TTL,
  `cache_hash`: `test_caching.py`.
- `map_tasks` zips, keeps order, runs async tasks and collects generator tasks (inline,
  thread; process in `backends/test_process.py`); `gather_tasks` runs concurrently, rejects
  sync tasks with the reference's message, both reject non-tasks: `test_composers.py`.
- session arguments override the settings, `plugins` takes one object or a list,
  `async_session` yields the context: `test_session.py`.
- dataset `{param}` keys in `save_dataset` / `load_dataset` inside a task: `test_datasets.py`.

Deviations kept on purpose (each asserted below or where named):
- `cache` is annotated `bool | str | CacheStore` (the reference's docs allow all three).
- `description` is the docstring as `inspect.getdoc` gives it (indentation cleaned), where
  the reference's code keeps the raw `__doc__`; one-line docstrings are identical.
- `save_dataset` returns the stored path also inside a session (the reference's code
  returns the key there, against its own "Returns" line).
- `gather_tasks(backend=None)` runs the items on the caller's event loop (what the
  reference's code does: it never reads `backend`); a named backend is honoured.
- `{param}` keys resolve when the task's own body calls `save_dataset` / `load_dataset`;
  from a helper function the task calls, its arguments are not bound (kept for the speed
  of plain calls) and the error says so: `test_datasets.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import os
import threading
import typing
from pathlib import Path
from typing import Any

import pytest

import daglite
from daglite import current_task
from daglite import load_dataset
from daglite import map_tasks
from daglite import save_dataset
from daglite import session
from daglite import task
from daglite import workflow
from daglite.caching import CacheStore
from daglite.datasets import DatasetStore
from daglite.settings import DagliteSettings
from daglite.settings import get_global_settings
from daglite.settings import set_global_settings
from daglite.testing import CallLog
from daglite.testing import memory_dataset_store

EMPTY = inspect.Parameter.empty


def reference(text: str) -> inspect.Signature:
    """The signature written as `text` in the reference (`"(x: int = 0) -> str"`)."""
    namespace: dict[str, Any] = {}
    source = f"from __future__ import annotations\ndef stub{text}: ...\n"
    exec(compile(source, "<api reference>", "exec"), namespace)
    return inspect.signature(namespace["stub"])


def assert_conforms(
    actual: inspect.Signature,
    text: str,
    *,
    extras: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> None:
    """`actual` is the reference's signature `text`, plus the keyword-only `extras` after it.

    Args:
        actual: The signature of the real callable.
        text: The signature as the reference writes it.
        extras: Parameters added beyond the reference, in order, with their defaults.
        annotations: Deliberate annotation changes (parameter name or `"return"` -> the
            annotation main has).
    """
    expected = reference(text)
    extras = extras or {}
    annotations = annotations or {}
    params = list(actual.parameters.values())
    wanted = list(expected.parameters.values())
    assert [p.name for p in params] == [p.name for p in wanted] + list(extras), actual
    for have, want in zip(params, wanted):
        assert have.kind == want.kind, (have, want)
        assert have.default == want.default, (have, want)
        assert type(have.default) is type(want.default), (have, want)
        assert have.annotation == annotations.get(want.name, want.annotation), (have, want)
    for have in params[len(wanted) :]:
        assert have.kind == inspect.Parameter.KEYWORD_ONLY, have
        assert have.default is not EMPTY, have
        assert have.default == extras[have.name], have
    assert actual.return_annotation == annotations.get("return", expected.return_annotation)


def assert_overloads(func: Any, texts: list[str], **kwargs: Any) -> None:
    """Each overload the reference lists is declared, in the reference's order.

    Main may declare more overloads (a more precise one in between); each reference overload
    must match one of main's, in order, as `assert_conforms` sees it.
    """
    declared = [inspect.signature(o) for o in typing.get_overloads(func)]
    # The extras belong to the overloads that take options, not to `task(func)`-like ones.
    variants = [kwargs, {**kwargs, "extras": None}]
    position = 0
    for text in texts:
        for index in range(position, len(declared)):
            if not any(_conforms(declared[index], text, variant) for variant in variants):
                continue
            position = index + 1
            break
        else:
            raise AssertionError(f"no overload of {func.__name__} matches {text}: {declared}")


def _conforms(actual: inspect.Signature, text: str, kwargs: dict[str, Any]) -> bool:
    try:
        assert_conforms(actual, text, **kwargs)
    except AssertionError:
        return False
    return True


# -- the reference's signatures, verbatim ----------------------------------------------------

TASK_OPTIONS = """
    name: str | None = None,
    description: str | None = None,
    backend: str | None = None,
    retries: int = 0,
    timeout: float | None = None,
    cache: bool = False,
    cache_store: CacheStore | str | None = None,
    cache_ttl: int | None = None,
    cache_hash: CacheHashFn | None = None,
    dataset: str | None = None,
    dataset_store: DatasetStore | str | None = None,
    dataset_format: str | None = None,
"""
TASK = f"(func: Any = None, *, {TASK_OPTIONS}) -> Any"
TASK_OVERLOADS = [
    "(func: Callable[P, AsyncIterator[R]]) -> AsyncTaskStream[P, R]",
    "(func: Callable[P, Iterator[R]]) -> SyncTaskStream[P, R]",
    "(func: Callable[P, Coroutine[Any, Any, R]]) -> AsyncTask[P, R]",
    "(func: Callable[P, R]) -> SyncTask[P, R]",
    f"(*, {TASK_OPTIONS}) -> _TaskDecorator",
]
# Issue 2 added retry_delay / retry_backoff (no delay, no growth: the reference's retries);
# issue 4 added cache_version / cache_ignore (nothing mixed in, nothing left out of the key).
TASK_EXTRAS = {"retry_delay": 0.0, "retry_backoff": 1.0, "cache_version": None, "cache_ignore": ()}
# Deliberate: the reference types `cache` as `bool` but documents `str` (a path to a file
# based store) and `CacheStore` values too (issue 4: "exactly as the reference describes
# cache"); main's annotation says what is accepted.
TASK_ANNOTATIONS = {"cache": "bool | str | CacheStore"}

WORKFLOW = "(func: Any = None, *, name: str | None = None, description: str | None = None) -> Any"
WORKFLOW_OVERLOADS = [
    "(func: Callable[P, Coroutine[Any, Any, R]]) -> AsyncWorkflow[P, R]",
    "(func: Callable[P, R]) -> SyncWorkflow[P, R]",
    "(*, name: str | None = None, description: str | None = None) -> _WorkflowDecorator",
]

SESSION_PARAMS = """
    *,
    backend: str | None = None,
    cache_store: str | CacheStore | None = None,
    dataset_store: str | DatasetStore | None = None,
    plugins: SerializablePlugin | list[SerializablePlugin] | None = None,
    settings: DagliteSettings | None = None,
"""
ASYNC_SESSION = f"({SESSION_PARAMS}) -> AsyncIterator[SessionContext]"
SESSION = f"({SESSION_PARAMS}) -> Iterator[SessionContext]"  # the sync twin

GATHER = (
    "(task: Callable[..., Any], *iterables: Iterable[Any], backend: str | None = None) -> list[Any]"  # noqa: E501
)
GATHER_OVERLOADS = [
    "(task: Callable[..., AsyncIterator[R]], *iterables: Iterable[Any], backend: str | None = None) -> list[list[R]]",  # noqa: E501
    "(task: Callable[..., Coroutine[Any, Any, R]], *iterables: Iterable[Any], backend: str | None = None) -> list[R]",  # noqa: E501
    "(task: Callable[..., R], *iterables: Iterable[Any], backend: str | None = None) -> list[R]",
]
# Issue 3 added return_exceptions (False: the first failure raises, as in the reference).
GATHER_EXTRAS = {"return_exceptions": False}

MAP = (
    "(task: Callable[..., Any], *iterables: Iterable[Any], backend: str | None = None) -> list[Any]"  # noqa: E501
)
MAP_OVERLOADS = [
    "(task: Callable[..., AsyncIterator[R]], *iterables: Iterable[Any], backend: str | None = None) -> list[list[R]]",  # noqa: E501
    "(task: Callable[..., Iterator[R]], *iterables: Iterable[Any], backend: str | None = None) -> list[list[R]]",  # noqa: E501
    "(task: Callable[..., R], *iterables: Iterable[Any], backend: str | None = None) -> list[R]",
]
# Issue 3 added return_exceptions (False, as above) and chunksize (None: the backend chooses).
MAP_EXTRAS = {"return_exceptions": False, "chunksize": None}

LOAD_OPTIONS = """
    *,
    format: str | None = None,
    store: DatasetStore | str | None = None,
    options: dict[str, Any] | None = None,
"""
LOAD = f"(key: str, return_type: type[R] | None = None, {LOAD_OPTIONS}) -> R | Any"
LOAD_OVERLOADS = [
    f"(key: str, return_type: type[R], {LOAD_OPTIONS}) -> R",
    f"(key: str, {LOAD_OPTIONS}) -> Any",
]
SAVE = f"(key: str, value: Any, {LOAD_OPTIONS}) -> str"


# -- names: importable where the reference puts them ----------------------------------------


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("task", "daglite.tasks"),
        ("workflow", "daglite.workflows"),
        ("session", "daglite.session"),
        ("async_session", "daglite.session"),
        ("SessionContext", "daglite.session"),
        ("gather_tasks", "daglite.composers"),
        ("map_tasks", "daglite.composers"),
        # The reference shows their source in composers.py; they live in daglite.datasets
        # and composers re-exports them.
        ("load_dataset", "daglite.composers"),
        ("save_dataset", "daglite.composers"),
        ("load_dataset", "daglite.datasets"),
        ("save_dataset", "daglite.datasets"),
        ("DagliteSettings", "daglite.settings"),
    ],
)
def test_public_callables_are_importable_from_daglite_and_their_module(name, module):
    assert name in daglite.__all__
    assert getattr(importlib.import_module(module), name) is getattr(daglite, name)


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("daglite.tasks", ["SyncTask", "AsyncTask", "SyncTaskStream", "AsyncTaskStream"]),
        ("daglite.tasks", ["_TaskDecorator"]),
        ("daglite.workflows", ["SyncWorkflow", "AsyncWorkflow", "_WorkflowDecorator"]),
        ("daglite.session", ["SessionContext", "SerializablePlugin"]),
        ("daglite.settings", ["DagliteSettings", "get_global_settings", "set_global_settings"]),
        # The reference names these types without a module; main keeps them here.
        ("daglite.caching", ["CacheStore", "CacheHashFn"]),
        ("daglite.datasets", ["DatasetStore"]),
        ("daglite.backends", ["Backend"]),
    ],
)
def test_referenced_names_are_importable(module, names):
    imported = importlib.import_module(module)
    for name in names:
        assert getattr(imported, name) is not None, f"{module}.{name}"


def test_daglite_backends_is_a_module_of_the_package():
    assert daglite.backends is importlib.import_module("daglite.backends")


def test_the_referenced_types_are_what_the_api_hands_out():
    from daglite.tasks import AsyncTask
    from daglite.tasks import AsyncTaskStream
    from daglite.tasks import SyncTask
    from daglite.tasks import SyncTaskStream
    from daglite.tasks import _TaskDecorator
    from daglite.workflows import AsyncWorkflow
    from daglite.workflows import SyncWorkflow
    from daglite.workflows import _WorkflowDecorator

    def plain() -> None: ...

    async def coro() -> None: ...

    def gen():
        yield 1

    async def agen():
        yield 1

    assert type(task(plain)) is SyncTask
    assert type(task(coro)) is AsyncTask
    assert type(task(gen)) is SyncTaskStream
    assert type(task(agen)) is AsyncTaskStream
    assert isinstance(task(), _TaskDecorator)
    assert type(task()(plain)) is SyncTask
    assert type(workflow(plain)) is SyncWorkflow
    assert type(workflow(coro)) is AsyncWorkflow
    assert isinstance(workflow(), _WorkflowDecorator)
    assert type(workflow(name="w")(coro)) is AsyncWorkflow
    with session() as ctx:
        assert isinstance(ctx, daglite.SessionContext)
    assert isinstance(get_global_settings(), DagliteSettings)


# -- signatures -------------------------------------------------------------------------------


def test_task_signature():
    assert_conforms(inspect.signature(task), TASK, extras=TASK_EXTRAS, annotations=TASK_ANNOTATIONS)
    assert_overloads(task, TASK_OVERLOADS, extras=TASK_EXTRAS, annotations=TASK_ANNOTATIONS)


def test_workflow_signature():
    assert_conforms(inspect.signature(workflow), WORKFLOW)
    assert_overloads(workflow, WORKFLOW_OVERLOADS)


def test_session_signatures():
    # beyond the reference: `report=` writes an HTML report when the session ends
    assert_conforms(
        inspect.signature(daglite.async_session), ASYNC_SESSION, extras={"report": None}
    )
    assert_conforms(inspect.signature(daglite.session), SESSION, extras={"report": None})
    assert inspect.isasyncgenfunction(inspect.unwrap(daglite.async_session))
    assert inspect.isgeneratorfunction(inspect.unwrap(daglite.session))


def test_gather_tasks_signature():
    assert_conforms(inspect.signature(daglite.gather_tasks), GATHER, extras=GATHER_EXTRAS)
    assert_overloads(daglite.gather_tasks, GATHER_OVERLOADS, extras=GATHER_EXTRAS)
    assert inspect.iscoroutinefunction(daglite.gather_tasks)  # `async def` in the reference


def test_map_tasks_signature():
    assert_conforms(inspect.signature(map_tasks), MAP, extras=MAP_EXTRAS)
    assert_overloads(map_tasks, MAP_OVERLOADS, extras=MAP_EXTRAS)
    assert not inspect.iscoroutinefunction(map_tasks)


def test_dataset_function_signatures():
    assert_conforms(inspect.signature(load_dataset), LOAD)
    assert_overloads(load_dataset, LOAD_OVERLOADS)
    assert_conforms(inspect.signature(save_dataset), SAVE)


def test_settings_functions_signatures():
    assert_conforms(inspect.signature(get_global_settings), "() -> DagliteSettings")
    assert_conforms(
        inspect.signature(set_global_settings), "(settings: DagliteSettings | None) -> None"
    )


def test_the_checker_catches_a_deviation():
    """`assert_conforms` fails on every kind of difference (so the tests above can fail)."""
    base = "(key: str, *, format: str | None = None) -> str"
    for wrong in (
        "(name: str, *, format: str | None = None) -> str",  # renamed
        "(key: str, format: str | None = None) -> str",  # kind
        "(key: str, *, format: str | None = 'json') -> str",  # default
        "(key: str, *, format: str = None) -> str",  # annotation
        "(key: str, *, format: str | None = None) -> Any",  # return annotation
        "(*, format: str | None = None, key: str = '') -> str",  # order
        "(key: str, *, format: str | None = None, extra: int = 0) -> str",  # unlisted extra
    ):
        with pytest.raises(AssertionError):
            assert_conforms(reference(wrong), base)
    with pytest.raises(AssertionError):  # an extra whose default changes the behaviour
        assert_conforms(
            reference("(key: str, *, retry: int = 3) -> None"),
            "(key: str) -> None",
            extras={"retry": 0},
        )  # noqa: E501
    with pytest.raises(AssertionError):  # a missing overload
        assert_overloads(workflow, ["(func: int) -> int"])


# -- task ---------------------------------------------------------------------------------------


def test_a_task_is_callable_with_the_original_signature():
    def scale(x: int, factor: float = 2.0, *, offset: int = 0) -> float:
        """Scale x."""
        return x * factor + offset

    scaled = task(scale)
    assert inspect.signature(scaled) == inspect.signature(scale)
    assert scaled(2, offset=1) == 5.0


def test_description_defaults_to_the_docstring():
    @task
    def one() -> None:
        """One line."""

    @task
    def many() -> None:
        """First line.

        Indented body.
        """

    @task
    def none() -> None:
        pass

    # The docstring as `inspect.getdoc` gives it (its indentation cleaned).
    assert one.description == one.__doc__ == "One line."
    assert many.description == inspect.getdoc(many.func) == "First line.\n\nIndented body."
    assert none.description == ""


def test_backend_none_inherits_from_the_session_or_the_settings_backend():
    @task
    def where(x: int) -> str:
        return current_task().backend

    @task(backend="thread")
    def pinned(x: int) -> str:
        return current_task().backend

    with session(backend="thread"):
        assert map_tasks(where, [1]) == ["thread"]
    set_global_settings(DagliteSettings(backend="thread"))
    assert map_tasks(where, [1]) == ["thread"]
    set_global_settings(DagliteSettings(backend="inline"))
    assert map_tasks(where, [1]) == ["inline"]
    with session(backend="inline"):
        assert map_tasks(pinned, [1]) == ["thread"]  # a task's own backend wins


def test_cache_ttl_and_cache_hash_are_ignored_when_cache_is_false():
    calls = []

    def exploding_hash(func, inputs):
        raise AssertionError("cache_hash must not run when caching is disabled")

    @task(cache_ttl=60, cache_hash=exploding_hash)
    def f(x: int) -> int:
        calls.append(x)
        return x

    with session():
        assert (f(1), f(1)) == (1, 1)
    assert (f(1), f(1)) == (1, 1)
    assert calls == [1, 1, 1, 1]  # never served from a cache
    assert not Path(get_global_settings().cache_store).exists()


def test_cache_string_is_a_file_based_store_for_the_task(tmp_path):
    calls = CallLog()

    @task(cache=str(tmp_path / "task-cache"))
    def f(x: int) -> int:
        calls.append(x)
        return x * 2

    assert (f(3), f(3)) == (6, 6)
    assert calls == [3]
    entries = [p for p in (tmp_path / "task-cache").rglob("*") if p.is_file()]
    entries = [p for p in entries if p.name != ".daglite-cache"]  # the store's marker
    assert len(entries) == 1  # a file on disk, under the path given
    assert CacheStore(str(tmp_path / "task-cache")).keys() == [entries[0].name]


def test_cache_ttl_is_overridden_by_a_store_with_its_own_ttl():
    now = [1000.0]
    store = CacheStore("memory://contract-ttl", ttl=100, clock=lambda: now[0])
    calls = CallLog()

    @task(cache=store, cache_ttl=1)
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    now[0] += 50  # past the task's 1 s, within the store's 100 s
    f(1)
    assert calls == [1]
    now[0] += 60
    f(1)
    assert calls == [1, 1]


# -- workflow ---------------------------------------------------------------------------------


def test_async_workflow_returns_a_coroutine_the_caller_must_await():
    ran = []

    @workflow
    async def flow(x: int) -> int:
        ran.append(x)
        return x + 1

    pending = flow(1)
    assert inspect.iscoroutine(pending)
    assert ran == []  # nothing runs until awaited
    assert asyncio.run(pending) == 2
    assert ran == [1]


def test_workflow_with_parentheses_and_its_defaults():
    def job(x: int) -> int:
        """Job docs."""
        return x

    plain = workflow()(job)
    assert (plain.name, plain.description, plain(4)) == ("job", "Job docs.", 4)


# -- session / async_session --------------------------------------------------------------------


def test_session_settings_fall_back_to_the_global_singleton():
    chosen = DagliteSettings(backend="thread", processors=())
    set_global_settings(chosen)
    with session() as ctx:
        assert ctx.settings is chosen
        assert ctx.backend == "thread"  # backend=None uses settings.backend

    async def main():
        async with daglite.async_session(settings=DagliteSettings(processors=())) as actx:
            return actx.backend, actx.settings is get_global_settings()

    assert asyncio.run(main()) == ("inline", False)


def test_session_stores_may_be_store_objects_or_string_paths(tmp_path):
    cache = CacheStore(str(tmp_path / "c"))
    datasets = DatasetStore(str(tmp_path / "d"))
    calls = CallLog()

    @task(cache=True)
    def f(x: int) -> int:
        calls.append(x)
        return x

    for cache_spec, dataset_spec in ((cache, datasets), (str(tmp_path / "c"), str(tmp_path / "d"))):
        with session(cache_store=cache_spec, dataset_store=dataset_spec):
            f(1)
            path = save_dataset("v.json", [1])
        assert Path(path).parent == tmp_path / "d"
    assert calls == [1]  # the second session found the first one's entry at the same path


# -- map_tasks / gather_tasks -------------------------------------------------------------------


@task
async def loop_of_item(x: int) -> tuple[int, int, int]:
    await asyncio.sleep(0)
    return x, id(asyncio.get_running_loop()), threading.get_ident()


def test_map_runs_async_tasks_to_completion_in_the_worker_threads():
    """Async tasks are run as with `asyncio.run` where the item executes."""
    caller = threading.get_ident()
    with session(backend="thread"):
        results = map_tasks(loop_of_item, range(4))
    assert [x for x, _, _ in results] == [0, 1, 2, 3]
    assert all(ident != caller for _, _, ident in results)


def test_map_of_async_tasks_from_a_running_loop_uses_a_loop_of_its_own():
    async def main():
        outer = id(asyncio.get_running_loop())
        return outer, map_tasks(loop_of_item, [1, 2], backend="inline")

    outer, results = asyncio.run(main())
    assert [x for x, _, _ in results] == [1, 2]
    assert all(loop != outer for _, loop, _ in results)


def test_gather_tasks_runs_on_the_running_loop_with_asyncio_gather():
    # "Gather async tasks concurrently across iterables using asyncio.gather": with
    # backend=None the items run on the caller's loop (the reference's gather never hands
    # them to a backend), also inside a session whose backend is "thread".
    async def main():
        outer = id(asyncio.get_running_loop())
        with session(backend="thread"):
            return outer, await daglite.gather_tasks(loop_of_item, [1, 2, 3])

    outer, results = asyncio.run(main())
    assert [x for x, _, _ in results] == [1, 2, 3]
    assert {loop for _, loop, _ in results} == {outer}


def test_gather_tasks_rejects_sync_tasks_with_the_reference_message():
    @task
    def sync(x: int) -> int:
        return x

    with pytest.raises(TypeError) as info:
        asyncio.run(daglite.gather_tasks(sync, [1]))
    assert str(info.value) == (
        "`gather_tasks` requires an async `@task`. Use `map_tasks` for sync tasks, or make "
        "your task async."
    )


# -- load_dataset / save_dataset ----------------------------------------------------------------


def test_save_dataset_returns_the_actual_path_where_data_was_stored(tmp_path):
    path = save_dataset("out/numbers.json", [1, 2])
    assert os.path.isabs(path)
    assert json.loads(Path(path).read_text()) == [1, 2]
    assert Path(path) == Path(get_global_settings().dataset_store).resolve() / "out/numbers.json"
    with session(dataset_store=str(tmp_path / "run")):
        inside = save_dataset("a.txt", "hello")
    assert Path(inside) == tmp_path / "run" / "a.txt"
    assert Path(inside).read_text() == "hello"


def test_load_dataset_return_type_dispatches_the_format():
    store = memory_dataset_store()
    save_dataset("greeting", "hello", store=store)  # no extension: saved by the value's type
    with pytest.raises(daglite.DatasetError):
        load_dataset("greeting", store=store)  # no hint: the text is not a pickle
    assert load_dataset("greeting", str, store=store) == "hello"
    save_dataset("blob", b"\x00\x01", store=store)
    loaded = load_dataset("blob", bytearray, store=store)
    assert type(loaded) is bytearray and loaded == bytearray(b"\x00\x01")


def test_dataset_keys_resolve_placeholders_from_the_current_tasks_bound_arguments():
    store = memory_dataset_store()

    @task
    def step(region: str, year: int = 2024) -> Any:
        save_dataset("{region}/{year}.json", {"region": region}, store=store)
        return load_dataset("{region}/{year}.json", dict, store=store)

    with session():
        assert step("eu") == {"region": "eu"}
    assert store.list() == ["eu/2024.json"]


def test_dataset_store_resolution_order(tmp_path):
    """explicit argument -> task context -> session context -> global settings."""
    explicit, own, in_session = (memory_dataset_store() for _ in range(3))
    settings_root = tmp_path / "from-settings"
    set_global_settings(DagliteSettings(dataset_store=str(settings_root), processors=()))

    @task(dataset_store=own)
    def with_store(key: str, store: Any = None) -> Any:
        save_dataset(key, key, format="text", store=store)
        return load_dataset(key, format="text", store=store)

    @task
    def without_store(key: str) -> Any:
        save_dataset(key, key, format="text")
        return load_dataset(key, format="text")

    with session(dataset_store=in_session):
        assert with_store("1-explicit", explicit) == "1-explicit"
        assert with_store("2-task") == "2-task"
        assert without_store("3-session") == "3-session"
        assert save_dataset("4-outside-a-task", 4, format="json")
    assert with_store("5-task-bare") == "5-task-bare"
    assert without_store("6-settings") == "6-settings"

    assert explicit.list() == ["1-explicit"]
    assert own.list() == ["2-task", "5-task-bare"]
    assert in_session.list() == ["3-session", "4-outside-a-task"]
    assert sorted(p.name for p in settings_root.iterdir()) == ["6-settings"]


def test_map_items_of_a_task_with_a_store_save_to_it():
    own, in_session = memory_dataset_store(), memory_dataset_store()

    @task(dataset_store=own)
    def item(x: int) -> str:
        return save_dataset("item-{map_index}-{x}.json", x)

    with session(backend="thread", dataset_store=in_session):
        map_tasks(item, [7, 8])
    assert own.list() == ["item-0-7.json", "item-1-8.json"]
    assert in_session.list() == []


def test_session_and_async_session_are_context_managers():
    async def main():
        manager = daglite.async_session()
        assert isinstance(manager, contextlib.AbstractAsyncContextManager)
        async with manager as ctx:
            return ctx

    assert isinstance(asyncio.run(main()), daglite.SessionContext)
    manager = session()
    assert isinstance(manager, contextlib.AbstractContextManager)
    with manager as ctx:
        assert isinstance(ctx, daglite.SessionContext)
