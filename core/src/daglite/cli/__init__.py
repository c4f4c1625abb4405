"""The `daglite` command line (`daglite --help`).

Only the `daglite` console script imports this package: `import daglite` never loads the
CLI library (cyclopts).
"""

from __future__ import annotations

from daglite.cli.app import main

__all__ = ["main"]
