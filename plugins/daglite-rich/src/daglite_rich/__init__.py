"""daglite-rich: live progress bars, a status line and coloured log lines for daglite runs.

Enable it with `session(plugins=["rich"])`, `daglite run --plugin rich` or
`DAGLITE_PLUGINS=rich`; it is found through the `daglite.processors` entry point.
"""

from __future__ import annotations

from daglite_rich.processor import RichProcessor

#: The daglite plugin API this plugin was built for (`daglite.plugin.API_VERSION`).
DAGLITE_API_VERSION = 1

__all__ = ["RichProcessor"]
