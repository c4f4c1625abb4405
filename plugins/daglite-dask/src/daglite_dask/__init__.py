"""daglite-dask: `backend="dask"` runs daglite map items on a dask.distributed cluster.

Installing the distribution registers the backend under the `daglite.backends` entry-point
group; nothing needs importing. `dask.distributed` itself is imported only when the backend
connects (at the first map), not when a session opens.
"""

from __future__ import annotations

from daglite_dask.backend import DaskBackend

__version__ = "0.1.0+clone"
#: The daglite plugin API this plugin was built for (`daglite.plugin.API_VERSION`).
DAGLITE_API_VERSION = 1

__all__ = ["DaskBackend", "__version__"]
