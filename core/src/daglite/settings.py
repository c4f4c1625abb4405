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
        raise ValueError(f"plugins must be a list of names, not {value!r}")
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


def _options(value: Any) -> dict[str, dict[str, Any]]:
    # `plain-interval` and `plain_interval` are one option, as at the top level.
    if not isinstance(value, Mapping):
        raise ValueError(f"options must be a table of plugin tables, not {value!r}")
    tables = {}
    for plugin, table in value.items():
        if not isinstance(table, Mapping):
            raise ValueError(
                f"options of plugin '{plugin}' must be a table ([tool.daglite.options.{plugin}]), "
                f"not {table!r}"
            )
        tables[str(plugin)] = {str(key).replace("-", "_"): v for key, v in table.items()}
    return tables


_KINDS = ("backend", "store", "format", "processor")


def _providers(value: Any) -> dict[str, dict[str, str]]:
    # {kind: {name: distribution}}; also "kind.name=dist,..." (the variable) and
    # {"kind.name": dist} (a quoted TOML key).
    if isinstance(value, str):
        pairs = [part.partition("=") for part in value.split(",") if part.strip()]
        if any(not sep or not dist.strip() for _, sep, dist in pairs):
            raise ValueError(
                f"providers must look like kind.name=distribution[,...], not {value!r}"
            )
        value = {key.strip(): dist.strip() for key, _, dist in pairs}
    if not isinstance(value, Mapping):
        raise ValueError(f"providers must be a table, not {value!r}")
    found: dict[str, dict[str, str]] = {}
    for key, dist in value.items():
        kind, _, name = str(key).partition(".")
        items = dist.items() if isinstance(dist, Mapping) and not name else [(name, dist)]
        if kind not in _KINDS:
            raise ValueError(f"providers: unknown plugin kind {kind!r}; expected one of {_KINDS}")
        for plugin, chosen in items:
            if not plugin or not isinstance(chosen, str) or not chosen:
                raise ValueError(
                    f"providers: {kind}.{plugin or '?'} must name a distribution, not {chosen!r}"
                )
            found.setdefault(kind, {})[plugin] = chosen
    return found


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


@attrs.frozen(kw_only=True)
class DagliteSettings:
    """Everything a session needs to know that is not given explicitly.

    Attributes:
        backend: Default backend for `map_tasks` (`DAGLITE_BACKEND`).
        max_workers: Worker count of pooled backends; `None` lets each backend pick
            (`DAGLITE_MAX_WORKERS`).
        cache_store: Where `cache=True` tasks keep results (`DAGLITE_CACHE_STORE`).
        dataset_store: Where datasets are saved and loaded (`DAGLITE_DATASET_STORE`).
        plugins: Names of event processors every session starts with, from the
            `daglite.processors` entry-point group (`DAGLITE_PLUGINS`, comma-separated;
            an empty value turns them all off). The default is `("logging",)`. The old
            spellings `processors` / `DAGLITE_PROCESSORS` are deprecated aliases.
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
        options: Settings of plugins, keyed by plugin name: `[tool.daglite.options.<plugin>]`
            in `pyproject.toml`, `DAGLITE_<PLUGIN>_<OPTION>` variables, `daglite run --option
            <plugin>.<key>=<value>`. Dashes in keys become underscores.
        providers: Which distribution provides a name that several claim, as
            `{kind: {name: distribution}}` (`[tool.daglite.providers] format.csv =
            "daglite-arrow"`, `DAGLITE_PROVIDERS=format.csv=daglite-arrow`).
    """

    backend: str = attrs.field(default="inline", validator=_name)
    max_workers: int | None = attrs.field(default=None, converter=_optional_positive_int)
    cache_store: str = attrs.field(default=".daglite/cache", validator=_text, repr=url_repr)
    dataset_store: str = attrs.field(default=".daglite/datasets", validator=_text, repr=url_repr)
    plugins: tuple[str, ...] = attrs.field(default=("logging",), converter=_tuple_of_str)
    log_level: str = attrs.field(
        default="info", converter=_choice("log_level", "debug", "info", "warning", "error")
    )
    log_format: str = attrs.field(
        default="auto", converter=_choice("log_format", "auto", "console", "json")
    )
    event_log: str | None = attrs.field(default=None, validator=_optional_text)
    report: str | None = attrs.field(default=None, validator=_optional_text)
    worker_env: tuple[str, ...] = attrs.field(default=(), converter=_env_patterns)
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=_options, repr=_options_repr)
    providers: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict, converter=_providers)

    @property
    def processors(self) -> tuple[str, ...]:
        """Deprecated alias of `plugins`."""
        return self.plugins

    def evolve(self, **changes: Any) -> DagliteSettings:
        """A copy with `changes` applied (values are validated like the constructor's)."""
        changes = _unalias(changes, "arguments")
        return _build(attrs.asdict(self, recurse=False) | changes, source="arguments")


_FIELDS = {f.name for f in attrs.fields(DagliteSettings)}
#: Old spellings still accepted (deprecated): alias -> field.
ALIASES = {"processors": "plugins"}
_attrs_init = DagliteSettings.__init__


def _init_with_aliases(self: DagliteSettings, **values: Any) -> None:
    _attrs_init(self, **_unalias(values, "arguments"))


DagliteSettings.__init__ = _init_with_aliases  # type: ignore[method-assign]


def _unalias(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    values = dict(values)
    for alias, name in ALIASES.items():
        if alias in values:
            if name in values:
                raise SettingsError(
                    f"both '{name}' and its deprecated alias '{alias}' are set in {source}; "
                    f"keep '{name}'"
                )
            values[name] = values.pop(alias)
    return values


def _build(values: Mapping[str, Any], *, source: str) -> DagliteSettings:
    values = _unalias(values, source)
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
    where = f"[tool.daglite] of {path}"
    values = _unalias({key.replace("-", "_"): value for key, value in table.items()}, where)
    unknown = sorted(set(values) - _FIELDS)
    if unknown:
        raise SettingsError(
            f"unknown daglite setting(s) {unknown} in [tool.daglite] of {path}; "
            f"known settings: {sorted(_FIELDS)}"
        )
    _validate_each(values, f"[tool.daglite] of {path}")
    return values


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    options: dict[str, dict[str, str]] = {}
    fields = _FIELDS - {"options"}
    for variable, raw in environ.items():
        if not variable.startswith(ENV_PREFIX):
            continue
        name = variable[len(ENV_PREFIX) :].lower()
        if name in fields or name in ALIASES:
            values[name] = raw
        elif name.strip("_") and "_" in name.strip("_"):
            # DAGLITE_<PLUGIN>_<OPTION>: a plugin option (see `plugin_options`)
            plugin, _, option = name.strip("_").partition("_")
            options.setdefault(plugin, {})[option] = raw
    source = "the environment (" + ", ".join(ENV_PREFIX + n.upper() for n in sorted(values)) + ")"
    if "plugins" in values and "processors" in values:
        values.pop("processors")  # DAGLITE_PLUGINS wins over its deprecated alias
    values = _unalias(values, source)
    _validate_each(values, source)
    if options:
        values["options"] = options
    return values


def _merge_options(*layers: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for plugin, table in _options(layer).items():
            merged.setdefault(plugin, {}).update(table)
    return merged


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
    from_env = _from_environ(os.environ if environ is None else environ)
    if "options" in from_env:  # per option: a variable overrides the same key of the file
        from_env["options"] = _merge_options(values.get("options", {}), from_env["options"])
    values.update(from_env)
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
