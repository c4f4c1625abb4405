"""Sessions: the context in which task calls take part in hooks, events, caching and fan-out.

`session()` and `async_session()` share one implementation (`SessionContext.open` /
`SessionContext.close`); the async variant only differs in being an async context
manager. A session owns its resources (backend instances, processors) and releases all
of them when it ends, also on error and on KeyboardInterrupt.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import asynccontextmanager
from contextlib import contextmanager
from typing import TYPE_CHECKING
from typing import Any

from daglite import registry
from daglite.context import Runtime
from daglite.context import current_frame
from daglite.context import current_runtime
from daglite.context import new_id
from daglite.context import open_sessions
from daglite.context import running_frame
from daglite.dispatch import EventDispatcher
from daglite.errors import BackendError
from daglite.errors import PluginError
from daglite.lifecycle import SpanReport
from daglite.pluginoptions import for_plugin
from daglite.sessionplugins import named_processors
from daglite.sessionplugins import session_plugins
from daglite.settings import DagliteSettings
from daglite.settings import get_global_settings
from daglite.stores import check_store

if TYPE_CHECKING:
    from daglite import events as ev
    from daglite.backends import Backend
    from daglite.backends.transport import WorkerSpec
    from daglite.cachestore import CacheStore
    from daglite.datasets import DatasetStore
    from daglite.report.recorder import ReportRecorder

#: What `session(plugins=...)` accepts: hook plugin objects, event processors (callables
#: taking one event), and names of processors in the `daglite.processors` group.
SerializablePlugin = Any  # str | hook plugin | Callable[[Event], Any]


def check_backend_name(name: Any, option: str = "backend") -> str:
    """`name` if it can name a backend: a non-empty string (`None` is the caller's business).

    Raises:
        BackendError: `name` is not a string, or is empty (the message says what to pass).
    """
    if not isinstance(name, str) or not name.strip():
        raise BackendError(
            f"{option} must be a backend name such as 'inline', 'thread' or 'process' "
            f"(see: daglite plugins), or None for the default, not {name!r}"
        )
    return name


def check_backend(name: str) -> type[Backend]:
    """The backend class registered under `name`.

    Raises:
        BackendError: No such backend is installed, or it failed to import.
    """
    check_backend_name(name)
    try:
        return registry.load("backend", name)
    except PluginError as exc:
        raise BackendError(str(exc)) from exc


class SessionContext:
    """An open session: its settings, stores, plugins and lazily started backends.

    Attributes:
        session_id: Unique id of the session (in every event).
        settings: The session's settings (explicit arguments applied).
        backend: Name of the session's default backend.
        cache_store: The cache store (a URL or a store object).
        dataset_store: The dataset store (a URL or a store object).
        hook_plugins: The hook plugins of this session (global ones included).
        processors: The event processors of this session.
    """

    def __init__(
        self,
        *,
        backend: str | None = None,
        cache_store: str | CacheStore | None = None,
        dataset_store: str | DatasetStore | None = None,
        plugins: SerializablePlugin | list[SerializablePlugin] | None = None,
        settings: DagliteSettings | None = None,
        report: str | os.PathLike[str] | None = None,
    ) -> None:
        if settings is not None and not isinstance(settings, DagliteSettings):
            raise TypeError(
                f"settings must be a DagliteSettings, not {type(settings).__name__}; "
                "build one with daglite.settings.DagliteSettings(...)"
            )
        settings = settings or get_global_settings()
        chosen = named_processors(plugins, settings)  # before the event log adds `jsonl`
        if settings.event_log and "jsonl" not in settings.processors:
            # naming a file is asking for the event log
            settings = settings.evolve(processors=(*settings.processors, "jsonl"))
        self.session_id = new_id()
        self.settings = settings
        self.backend = settings.backend if backend is None else check_backend_name(backend)
        self.cache_store = cache_store if cache_store is not None else settings.cache_store
        self.dataset_store = dataset_store if dataset_store is not None else settings.dataset_store
        # Fail when the session opens, not at the first map or save (`Backend.check`, if
        # defined, lets a backend verify e.g. that its cluster is reachable).
        backend_class = check_backend(self.backend)
        backend_check = getattr(backend_class, "check", None)
        if backend_check is not None:
            backend_check(for_plugin(settings, self.backend, backend_class))
        check_store(self.cache_store, "cache")
        check_store(self.dataset_store, "dataset")

        hook_plugins, processors, hook = session_plugins(plugins, settings, chosen)
        self._recorder: ReportRecorder | None = None
        report = report if report is not None else settings.report
        outer = current_runtime.get()
        if report and not (outer is not None and outer.in_worker):  # the coordinator's job
            from daglite.report.recorder import ReportRecorder  # deferred: only when asked

            self._recorder = ReportRecorder(report, settings.event_log)
            if self._recorder.processor is not None:
                processors.append(self._recorder.processor)
        self.hook_plugins = hook_plugins
        self.processors = processors
        self._dispatcher = EventDispatcher(processors) if processors else None
        self.runtime = Runtime(
            session_id=self.session_id,
            settings=settings,
            backend=self.backend,
            hook=hook,
            emit=self._dispatcher,
            cache_store=self.cache_store,
            dataset_store=self.dataset_store,
            session=self,
        )
        #: The description of this session for worker processes (built at the first map on
        #: a process-style backend; `daglite.backends.packing.worker_spec`).
        self.worker_spec: WorkerSpec | None = None
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()
        self._token: Any = None
        self._report = SpanReport(self.runtime, "Session", session_id=self.session_id)

    def __repr__(self) -> str:
        return f"<SessionContext {self.session_id} backend={self.backend!r}>"

    def emit(self, event: ev.Event) -> None:
        """Hand `event` to the session's processors (no-op when there are none)."""
        if self._dispatcher is not None:
            self._dispatcher(event)

    def get_backend(self, name: str | None = None) -> Backend:
        """The session's instance of backend `name` (its default backend when `None`).

        Raises:
            BackendError: No backend of that name is installed.
        """
        name = name or self.backend
        with self._lock:
            instance = self._backends.get(name)
            if instance is None:
                backend_class = check_backend(name)
                instance = backend_class(for_plugin(self.settings, name, backend_class))
                self._backends[name] = instance
            return instance

    def run_in_thread(
        self, func: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> threading.Thread:
        """Start a thread that runs `func(*args, **kwargs)` inside this session; returns it.

        A `threading.Thread` does not inherit the context of the code that starts it, so the
        task calls it makes would not take part in the session (daglite warns once when
        that happens). This thread runs in a copy of the caller's context with this session
        active: its task calls emit events, run hooks, use the session's stores and are
        children of the task or workflow that started it. Join it before the session ends.

        Examples:
            >>> from daglite import session, task
            >>> @task
            ... def double(x: int) -> int:
            ...     return 2 * x
            >>> events = []
            >>> with session(plugins=[events.append]) as ctx:
            ...     ctx.run_in_thread(double, 21).join()
            >>> [e.kind for e in events if e.kind.startswith("Task")]
            ['TaskStarted', 'TaskSucceeded']
        """
        import contextvars

        context = contextvars.copy_context()
        context.run(current_runtime.set, self.runtime)
        context.run(current_frame.set, running_frame())  # a map item's frame stays its own
        thread = threading.Thread(target=context.run, args=(func, *args), kwargs=kwargs)
        thread.start()
        return thread

    def open(self) -> SessionContext:
        """Make this session the active one in the current context (called by `session()`)."""
        self._token = current_runtime.set(self.runtime)
        open_sessions[self.session_id] = threading.current_thread().name
        self._report = SpanReport(self.runtime, "Session", session_id=self.session_id)
        try:
            self._report.started(backend=self.backend)
            if self.runtime.hook is not None:
                self.runtime.hook.on_session_start(session=self)
        except BaseException as exc:  # a start hook failed: end the session it was opening
            self.close(exc)
            raise
        return self

    def close(self, error: BaseException | None = None) -> None:
        """End the session: hooks and events, then every backend and processor is released."""
        try:
            if self.runtime.hook is not None:
                self.runtime.hook.on_session_end(session=self, error=error)
        finally:
            try:
                with self._lock:
                    backends, self._backends = list(self._backends.values()), {}
                for backend in backends:
                    backend.close()
            finally:
                try:
                    self._report.ended(error)
                finally:
                    if self._dispatcher is not None:
                        self._dispatcher.close()
                    if self._recorder is not None:  # the events are flushed: picture them
                        self._recorder.write(self.session_id)
                    open_sessions.pop(self.session_id, None)
                    try:
                        current_runtime.reset(self._token)
                    except ValueError:  # closed from another context (an async fixture's
                        pass  # teardown task) than it was opened in: nothing to restore


@contextmanager
def session(
    *,
    backend: str | None = None,
    cache_store: str | CacheStore | None = None,
    dataset_store: str | DatasetStore | None = None,
    plugins: SerializablePlugin | list[SerializablePlugin] | None = None,
    settings: DagliteSettings | None = None,
    report: str | os.PathLike[str] | None = None,
) -> Iterator[SessionContext]:
    """Context manager that sets up an eager execution context.

    Args:
        backend: Name of the backend to default. If `None` uses `settings.backend`.
        cache_store: Cache store configuration. Can be a `CacheStore` or a string path.
        dataset_store: Dataset store configuration. Can be a `DatasetStore` or a string path.
        plugins: Extra plugins for this session only: hook plugin objects, event processors
            (callables taking one event) and processor names.
        settings: A `DagliteSettings` override. Falls back to the global settings singleton.
        report: Write an HTML report of the session to this file when it ends, also on
            failure or Ctrl-C (default: the `report` setting, `DAGLITE_REPORT`).

    Yields:
        The active `SessionContext` for the duration of the block.

    Raises:
        BackendError: The backend is not installed (the message says what to install).
        PluginError: A plugin or processor name is unknown or invalid.

    Examples:
        >>> from daglite import session, task
        >>> @task
        ... def inc(x: int) -> int:
        ...     return x + 1
        >>> events = []
        >>> with session(backend="thread", plugins=[events.append]) as ctx:
        ...     inc(1)
        2
        >>> [event.kind for event in events]
        ['SessionStarted', 'TaskStarted', 'TaskSucceeded', 'SessionEnded']
    """
    ctx = SessionContext(
        backend=backend,
        cache_store=cache_store,
        dataset_store=dataset_store,
        plugins=plugins,
        settings=settings,
        report=report,
    ).open()
    try:
        yield ctx
    except BaseException as exc:
        ctx.close(exc)
        raise
    ctx.close()


@asynccontextmanager
async def async_session(
    *,
    backend: str | None = None,
    cache_store: str | CacheStore | None = None,
    dataset_store: str | DatasetStore | None = None,
    plugins: SerializablePlugin | list[SerializablePlugin] | None = None,
    settings: DagliteSettings | None = None,
    report: str | os.PathLike[str] | None = None,
) -> AsyncIterator[SessionContext]:
    """Async context manager that sets up an eager execution context.

    Args:
        backend: Name of the backend to default. If `None` uses `settings.backend`.
        cache_store: Cache store configuration. Can be a `CacheStore` or a string path.
        dataset_store: Dataset store configuration. Can be a `DatasetStore` or a string path.
        plugins: Extra plugin instances for this session only.
        settings: A `DagliteSettings` override. Falls back to the global settings singleton.
        report: Write an HTML report of the session to this file when it ends, also on
            failure or Ctrl-C (default: the `report` setting, `DAGLITE_REPORT`).

    Yields:
        The active `SessionContext` for the duration of the block.

    Raises:
        BackendError: The backend is not installed (the message says what to install).
        PluginError: A plugin or processor name is unknown or invalid.
    """
    with session(
        backend=backend,
        cache_store=cache_store,
        dataset_store=dataset_store,
        plugins=plugins,
        settings=settings,
        report=report,
    ) as ctx:
        yield ctx


def active_session() -> SessionContext | None:
    """The session active in the current context, or `None`."""
    runtime = current_runtime.get()
    return runtime.session if runtime is not None else None
