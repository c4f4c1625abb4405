"""daglite-s3: `s3://bucket/prefix` cache and dataset stores, over s3fs.

Importing this package is cheap: s3fs (and botocore) are imported when the first `s3://`
store is opened. daglite finds the store through the `s3` entry point of the
`daglite.stores` group; nobody needs to import this package.
"""

from __future__ import annotations

__version__ = "0.1.0+clone"
#: The daglite plugin API this plugin was built for (`daglite.plugin.API_VERSION`).
DAGLITE_API_VERSION = 1

__all__ = ["__version__"]
