"""daglite-loky: `backend="loky"`, map items on loky's reusable process pool.

Importing this package stays cheap: loky is imported by `daglite_loky.backend`, which
daglite loads through the `daglite.backends` entry point when `backend="loky"` is first
used. The core never imports this package.
"""

from __future__ import annotations

__version__ = "0.1.0+clone"
#: The daglite plugin API this plugin was built for (`daglite.plugin.API_VERSION`).
DAGLITE_API_VERSION = 1

__all__ = ["__version__"]
