"""`TaskOptions`: the options of `@task`, checked once so that a bad one fails before any call.

The option list is written here once (the fields of `TaskOptions`) for the runtime, and once
more in `daglite.tasks` as the typed keyword parameters of `@task`; a test compares the two.

Each option is checked on its own when the options are built: numbers must be finite and in
range (a `timeout` of `inf`, `nan` or `1e10` would only fail mid-run); names of backends and
formats must name an installed plugin (only entry-point metadata is read: nothing is
imported); store URLs must have a scheme an installed store serves and no secret in their
query. What depends on the function (templates naming its parameters, `cache_ignore`, what
generator tasks cannot do) is checked by `check_function` when the options meet it. Each
message names the option and what to pass.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import attrs

from daglite.templates import check_template

#: The longest `timeout` and `retry_delay` accepted, in seconds (30 days; the OS's own
#: limit for a thread wait is about 49 days on Windows).
MAX_SECONDS = 30 * 24 * 3600


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_name(name: Any) -> None:
    """A task name is a non-empty string without a period.

    Raises:
        ValueError: It is not (the message says what to write instead).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"Task name must be a non-empty string, not {name!r}.")
    if "." in name:
        raise ValueError(
            f"Task name '{name}' cannot contain period ('.') characters; use '_' or '-'."
        )


def _name(_: Any, __: Any, value: Any) -> None:
    if value is not None:
        check_name(value)


def _retries(_: Any, __: Any, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"retries must be a whole number >= 0, not {value!r}.")


def _timeout(_: Any, __: Any, value: Any) -> None:
    if value is not None and (not _number(value) or not 0 < value <= MAX_SECONDS):
        raise ValueError(
            f"timeout must be a finite number of seconds > 0 and <= {MAX_SECONDS} (30 days), "
            f"or None for no timeout, not {value!r}."
        )


def _retry_delay(_: Any, __: Any, value: Any) -> None:
    if not _number(value) or not 0 <= value <= MAX_SECONDS:
        raise ValueError(
            f"retry_delay must be a finite number of seconds >= 0 and <= {MAX_SECONDS} "
            f"(30 days), not {value!r}."
        )


def _retry_backoff(_: Any, __: Any, value: Any) -> None:
    if not _number(value) or value < 1:
        raise ValueError(f"retry_backoff must be a finite number >= 1, not {value!r}.")


def _cache_ttl(_: Any, __: Any, value: Any) -> None:
    if value is not None and (not _number(value) or value <= 0):
        raise ValueError(
            f"cache_ttl must be a finite number of seconds > 0, or None to keep entries until "
            f"cleared, not {value!r}."
        )


def _cache_hash(_: Any, __: Any, value: Any) -> None:
    if value is not None and not callable(value):
        raise ValueError(
            f"cache_hash must be a function (func, inputs) -> str, or None for the default "
            f"key, not {type(value).__name__} {value!r}."
        )


def _plugin(kind: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """A validator: the value names an installed plugin of `kind` (only entry points are read).

    The error lists what is installed, and what to `pip install` for well-known names.
    """

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        from daglite import registry

        option = attribute.name
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                f"{option} must be the name of a {kind} (a non-empty string; see: daglite "
                f"plugins), or None for the default, not {value!r}."
            )
        if value not in registry.names(kind):
            try:
                registry.load(kind, value)  # raises the registry's message: installed, hints
            except Exception as exc:
                raise ValueError(f"{option}={value!r}: {exc}.") from None

    return check


def _store(what: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """A validator: a store given as a URL is one an installed store serves, without secrets."""

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, str):
            return
        from daglite.stores import check_store

        try:
            check_store(value, what)
        except Exception as exc:
            raise ValueError(f"{attribute.name}: {exc}.") from None

    return check


@attrs.frozen(slots=False, eq=False)
class TaskOptions:
    """The options of `@task` (see `daglite.task` for what each does), checked when built.

    Numbers of seconds (`timeout`, `retry_delay`, `retry_backoff`) are kept as floats. A
    task's definition, `daglite.taskspec.TaskSpec`, extends these with the function.

    Raises:
        ValueError: An option is invalid; the message names it and what is allowed.
    """

    name: str | None = attrs.field(default=None, validator=_name)
    description: str | None = None
    backend: str | None = attrs.field(default=None, validator=_plugin("backend"))
    retries: int = attrs.field(default=0, validator=_retries)
    timeout: float | None = attrs.field(default=None, validator=_timeout)
    cache: Any = attrs.field(default=False, validator=_store("cache"))
    cache_store: Any = attrs.field(default=None, validator=_store("cache"))
    cache_ttl: int | None = attrs.field(default=None, validator=_cache_ttl)
    cache_hash: Callable[..., str] | None = attrs.field(default=None, validator=_cache_hash)
    dataset: str | None = None
    dataset_store: Any = attrs.field(default=None, validator=_store("dataset"))
    dataset_format: str | None = attrs.field(default=None, validator=_plugin("format"))
    retry_delay: float = attrs.field(default=0.0, validator=_retry_delay)
    retry_backoff: float = attrs.field(default=1.0, validator=_retry_backoff)
    cache_version: str | None = None
    cache_ignore: Sequence[str] = ()

    def __attrs_post_init__(self) -> None:
        # Checked above as given (messages show the value passed); kept as floats, and the
        # names left out of the key as a tuple. (Not attrs converters: inspecting a builtin
        # such as `tuple` for one costs a millisecond of import time.)
        setattr_ = object.__setattr__
        setattr_(self, "cache_ignore", tuple(self.cache_ignore))
        if self.timeout is not None:
            setattr_(self, "timeout", float(self.timeout))
        setattr_(self, "retry_delay", float(self.retry_delay))
        setattr_(self, "retry_backoff", float(self.retry_backoff))

    def check_function(self, func: Callable[..., Any], name: str) -> None:
        """Check the options against the function they decorate, named `name`.

        Raises:
            ValueError: A template names something that is not a parameter (or is
                malformed), `cache_ignore` names a non-parameter, or a generator function
                has an option generators cannot have.
            TypeError: The task is cached but its function's own state cannot be part of a
                cache key (see `daglite.cacheidentity`).
        """
        check_template("Name", name, func)
        if self.dataset is not None:
            check_template("Dataset", self.dataset, func)
        parameters = inspect.signature(func).parameters
        unknown = set(self.cache_ignore) - set(parameters)
        if unknown:
            raise ValueError(
                f"cache_ignore names {sorted(unknown)} which are not parameters of "
                f"'{name}': {sorted(parameters)}."
            )
        if self.cache is not False and self.cache_hash is None:
            from daglite.cacheidentity import refuse_uncacheable

            refuse_uncacheable(func, name)
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            if self.cache is not False:
                raise ValueError("Caching is not supported for generator tasks.")
            if self.retries > 0:
                raise ValueError("Retries are not supported for generator tasks.")
            if self.timeout is not None:
                raise ValueError("Timeouts are not supported for generator tasks.")
            if self.dataset is not None:
                raise ValueError(
                    "Dataset auto-save is not supported for generator tasks; collect the items "
                    "in a task and save that result."
                )


def option_names() -> tuple[str, ...]:
    """The names of the options, in the order of `@task`'s keyword parameters."""
    return tuple(field.name for field in attrs.fields(TaskOptions))
