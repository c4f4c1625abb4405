"""`@task`: eager task objects for plain, async, generator and async-generator functions.

A task is an immutable object built once, at decoration time, where every option is
validated. Calling it runs the function at once through the run pipeline
(`daglite.pipeline`); a call outside any session with no option that needs the pipeline
stays a plain call.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Iterator
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import Generic
from typing import ParamSpec
from typing import TypeVar
from typing import overload

import attrs

from daglite import pipeline
from daglite.context import bare_runtime
from daglite.context import current_runtime
from daglite.context import open_sessions
from daglite.context import warn_lost_session
from daglite.errors import TaskError
from daglite.lifecycle import task_error
from daglite.taskoptions import check_options
from daglite.templates import BUILTIN_PLACEHOLDERS  # noqa: F401 - re-exported
from daglite.templates import check_template
from daglite.templates import placeholders

if TYPE_CHECKING:
    from daglite.caching import CacheHashFn
    from daglite.caching import CacheStore
    from daglite.datasets import DatasetStore

P = ParamSpec("P")
R = TypeVar("R")


def default_name(func: Callable[..., Any]) -> str:
    """A callable's name: `__name__`, or its class name for callable objects and partials."""
    return getattr(func, "__name__", None) or type(func).__name__


def qualified_name(func: Callable[..., Any]) -> str:
    """`module.qualname` of a function, or of the class of a callable object or partial."""
    module = getattr(func, "__module__", None) or type(func).__module__
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{qualname}"


_DATASET_CALLS = frozenset({"save_dataset", "load_dataset"})


def _uses_datasets(func: Callable[..., Any]) -> bool:
    """Whether `func`'s code names `save_dataset` or `load_dataset`.

    Their `{param}` keys are filled from the call's arguments, so those must be bound.
    """
    stack = [getattr(func, "__code__", None)]
    while stack:
        code = stack.pop()
        if code is None:
            continue
        if _DATASET_CALLS.intersection(code.co_names):
            return True
        stack.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    return False


def _simple_parameters(signature: inspect.Signature) -> tuple[str, ...] | None:
    """Parameter names when all are positional-or-keyword (then binding can skip inspect)."""
    kinds = {p.kind for p in signature.parameters.values()}
    if kinds <= {inspect.Parameter.POSITIONAL_OR_KEYWORD}:
        return tuple(signature.parameters)
    return None


