"""`@workflow`: named entry points that run their tasks inside a session.

A workflow called while a session is active joins it (so an outer `with session(...)`
or `daglite run --backend ...` decides where its tasks run); otherwise it opens its
own session from the settings for the duration of the call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from collections.abc import Coroutine
from contextlib import contextmanager
from typing import Any
from typing import Generic
from typing import overload

import attrs

from daglite.context import Runtime
from daglite.context import WorkflowFrame
from daglite.context import current_frame
from daglite.context import current_runtime
from daglite.context import new_id
from daglite.context import running_frame
from daglite.lifecycle import SpanReport
from daglite.session import active_session
from daglite.session import session
from daglite.tasks import P
from daglite.tasks import R
from daglite.tasks import default_name


@attrs.frozen(slots=False, eq=False, repr=False)
class BaseWorkflow(Generic[P, R]):
    """What sync and async workflows share. Build them with `@workflow`.

    Attributes:
        func: The decorated function.
        name: The workflow's name (the function's `__name__` by default).
        description: The description (the function's docstring by default).
    """

    func: Callable[..., Any]
    name: str
    description: str = ""

    def __attrs_post_init__(self) -> None:
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            if hasattr(self.func, attr):
                object.__setattr__(self, attr, getattr(self.func, attr))
        object.__setattr__(self, "__wrapped__", self.func)

    @property
    def signature(self) -> inspect.Signature:
        """The wrapped function's signature."""
        return inspect.signature(self.func)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} '{self.name}'>"

    @contextmanager
    def _running(self, args: tuple[Any, ...], kwargs: dict[str, Any]):
        outer = active_session()
        runtime = current_runtime.get()
        if outer is not None:
            with self._framed(outer.runtime, args, kwargs):
                yield
        elif runtime is not None and runtime.in_worker:
            # inside a worker process: join the coordinator's session its runtime stands for
            with self._framed(runtime, args, kwargs):
                yield
        else:
            with session() as ctx, self._framed(ctx.runtime, args, kwargs):
                yield

    @contextmanager
    def _framed(self, runtime: Runtime, args: tuple[Any, ...], kwargs: dict[str, Any]):
        parent = running_frame()
        frame = WorkflowFrame(
            task_id=new_id(),
            name=self.name,
            parent_id=parent.task_id if parent is not None else None,
        )
        report = SpanReport(
            runtime,
            "Workflow",
            session_id=runtime.session_id,
            workflow_id=frame.task_id,
            name=self.name,
            parent_id=frame.parent_id,
        )
        report.started()
        token = current_frame.set(frame)
        try:
            yield
        except BaseException as exc:
            report.ended(exc)
            raise
        finally:
            current_frame.reset(token)
        report.ended()


class SyncWorkflow(BaseWorkflow[P, R]):
    """A workflow over a plain function: calling it returns the result directly."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the workflow in the active session (or a session of its own); return its value."""
        with self._running(args, kwargs):
            return self.func(*args, **kwargs)


class AsyncWorkflow(BaseWorkflow[P, R]):
    """A workflow over an `async def` function: calling it returns a coroutine to await."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        """A coroutine that runs the workflow when awaited (see `SyncWorkflow.__call__`)."""
        return self._run(args, kwargs)

    async def _run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        with self._running(args, kwargs):
            return await self.func(*args, **kwargs)


class _WorkflowDecorator:
    """What `@workflow(...)` with options returns: apply it to a function."""

    def __init__(self, name: str | None, description: str | None) -> None:
        self._name = name
        self._description = description

    @overload
    def __call__(self, func: Callable[P, Coroutine[Any, Any, R]]) -> AsyncWorkflow[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, func: Callable[P, R]) -> SyncWorkflow[P, R]: ...
    def __call__(self, func: Callable[..., Any]) -> Any:
        return _make_workflow(func, self._name, self._description)


# Most specific first: an async function also matches `Callable[P, R]`, so the second
# overload overlaps the first on purpose (hence the `overload-overlap` ignores).
@overload
def workflow(func: Callable[P, Coroutine[Any, Any, R]]) -> AsyncWorkflow[P, R]: ...  # type: ignore[overload-overlap]
@overload
def workflow(func: Callable[P, R]) -> SyncWorkflow[P, R]: ...
@overload
def workflow(*, name: str | None = None, description: str | None = None) -> _WorkflowDecorator: ...
def workflow(func: Any = None, *, name: str | None = None, description: str | None = None) -> Any:
    """Decorator to convert a Python function into a daglite workflow.

    Workflows are **named entry points** that wrap a function calling `@task`-decorated
    functions. Tasks execute eagerly inside the workflow: they run immediately and return
    real values. Calling a workflow sets up a managed session (or joins the active one) that
    provides backend, cache, plugin, and event infrastructure. Sync workflows return the
    result directly; async workflows return a coroutine that the caller must `await`.

    Workflows cannot wrap generator functions. Use `@task` for generator functions or collect
    results inside the workflow.

    Args:
        func: The function to wrap (passed automatically by `@workflow`; `None` with
            `@workflow()`).
        name: Custom name for the workflow. Defaults to the function's `__name__`.
        description: Workflow description. Defaults to the function's docstring.

    Returns:
        A `SyncWorkflow` or `AsyncWorkflow`, or a decorator when used as `@workflow(...)`.

    Raises:
        TypeError: Applied to a class, a non-callable or a generator function.

    Examples:
        >>> from daglite import task, workflow
        >>> @task
        ... def add(x: int, y: int) -> int:
        ...     return x + y
        >>> @task
        ... def mul(x: int, y: int) -> int:
        ...     return x * y

        Single-value workflow
        >>> @workflow
        ... def my_workflow(x: int, y: int):
        ...     return add(x=x, y=y)
        >>> my_workflow(2, 3)
        5

        Multi-step workflow
        >>> @workflow
        ... def chain_workflow(x: int, y: int):
        ...     a = add(x=x, y=y)
        ...     return mul(x=a, y=10)
        >>> chain_workflow(2, 3)
        50
    """
    if func is not None:
        return _make_workflow(func, name, description)
    return _WorkflowDecorator(name, description)


def _make_workflow(func: Any, name: str | None, description: str | None) -> Any:
    if inspect.isclass(func) or not callable(func):
        raise TypeError("`@workflow` can only be applied to callable functions.")
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(
            "`@workflow` cannot wrap generator functions. Use `@task` for generator functions "
            "or collect results inside the workflow."
        )
    wf_name = name if name is not None else default_name(func)
    wf_description = description if description is not None else inspect.getdoc(func) or ""
    cls = AsyncWorkflow if inspect.iscoroutinefunction(func) else SyncWorkflow
    return cls(func=func, name=wf_name, description=wf_description)


def is_workflow(obj: Any) -> bool:
    """True for objects made by `@workflow`."""
    return isinstance(obj, BaseWorkflow)
