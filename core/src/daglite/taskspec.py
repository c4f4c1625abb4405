"""`TaskSpec`: the definition of a task, built once at decoration.

A spec is the task's options (`daglite.taskoptions.TaskOptions`, checked as they are built)
plus the function and what is derived from it once: the resolved name and description, the
signature, the qualified name, the kind (async, stream), whether a call needs its arguments
bound. It binds a call's arguments (`bind`), fills the name template (`resolve_name`) and
holds the state of its cache keys (`keys`, built on first use). The run pipeline, caching
and datasets work from the spec; `daglite.tasks` makes it callable.

A spec that can be imported by name (`module.qualname`, as a module-level or class-level
task can) pickles as that reference, like a function: worker processes import it.
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

from daglite.taskoptions import TaskOptions
from daglite.templates import placeholders

if TYPE_CHECKING:
    from daglite.taskkeys import TaskKeys


def default_name(func: Callable[..., Any]) -> str:
    """A callable's name: `__name__`, or its class name for callable objects and partials."""
    return getattr(func, "__name__", None) or type(func).__name__


def qualified_name(func: Callable[..., Any]) -> str:
    """`module.qualname` of a function, or of the class of a callable object or partial."""
    module = getattr(func, "__module__", None) or type(func).__module__
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{qualname}"


def check_decoratable(func: Any) -> None:
    """`@task` can wrap `func`: a function or other callable, not yet a task.

    Raises:
        TypeError: `func` is a class, not callable, already a task, or a `staticmethod` /
            `classmethod` object (the message says to put that decorator above `@task`).
    """
    if isinstance(func, (staticmethod, classmethod)):
        kind = type(func).__name__
        raise TypeError(
            f"`@task` cannot wrap a {kind} object; put `@{kind}` above `@task`, so that the "
            f"{kind} wraps the task: `@{kind}`, then `@task`, then "
            f"`def {default_name(func.__func__)}(...)`."
        )
    if inspect.isclass(func) or not callable(func):
        raise TypeError("`@task` can only be applied to callable functions.")
    if isinstance(func, TaskSpec):
        raise TypeError(f"{func!r} is already a task; apply `@task` to the function only once.")


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


class TaskSpec(TaskOptions):
    """A task's definition: its options, its function and what is derived from them.

    Build tasks with `@task`, not with this class (`daglite.tasks` makes specs callable).

    Attributes:
        func: The decorated function.
        name: The name template (the function's name by default; placeholders are filled
            per call by `resolve_name`).
        description: The description (the function's docstring by default).
        signature: The function's signature (also what `inspect.signature(task)` gives).
        qualname: Module and qualified name of the function.
        is_async: True for `async def` and async generator functions.
        is_stream: True for generator and async generator functions.
        name_fields: The parameters the name template uses.
        needs_inputs: Whether every call needs its arguments bound (templates, caching,
            datasets).
        plain: A sync function with nothing for the pipeline to manage: outside a listening
            session it is called directly, and its arguments are only checked if the call
            fails.
        keys: The state of its cache keys (`daglite.taskkeys.TaskKeys`), built on first use.
    """

    # Set by `__init__` (the options are the fields of `TaskOptions`, checked there); frozen
    # like them.
    func: Callable[..., Any]
    name: str  # pyright: ignore[reportIncompatibleVariableOverride] - resolved, never None
    description: str  # pyright: ignore[reportIncompatibleVariableOverride] - likewise
    signature: inspect.Signature
    qualname: str
    is_async: bool
    is_stream: bool
    name_fields: frozenset[str]
    needs_inputs: bool
    plain: bool
    _param_names: tuple[str, ...] | None
    _defaults: dict[str, Any]

    # A task is itself, as a function is (options compare by value; tasks by identity).
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __init__(self, func: Callable[..., Any], **options: Any) -> None:
        """The spec of `func` with `options`, those of `@task`.

        A `None` (or absent) name or description is the function's name or docstring.

        Raises:
            TypeError: `func` cannot be a task (see `check_decoratable`).
            ValueError: An option is invalid (the message names it and what is allowed).
        """
        check_decoratable(func)
        if options.get("name") is None:
            options["name"] = default_name(func)
        if options.get("description") is None:
            options["description"] = inspect.getdoc(func) or ""
        super().__init__(**options)
        self.check_function(func, self.name)
        signature = inspect.signature(func)
        setattr_ = object.__setattr__  # frozen: set once, here
        setattr_(self, "func", func)
        setattr_(self, "signature", signature)
        setattr_(self, "qualname", qualified_name(func))
        is_stream = inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func)
        is_async = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
        setattr_(self, "is_stream", is_stream)
        setattr_(self, "is_async", is_async)
        setattr_(self, "name_fields", frozenset(placeholders(self.name)))
        needs_inputs = (
            bool(self.name_fields)
            or self.cache is not False
            or self.dataset is not None
            or _uses_datasets(func)
        )
        setattr_(self, "needs_inputs", needs_inputs)
        plain = self.retries == 0 and self.timeout is None and not needs_inputs
        setattr_(self, "plain", plain and not is_async and not is_stream)
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

    @functools.cached_property
    def keys(self) -> TaskKeys:
        """The state of this task's cache keys (built on first use: only cached tasks key)."""
        from daglite.taskkeys import TaskKeys

        return TaskKeys(
            self.func,
            self.name,
            self.qualname,
            tuple(self.signature.parameters),
            self.cache_hash,
            self.cache_version,
            tuple(self.cache_ignore),
        )

    @property
    def cache_hash_fn(self) -> Callable[..., str] | None:
        """The `cache_hash` option (its name on tasks before `TaskOptions`)."""
        return self.cache_hash

    def __cache_key__(self) -> Callable[..., Any]:
        """What identifies the task as a value in a cache key: its function.

        A task passed as an argument or read as a global is keyed by its function's name,
        code and state (`daglite.cachekeys`).
        """
        return self.func

    def __repr__(self) -> str:
        return f"<{type(self).__name__} '{self.name}' of {self.qualname}>"

    def __getstate__(self) -> dict[str, Any]:
        # Pickled by value (not importable by name): the key state is rebuilt where it is
        # used, since it reads that process's globals and closure cells. The signature is
        # rebuilt from the function (pickling it is half the cost of a task: one per map).
        state = dict(self.__dict__)
        state.pop("keys", None)
        state.pop("signature", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "signature" not in state:
            object.__setattr__(self, "signature", inspect.signature(self.func))

    def __reduce_ex__(self, protocol: Any) -> Any:
        # A spec that is importable by name travels as a reference, like a function would.
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

    # -- per call ---------------------------------------------------------------------------

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


def unbind(func: Any) -> tuple[TaskSpec, tuple[Any, ...]] | None:
    """A task and the arguments bound before the call's own, or `None` if `func` is neither.

    `obj.method` of a task defined in a class is the task bound to `obj` (as a function
    would be): that gives `(task, (obj,))`; a task gives `(task, ())`.
    """
    if isinstance(func, TaskSpec):
        return func, ()
    if isinstance(func, types.MethodType) and isinstance(func.__func__, TaskSpec):
        return func.__func__, (func.__self__,)
    return None


def _lookup(module: Any, qualname: str) -> Any:
    obj = module
    for part in qualname.split("."):
        found = vars(obj).get(part) if isinstance(obj, type) else None
        if isinstance(found, (staticmethod, classmethod)):  # the task it wraps
            obj = found.__func__
        else:
            obj = getattr(obj, part, None)
    return obj


def _import_task(module_name: str, qualname: str) -> Any:
    import importlib

    return _lookup(importlib.import_module(module_name), qualname)
