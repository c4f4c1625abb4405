"""daglite-rich: live progress bars, a status line and coloured log lines for daglite runs.

Enable it with `session(plugins=["rich"])`, `daglite run --plugin rich` or
`DAGLITE_PROCESSORS=rich`; it is found through the `daglite.processors` entry point.
"""

from __future__ import annotations

from daglite_rich.processor import RichProcessor

__all__ = ["RichProcessor"]
