"""Settings: one frozen class, filled from defaults, `[tool.daglite]` and `DAGLITE_*` variables.

Precedence, highest first: an explicit argument (to `@task`, `session`, ...) > the session's
settings > environment variables > the nearest `pyproject.toml` > the defaults below.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import attrs

from daglite.errors import SettingsError

if TYPE_CHECKING:
    from pathlib import Path

ENV_PREFIX = "DAGLITE_"


def _tuple_of_str(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"processors must be a list of names, not {value!r}")
    return tuple(value)


def _env_patterns(value: Any) -> tuple[str, ...]:
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"worker_env must be a list of variable names, not {value!r}")
    names = tuple(name.strip() for name in names if name.strip())
    for name in names:
        if "=" in name or any(c.isspace() for c in name):
            raise ValueError(
                f"worker_env takes variable names or patterns such as 'MYAPP_*', not {name!r}"
            )
    return names


def _optional_positive_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, (bool, float)) or number < 1:
        raise ValueError(f"max_workers must be a whole number >= 1 (or empty), not {value!r}")
    return number


def _choice(name: str, *allowed: str):
    def convert(value: Any) -> str:
        text = str(value).lower()
        if text not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        return text

    return convert


def _text(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a string, not {value!r}")


def _optional_text(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None:
        _text(instance, attribute, value)


def _name(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    _text(instance, attribute, value)
    if not value.strip():
        raise ValueError(
            f"{attribute.name} must name a backend (e.g. 'inline', 'thread', 'process'), "
            f"not {value!r}"
        )


def url_repr(value: Any) -> str:
    """`repr(value)` with credentials in a URL masked (the repr of store fields)."""
    from daglite.redaction import safe_repr  # only when a repr is asked for

    return safe_repr(value)


def _options_repr(value: Any) -> str:
    """`repr(value)` with secret-looking plugin options (keys, tokens, ...) masked."""
    from daglite.redaction import redact  # only when a repr is asked for

    return redact(repr(value), dict(value))


def _mapping(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"{attribute.name} must be a table (a mapping), not {value!r}")


@attrs.frozen(kw_only=True)
class DagliteSettings:
    """Everything a session needs to know that is not given explicitly.

    Attributes:
        backend: Default backend for `map_tasks` (`DAGLITE_BACKEND`).
        max_workers: Worker count of pooled backends; `None` lets each backend pick
            (`DAGLITE_MAX_WORKERS`).
        cache_store: Where `cache=True` tasks keep results (`DAGLITE_CACHE_STORE`).
        dataset_store: Where datasets are saved and loaded (`DAGLITE_DATASET_STORE`).
        processors: Names of event processors every session starts with, from the
            `daglite.processors` entry-point group (`DAGLITE_PROCESSORS`, comma-separated;
            an empty value turns them all off). The default is `("logging",)`.
        log_level: Level of the logging processor (`DAGLITE_LOG_LEVEL`).
        log_format: `"auto"` (readable on a terminal, JSON otherwise), `"console"` or
            `"json"` (`DAGLITE_LOG_FORMAT`).
        event_log: Path of the JSON-lines event log written by the `jsonl` processor
            (`DAGLITE_EVENT_LOG`); when set, every session also runs that processor.
        report: Path of the HTML report each session writes when it ends
            (`DAGLITE_REPORT`; see `daglite report`).
        worker_env: Names or glob patterns (`MYAPP_*`) of environment variables that
            worker processes receive besides the built-in ones (`DAGLITE_*`, `AWS_*`,
            `OTEL_*`, `FSSPEC_*`; see `daglite.backends.environ`) (`DAGLITE_WORKER_ENV`,
            comma-separated).
        options: Free-form settings for plugins, keyed by plugin name
            (`[tool.daglite.options.<plugin>]` in `pyproject.toml`).
    """

    backend: str = attrs.field(default="inline", validator=_name)
    max_workers: int | None = attrs.field(default=None, converter=_optional_positive_int)
    cache_store: str = attrs.field(default=".daglite/cache", validator=_text, repr=url_repr)
    dataset_store: str = attrs.field(default=".daglite/datasets", validator=_text, repr=url_repr)
    processors: tuple[str, ...] = attrs.field(default=("logging",), converter=_tuple_of_str)
    log_level: str = attrs.field(
        default="info", converter=_choice("log_level", "debug", "info", "warning", "error")
    )
    log_format: str = attrs.field(
        default="auto", converter=_choice("log_format", "auto", "console", "json")
    )
    event_log: str | None = attrs.field(default=None, validator=_optional_text)
    report: str | None = attrs.field(default=None, validator=_optional_text)
    worker_env: tuple[str, ...] = attrs.field(default=(), converter=_env_patterns)
    options: Mapping[str, Any] = attrs.field(factory=dict, validator=_mapping, repr=_options_repr)

    def evolve(self, **changes: Any) -> DagliteSettings:
        """A copy with `changes` applied (values are validated like the constructor's)."""
        return _build(attrs.asdict(self, recurse=False) | changes, source="arguments")


_FIELDS = {f.name for f in attrs.fields(DagliteSettings)}


def _build(values: Mapping[str, Any], *, source: str) -> DagliteSettings:
    unknown = sorted(set(values) - _FIELDS)
    if unknown:
        raise SettingsError(
            f"unknown daglite setting(s) {unknown} in {source}; known settings: {sorted(_FIELDS)}"
        )
    try:
        return DagliteSettings(**values)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"invalid daglite setting in {source}: {exc}") from exc