@attrs.frozen(slots=False, eq=False, repr=False)
class BaseTask(Generic[P, R]):
    """What every kind of task shares: the function, its options and its call machinery.

    Build tasks with `@task`, not with this class. The options are those of `@task`
    (`cache_hash` is kept as `cache_hash_fn`).

    Attributes:
        func: The decorated function.
        name: The name template (placeholders resolved per call).
        description: The description (the function's docstring by default).
        signature: The function's signature (also what `inspect.signature(task)` gives).
        qualname: Module and qualified name of the function.
        is_async: True for tasks over `async def` and async generator functions.
        is_stream: True for tasks over generator and async generator functions.
    """

    func: Callable[..., Any]
    name: str
    description: str = ""
    backend: str | None = None
    retries: int = 0
    timeout: float | None = None
    retry_delay: float = 0.0
    retry_backoff: float = 1.0
    cache: Any = False
    cache_store: Any = None
    cache_ttl: int | None = None
    cache_hash_fn: Any = None
    cache_version: str | None = None
    cache_ignore: tuple[str, ...] = ()
    dataset: str | None = None
    dataset_store: Any = None
    dataset_format: str | None = None

    # Derived at decoration time.
    signature: inspect.Signature = attrs.field(init=False)
    qualname: str = attrs.field(init=False)
    name_fields: frozenset[str] = attrs.field(init=False)
    needs_inputs: bool = attrs.field(init=False)
    plain: bool = attrs.field(init=False)
    _param_names: tuple[str, ...] | None = attrs.field(init=False)
    _defaults: dict[str, Any] = attrs.field(init=False)

    is_async = False
    is_stream = False

    def __attrs_post_init__(self) -> None:
        func = self.func
        signature = inspect.signature(func)
        setattr_ = object.__setattr__
        setattr_(self, "signature", signature)
        setattr_(self, "qualname", qualified_name(func))
        setattr_(self, "name_fields", placeholders(self.name))
        setattr_(
            self,
            "needs_inputs",
            bool(self.name_fields)
            or self.cache is not False
            or self.dataset is not None
            or _uses_datasets(func),
        )
        # A plain task is a sync function with nothing for the pipeline to manage: outside a
        # listening session it is called directly, and its arguments are only checked if
        # the call fails (see `failed_call`).
        setattr_(
            self,
            "plain",
            self.retries == 0
            and self.timeout is None
            and not self.needs_inputs
            and not self.is_async
            and not self.is_stream,
        )
        setattr_(self, "_param_names", _simple_parameters(signature))
        setattr_(
            self,
            "_defaults",
            {
                name: p.default
                for name, p in signature.parameters.items()
                if p.default is not inspect.Parameter.empty
            },
        )
        # Look like the function: name, docs, module and signature (inspect follows __wrapped__).
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            if hasattr(func, attr):
                setattr_(self, attr, getattr(func, attr))
        setattr_(self, "__wrapped__", func)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} '{self.name}' of {self.qualname}>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        # A task that is importable by name travels as a reference, like a function would.
        module_name = getattr(self.func, "__module__", None)
        module = sys.modules.get(module_name) if module_name else None
        qualname = getattr(self.func, "__qualname__", "")
        if (
            module is not None
            and module_name != "__main__"
            and "<locals>" not in qualname
            and _lookup(module, qualname) is self
        ):
            return (_import_task, (module_name, qualname))
        return super().__reduce_ex__(protocol)

    # -- per-call helpers used by the pipeline --------------------------------------------

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults applied.

        Raises:
            TypeError: The arguments do not fit the signature (as a plain call would).
        """
        names = self._param_names
        if names is not None and len(args) <= len(names):
            inputs = dict(zip(names, args))
            if kwargs:
                if any(k in inputs or k not in self.signature.parameters for k in kwargs):
                    return self._bind_slow(args, kwargs)
                inputs.update(kwargs)
            if len(inputs) < len(names):
                for name in names:
                    if name not in inputs:
                        if name not in self._defaults:
                            return self._bind_slow(args, kwargs)
                        inputs[name] = self._defaults[name]
                inputs = {name: inputs[name] for name in names}
            return inputs
        return self._bind_slow(args, kwargs)

    def _bind_slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"task '{self.name}': {exc}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def failed_call(
        self,
        exc: Exception,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        map_index: int | None = None,
    ) -> TaskError:
        """The `TaskError` for a plain call that raised `exc` (set `__cause__` yourself).

        Raises:
            TypeError: The arguments do not fit the signature: the caller's mistake, reported
                as every other kind of call reports it (see `bind`).
        """
        if isinstance(exc, TypeError):
            self.bind(args, kwargs)
        return task_error(self.name, map_index, exc, 1)

    def resolve_name(self, inputs: dict[str, Any], map_index: int | None) -> str:
        """The task name with its `{param}` and `{map_index}` placeholders filled in.

        Raises:
            ValueError: A value does not take the template's format spec (`{x:d}` of a str).
        """
        try:
            return self.name.format_map({**inputs, "map_index": map_index})
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise ValueError(
                f"cannot fill the name template '{self.name}' of task {self.qualname}: "
                f"{type(exc).__name__}: {exc}"
            ) from None

    def _prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        runtime = current_runtime.get()
        if runtime is None:
            if open_sessions:  # a session is open, but not in this thread's context
                warn_lost_session(f"task '{self.name}'", depth=4)
            runtime = bare_runtime()
        return runtime, pipeline.make_metadata(self, runtime, args, kwargs, None, None)


def _lookup(module: Any, qualname: str) -> Any:
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def _import_task(module_name: str, qualname: str) -> Any:
    import importlib

    return _lookup(importlib.import_module(module_name), qualname)


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
                return pipeline.run_plain(self, None, None, args, kwargs)
            runtime = bare_runtime()
        drive = pipeline.driver(self, runtime)
        plain = drive is pipeline.run_plain
        meta = pipeline.make_metadata(self, runtime, args, kwargs, None, None, plain=plain)
        return drive(self, runtime, meta, args, kwargs)


class AsyncTask(BaseTask[P, R]):
    """A task wrapping an `async def` function: calling it returns a coroutine to await."""

    is_async = True

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        """A coroutine that runs the task when awaited and returns its value."""
        runtime, meta = self._prepare(args, kwargs)
        return pipeline.call(self, runtime, meta, args, kwargs)


class SyncTaskStream(BaseTask[P, R]):
    """A task wrapping a generator function: calling it returns an iterator of its items."""

    is_stream = True

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Iterator[R]:
        """An iterator over the items the generator yields, produced as they are consumed."""
        runtime, meta = self._prepare(args, kwargs)
        return pipeline.call(self, runtime, meta, args, kwargs)


class AsyncTaskStream(BaseTask[P, R]):
    """A task wrapping an async generator function: calling it returns an async iterator."""

    is_async = True
    is_stream = True

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[R]:
        """An async iterator over the items the async generator yields."""
        runtime, meta = self._prepare(args, kwargs)
        return pipeline.call(self, runtime, meta, args, kwargs)


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
    def __call__(self, func: Callable[..., Any]) -> Any:
        return _make_task(func, **self._options)


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
        TypeError: `@task` was applied to a class or a non-callable.
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
    options = {
        "name": name,
        "description": description,
        "backend": backend,
        "retries": retries,
        "timeout": timeout,
        "cache": cache,
        "cache_store": cache_store,
        "cache_ttl": cache_ttl,
        "cache_hash": cache_hash,
        "dataset": dataset,
        "dataset_store": dataset_store,
        "dataset_format": dataset_format,
        "retry_delay": retry_delay,
        "retry_backoff": retry_backoff,
        "cache_version": cache_version,
        "cache_ignore": cache_ignore,
    }
    if func is not None:
        return _make_task(func, **options)
    return _TaskDecorator(options)


def _make_task(
    func: Any,
    *,
    name: str | None,
    description: str | None,
    backend: str | None,
    retries: int,
    timeout: float | None,
    cache: Any,
    cache_store: Any,
    cache_ttl: int | None,
    cache_hash: Any,
    dataset: str | None,
    dataset_store: Any,
    dataset_format: str | None,
    retry_delay: float,
    retry_backoff: float,
    cache_version: str | None,
    cache_ignore: Sequence[str],
) -> BaseTask[Any, Any]:
    if inspect.isclass(func) or not callable(func):
        raise TypeError("`@task` can only be applied to callable functions.")
    if isinstance(func, BaseTask):
        raise TypeError(f"{func!r} is already a task; apply `@task` to the function only once.")

    task_name = name if name is not None else default_name(func)
    if not isinstance(task_name, str) or not task_name:
        raise ValueError(f"Task name must be a non-empty string, not {task_name!r}.")
    if "." in task_name:
        raise ValueError(
            f"Task name '{task_name}' cannot contain period ('.') characters; use '_' or '-'."
        )
    check_template("Name", task_name, func)
    if dataset is not None:
        check_template("Dataset", dataset, func)

    check_options(
        retries=retries,
        timeout=timeout,
        retry_delay=retry_delay,
        retry_backoff=retry_backoff,
        cache_ttl=cache_ttl,
        backend=backend,
        dataset_format=dataset_format,
        cache=cache,
        cache_store=cache_store,
        dataset_store=dataset_store,
    )
    ignore = tuple(cache_ignore)
    unknown = set(ignore) - set(inspect.signature(func).parameters)
    if unknown:
        raise ValueError(
            f"cache_ignore names {sorted(unknown)} which are not parameters of "
            f"'{task_name}': {sorted(inspect.signature(func).parameters)}."
        )

    if cache is not False and cache_hash is None:
        from daglite.cacheidentity import refuse_uncacheable

        refuse_uncacheable(func, task_name)

    is_sync_gen = inspect.isgeneratorfunction(func)
    is_async_gen = inspect.isasyncgenfunction(func)
    if is_sync_gen or is_async_gen:
        if cache is not False:
            raise ValueError("Caching is not supported for generator tasks.")
        if retries > 0:
            raise ValueError("Retries are not supported for generator tasks.")
        if timeout is not None:
            raise ValueError("Timeouts are not supported for generator tasks.")
        if dataset is not None:
            raise ValueError(
                "Dataset auto-save is not supported for generator tasks; collect the items in a "
                "task and save that result."
            )
        cls: type[BaseTask[Any, Any]] = SyncTaskStream if is_sync_gen else AsyncTaskStream
    elif inspect.iscoroutinefunction(func):
        cls = AsyncTask
    else:
        cls = SyncTask

    return cls(
        func=func,
        name=task_name,
        description=description if description is not None else inspect.getdoc(func) or "",
        backend=backend,
        retries=retries,
        timeout=float(timeout) if timeout is not None else None,
        retry_delay=float(retry_delay),
        retry_backoff=float(retry_backoff),
        cache=cache,
        cache_store=cache_store,
        cache_ttl=cache_ttl,
        cache_hash_fn=cache_hash,
        cache_version=cache_version,
        cache_ignore=ignore,
        dataset=dataset,
        dataset_store=dataset_store,
        dataset_format=dataset_format,
    )
