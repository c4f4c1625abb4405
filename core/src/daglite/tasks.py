"""`@task`: eager task objects for plain, async, generator and async-generator functions.

A task is its definition (`daglite.taskspec.TaskSpec`: options, function, signature, built
once at decoration, where every option is validated) made callable. Calling it runs the
function at once through the run pipeline (`daglite.pipeline`, driven by `daglite.drivers`);
a call outside any session with no option that needs the pipeline stays a plain call.

Tasks bind like functions: a task defined in a class is a method (`obj.method(x)` calls it
with `obj` as its first argument, and so does `Cls.method(obj, x)`); put `@staticmethod` or
`@classmethod` above `@task` for those kinds of method.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Iterator
from collections.abc import Sequence
from types import MethodType
from typing import TYPE_CHECKING
from typing import Any
from typing import Concatenate
from typing import Generic
from typing import ParamSpec
from typing import TypeVar
from typing import cast
from typing import overload

from daglite import drivers
from daglite import pipeline
from daglite.context import bare_runtime
from daglite.context import current_runtime
from daglite.context import open_sessions
from daglite.context import warn_lost_session
from daglite.taskspec import TaskSpec
from daglite.taskspec import _import_task as _import_task  # tasks pickled before it moved
from daglite.taskspec import default_name as default_name  # re-exported
from daglite.taskspec import qualified_name as qualified_name  # re-exported
from daglite.templates import BUILTIN_PLACEHOLDERS as BUILTIN_PLACEHOLDERS  # re-exported

if TYPE_CHECKING:
    from typing_extensions import Self

    from daglite.caching import CacheHashFn
    from daglite.caching import CacheStore
    from daglite.datasets import DatasetStore

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")


class BaseTask(TaskSpec, Generic[P, R]):
    """What every kind of task shares: its definition (`TaskSpec`) and how it binds.

    Build tasks with `@task`, not with this class. A task is a descriptor, as a function
    is: read from an instance of the class it is defined in, it is bound to that instance
    (a `types.MethodType` of the task, which pickles as the instance and the task's name).
    """

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        return self if instance is None else MethodType(cast("Callable[..., Any]", self), instance)

    def _prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        runtime = current_runtime.get()
        if runtime is None:
            if open_sessions:  # a session is open, but not in this thread's context
                warn_lost_session(f"task '{self.name}'", depth=4)
            runtime = bare_runtime()
        return runtime, pipeline.make_metadata(self, runtime, args, kwargs, None, None)


class SyncTask(BaseTask[P, R]):
    """A task wrapping a plain function: calling it returns the function's value."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the task now and return its value.

        Raises:
            TaskError: The function raised (its exception is the `__cause__`), or every
                attempt failed.
            TaskTimeoutError: The last attempt overran the task's `timeout`.
        """
        runtime = current_runtime.get()
        if runtime is None:
            if open_sessions:  # a session is open, but not in this thread's context
                warn_lost_session(f"task '{self.name}'")
            if self.plain:  # a bare call with nothing to manage stays a plain call
                return drivers.run_plain(self, None, None, args, kwargs)
            runtime = bare_runtime()
        drive = drivers.driver(self, runtime)
        plain = drive is drivers.run_plain
        meta = pipeline.make_metadata(self, runtime, args, kwargs, None, None, plain=plain)
        return drive(self, runtime, meta, args, kwargs)

    if TYPE_CHECKING:  # bound to an instance: a method without its first parameter

        @overload
        def __get__(self, instance: None, owner: Any = None) -> Self: ...
        @overload
        def __get__(
            self: SyncTask[Concatenate[Any, Q], R], instance: object, owner: Any = None
        ) -> Callable[Q, R]: ...
        def __get__(self, instance: Any, owner: Any = None) -> Any: ...


class AsyncTask(BaseTask[P, R]):
    """A task wrapping an `async def` function: calling it returns a coroutine to await."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        """A coroutine that runs the task when awaited and returns its value."""
        runtime, meta = self._prepare(args, kwargs)
        return drivers.call(self, runtime, meta, args, kwargs)

    if TYPE_CHECKING:

        @overload
        def __get__(self, instance: None, owner: Any = None) -> Self: ...
        @overload
        def __get__(
            self: AsyncTask[Concatenate[Any, Q], R], instance: object, owner: Any = None
        ) -> Callable[Q, Coroutine[Any, Any, R]]: ...
        def __get__(self, instance: Any, owner: Any = None) -> Any: ...


class SyncTaskStream(BaseTask[P, R]):
    """A task wrapping a generator function: calling it returns an iterator of its items."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Iterator[R]:
        """An iterator over the items the generator yields, produced as they are consumed."""
        runtime, meta = self._prepare(args, kwargs)
        return drivers.call(self, runtime, meta, args, kwargs)

    if TYPE_CHECKING:

        @overload
        def __get__(self, instance: None, owner: Any = None) -> Self: ...
        @overload
        def __get__(
            self: SyncTaskStream[Concatenate[Any, Q], R], instance: object, owner: Any = None
        ) -> Callable[Q, Iterator[R]]: ...
        def __get__(self, instance: Any, owner: Any = None) -> Any: ...


class AsyncTaskStream(BaseTask[P, R]):
    """A task wrapping an async generator function: calling it returns an async iterator."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[R]:
        """An async iterator over the items the async generator yields."""
        runtime, meta = self._prepare(args, kwargs)
        return drivers.call(self, runtime, meta, args, kwargs)

    if TYPE_CHECKING:

        @overload
        def __get__(self, instance: None, owner: Any = None) -> Self: ...
        @overload
        def __get__(
            self: AsyncTaskStream[Concatenate[Any, Q], R], instance: object, owner: Any = None
        ) -> Callable[Q, AsyncIterator[R]]: ...
        def __get__(self, instance: Any, owner: Any = None) -> Any: ...


class _TaskDecorator:
    """What `@task(...)` with options returns: apply it to a function."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options

    @overload
    def __call__(self, func: Callable[P, AsyncIterator[R]]) -> AsyncTaskStream[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, func: Callable[P, Iterator[R]]) -> SyncTaskStream[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, func: Callable[P, Coroutine[Any, Any, R]]) -> AsyncTask[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, func: Callable[P, R]) -> SyncTask[P, R]: ...
    def __call__(self, func: Any) -> Any:
        return _make_task(func, self._options)


# Most specific first: an async-generator function also matches `Callable[P, R]`, so the
# later overloads overlap the earlier ones on purpose (hence the `overload-overlap` ignores).
@overload
def task(func: Callable[P, AsyncIterator[R]]) -> AsyncTaskStream[P, R]: ...  # type: ignore[overload-overlap]
@overload
def task(func: Callable[P, Iterator[R]]) -> SyncTaskStream[P, R]: ...  # type: ignore[overload-overlap]
@overload
def task(func: Callable[P, Coroutine[Any, Any, R]]) -> AsyncTask[P, R]: ...  # type: ignore[overload-overlap]
@overload
def task(func: Callable[P, R]) -> SyncTask[P, R]: ...
@overload
def task(
    *,
    name: str | None = None,
    description: str | None = None,
    backend: str | None = None,
    retries: int = 0,
    timeout: float | None = None,
    cache: bool | str | CacheStore = False,
    cache_store: CacheStore | str | None = None,
    cache_ttl: int | None = None,
    cache_hash: CacheHashFn | None = None,
    dataset: str | None = None,
    dataset_store: DatasetStore | str | None = None,
    dataset_format: str | None = None,
    retry_delay: float = 0.0,
    retry_backoff: float = 1.0,
    cache_version: str | None = None,
    cache_ignore: Sequence[str] = (),
) -> _TaskDecorator: ...
def task(  # noqa: D417 - options are documented as a list below
    func: Any = None,
    *,
    name: str | None = None,
    description: str | None = None,
    backend: str | None = None,
    retries: int = 0,
    timeout: float | None = None,
    cache: bool | str | CacheStore = False,
    cache_store: CacheStore | str | None = None,
    cache_ttl: int | None = None,
    cache_hash: CacheHashFn | None = None,
    dataset: str | None = None,
    dataset_store: DatasetStore | str | None = None,
    dataset_format: str | None = None,
    retry_delay: float = 0.0,
    retry_backoff: float = 1.0,
    cache_version: str | None = None,
    cache_ignore: Sequence[str] = (),
) -> Any:
    """Creates a daglite task from a sync or async function.

    The decorated function executes immediately on call (no futures, no graph). When called
    inside an active session or workflow it emits events, fires hooks, participates in caching,
    and can interact with dataset stores.

    Args:
        name: Custom name of the task. Can include `{param}` placeholders for argument values and
            `{map_index}` for the current map iteration index (if applicable). Defaults to the
            function's `__name__`. Cannot contain period (`.`) characters.
        description: Description of the task. Defaults to the function's docstring.
        backend: Backend name for parallel operations. If `None`, inherits from either the active
            session or the default settings backend.
        retries: Number of automatic task retries on failure.
        timeout: Max execution time in seconds, per attempt. An overrun raises
            `TaskTimeoutError` (and counts as a failed attempt for `retries`).
        cache: Whether the task participates in caching: `False` (default) no caching; `True`
            the session's cache store; a `str` a path to a file based cache store for this task;
            a `CacheStore` instance, used as given.
        cache_store: Cache store for this task (overrides the session's when `cache=True`).
        cache_ttl: Cache time-to-live in seconds. Ignored if `cache` is `False`.
        cache_hash: Custom `(func, inputs) -> str` hash function replacing the default key.
        dataset: Key template under which every result is saved as a dataset.
        dataset_store: Dataset store for `dataset` and for the `save_dataset` / `load_dataset`
            calls the task makes without `store=` (defaults to the session's).
        dataset_format: Format of the auto-saved dataset (defaults to the key's extension).
        retry_delay: Seconds to wait before the first retry (default 0).
        retry_backoff: Multiplier applied to the delay after each retry (default 1).
        cache_version: Extra string mixed into the cache key; change it to invalidate.
        cache_ignore: Parameter names left out of the cache key.

    Returns:
        A sync or async eager task callable with the original signature.

    Raises:
        TypeError: `@task` was applied to a class, a non-callable, a task, or a
            `staticmethod`/`classmethod` object (put that decorator above `@task`).
        ValueError: An option is invalid (the message names it and what is allowed).

    Examples:
        >>> from daglite import task
        >>> @task
        ... def add(x: int, y: int) -> int:
        ...     return x + y
        >>> add(2, 3)
        5

        With options, and a name resolved from the arguments:
        >>> @task(name="fetch-{page}", retries=2, timeout=10)
        ... def fetch(page: int) -> str:
        ...     return f"page {page}"
        >>> fetch(1)
        'page 1'
    """
    options = dict(locals())  # the keyword options, as named in the signature above
    del options["func"]
    if func is not None:
        return _make_task(func, options)
    return _TaskDecorator(options)


def _make_task(func: Any, options: dict[str, Any]) -> BaseTask[Any, Any]:
    """The task of `func`'s kind (sync, async, generator, async generator) with `options`."""
    cls: type[BaseTask[Any, Any]]
    if inspect.isgeneratorfunction(func):
        cls = SyncTaskStream
    elif inspect.isasyncgenfunction(func):
        cls = AsyncTaskStream
    elif inspect.iscoroutinefunction(func):
        cls = AsyncTask
    else:
        cls = SyncTask
    return cls(func, **options)
