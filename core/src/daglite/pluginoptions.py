"""Options of plugins: one convention for every plugin, checked against what it declares.

A plugin's options live in `DagliteSettings.options[<plugin>]`, filled (highest precedence
first) from `daglite run --option <plugin>.<key>=<value>`, `DAGLITE_<PLUGIN>_<OPTION>`
variables and `[tool.daglite.options.<plugin>]`; keys have underscores. A plugin object may
declare `known_options = {name: type}`: then an unknown option is an error naming the
plugin, the option and the known ones, and text (from a variable or the command line)
becomes the declared `bool`, `int` or `float`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daglite.errors import SettingsError
from daglite.settings import ENV_PREFIX
from daglite.settings import DagliteSettings

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def plugin_options(
    settings: DagliteSettings, plugin: str, known: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The options of `plugin`, checked against `known` and converted.

    They come from `[tool.daglite.options.<plugin>]`, `DAGLITE_<PLUGIN>_<OPTION>` variables
    and `daglite run --option <plugin>.<key>=<value>`; keys have underscores.

    Args:
        settings: The settings to read (already merged: command line > variable > file).
        plugin: The plugin's name (its entry point's name).
        known: The plugin's declared options, `{name: type}` (its `known_options`): an
            option not in it is an error, and a text value (from a variable or the command
            line) is converted to the type (`bool`, `int`, `float`; other types are left as
            given). `None` accepts anything, unconverted.

    Raises:
        SettingsError: An option is unknown (the message names the plugin, the option and the
            known ones) or its text cannot be converted.
    """
    table = dict(settings.options.get(plugin, {}))
    norm = plugin.lower().replace("-", "_")
    first, _, rest = norm.partition("_")
    if rest:  # DAGLITE_MY_PLUGIN_X was read as plugin "my", option "plugin_x"
        for key, value in settings.options.get(first, {}).items():
            if key.startswith(rest + "_"):
                table.setdefault(key[len(rest) + 1 :], value)
    if known is None:
        return table
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise SettingsError(
            f"unknown option(s) {unknown} for plugin '{plugin}'; known options of '{plugin}': "
            f"{sorted(known)} (set in [tool.daglite.options.{plugin}], "
            f"{ENV_PREFIX}{norm.upper()}_<OPTION> or --option {plugin}.<key>=<value>)"
        )
    return {key: _convert(plugin, key, value, known[key]) for key, value in table.items()}


def _convert(plugin: str, key: str, value: Any, kind: Any) -> Any:
    if not isinstance(value, str) or kind not in (bool, int, float):
        return value
    text = value.strip().lower()
    try:
        if kind is bool:
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError
        return kind(text)
    except ValueError:
        raise SettingsError(
            f"invalid value {value!r} for option '{key}' of plugin '{plugin}': expected "
            f"{'true or false' if kind is bool else 'a number' if kind is float else 'an integer'}"
        ) from None


def for_plugin(settings: DagliteSettings, plugin: str, obj: Any) -> DagliteSettings:
    """`settings` with the options of `plugin` checked and converted by its `known_options`.

    A plugin that declares no `known_options` gets `settings` unchanged.
    """
    known = getattr(obj, "known_options", None)
    if known is None:
        return settings
    table = plugin_options(settings, plugin, known)
    if table == settings.options.get(plugin, {}):
        return settings
    return settings.evolve(options={**settings.options, plugin: table})