def _validate_each(values: Mapping[str, Any], source: str) -> None:
    # Build one field at a time so the message names the culprit.
    for name, value in values.items():
        try:
            DagliteSettings(**{name: value})
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"invalid value {value!r} for '{name}' in {source}: {exc}") from exc


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest `pyproject.toml` at or above `start` (the working directory by default)."""
    from pathlib import Path  # deferred: keeps `import daglite` lean

    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _from_pyproject(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read daglite settings from {path}: {exc}") from exc
    table = data.get("tool", {}).get("daglite", {})
    if not isinstance(table, dict):
        raise SettingsError(f"[tool.daglite] in {path} must be a table")
    values = {key.replace("-", "_"): value for key, value in table.items()}
    unknown = sorted(set(values) - _FIELDS)
    if unknown:
        raise SettingsError(
            f"unknown daglite setting(s) {unknown} in [tool.daglite] of {path}; "
            f"known settings: {sorted(_FIELDS)}"
        )
    _validate_each(values, f"[tool.daglite] of {path}")
    return values


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    values = {}
    for name in _FIELDS - {"options"}:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = raw
    _validate_each(
        values,
        "the environment (" + ", ".join(ENV_PREFIX + n.upper() for n in sorted(values)) + ")",
    )
    return values


def load_settings(
    *, cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> DagliteSettings:
    """Settings from the defaults, the nearest `pyproject.toml` and the environment.

    Args:
        cwd: Where to start looking for `pyproject.toml` (the working directory by default).
        environ: The environment to read `DAGLITE_*` variables from (`os.environ` by default).

    Raises:
        SettingsError: A value is unknown or invalid; the message names it and where it came from.
    """
    values = _from_pyproject(find_pyproject(cwd))
    values.update(_from_environ(os.environ if environ is None else environ))
    return _build(values, source="pyproject.toml and the environment")


_global: DagliteSettings | None = None


def get_global_settings() -> DagliteSettings:
    """The process-wide settings (loaded on first use, or as set by `set_global_settings`)."""
    global _global
    if _global is None:
        _global = load_settings()
    return _global


def set_global_settings(settings: DagliteSettings | None) -> None:
    """Replace the process-wide settings; `None` reloads them from pyproject and the environment.

    Raises:
        TypeError: `settings` is neither a `DagliteSettings` nor `None`.
    """
    global _global
    if settings is not None and not isinstance(settings, DagliteSettings):
        raise TypeError(
            f"set_global_settings() takes a DagliteSettings or None, not {type(settings).__name__}"
        )
    _global = settings
