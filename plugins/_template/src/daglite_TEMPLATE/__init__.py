"""daglite-TEMPLATE: <what this plugin adds to daglite>.

Importing this package must stay cheap: import your field's library inside the functions
and methods that need it, not at module level. The core never imports a plugin; daglite
loads the objects named in this distribution's entry points when they are first used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
