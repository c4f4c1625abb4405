"""`daglite new-plugin NAME`: a standalone plugin package with one of each kind.

The files come from `plugin_template/` beside this module (`string.Template` text, `${...}`
placeholders). The package depends on exactly this daglite, declares the plugin API
version of this daglite, and its test suite (`daglite.testing`) passes as generated.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from daglite.cli.targets import UsageError

TEMPLATE = Path(__file__).with_name("plugin_template")
_NAME = re.compile(r"^[a-z][a-z0-9]*$")


def placeholders(name: str) -> dict[str, str]:
    """The values of the template's placeholders for plugin `name`."""
    from daglite import __version__
    from daglite.plugin import API_VERSION

    return {
        "name": name,
        "NAME": name.upper(),
        "Class": name.capitalize(),
        "package": f"daglite_{name}",
        "dist": f"daglite-{name}",
        "core_version": __version__,
        "api_version": str(API_VERSION),
    }


def new_plugin(name: str, directory: Path) -> Path:
    """Write the package of plugin `name` to `directory/daglite-<name>`; returns that folder.

    Raises:
        UsageError: `name` is not a lowercase word, or the folder exists.
    """
    if not _NAME.match(name):
        raise UsageError(
            f"a plugin name is one lowercase word of letters and digits (it names the entry "
            f"points, the scheme and DAGLITE_<NAME>_* variables), not {name!r}"
        )
    values = placeholders(name)
    target = directory / values["dist"]
    if target.exists():
        raise UsageError(f"{target} already exists; choose another name or folder")
    for source in sorted(TEMPLATE.rglob("*.tmpl")):
        relative = source.relative_to(TEMPLATE).with_suffix("")  # drop .tmpl
        parts = relative.parts
        if parts[0] == "src":
            relative = Path("src", values["package"], *parts[1:])
        out = target / relative
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(Template(source.read_text()).substitute(values), encoding="utf-8")
    (target / "src" / values["package"] / "py.typed").write_text("")
    return target
