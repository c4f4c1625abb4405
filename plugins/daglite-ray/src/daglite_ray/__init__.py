"""daglite-ray: `backend="ray"` runs daglite map items in batches on a Ray cluster.

Installing the distribution registers the backend under the `daglite.backends` entry-point
group; nothing needs importing. Ray itself is imported when the backend connects (at the
first map of a session), not when this package or a session is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daglite_ray.backend import RayBackend

__version__ = "0.1.0+clone"
#: The daglite plugin API this plugin was built for (`daglite.plugin.API_VERSION`).
DAGLITE_API_VERSION = 1

__all__ = ["RayBackend", "__version__"]


def __getattr__(name: str) -> object:
    if name == "RayBackend":
        from daglite_ray.backend import RayBackend

        return RayBackend
    raise AttributeError(f"module 'daglite_ray' has no attribute {name!r}")
