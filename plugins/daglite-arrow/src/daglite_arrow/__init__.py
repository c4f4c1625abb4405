"""daglite-arrow: parquet, feather (Arrow IPC) and csv formats for tables.

The formats save and load `pyarrow.Table`, `pandas.DataFrame` and `polars.DataFrame`
values (pandas and polars only when installed; the plugin itself needs only pyarrow).
daglite finds them through the `daglite.formats` entry points, so installing this
distribution is all it takes:

    save_dataset("sales.parquet", frame)
    load_dataset("sales.parquet", polars.DataFrame)

With it installed, the result cache stores tables as Arrow IPC instead of pickling them,
and keys table arguments by a digest of their content.

Importing this package is cheap: pyarrow, pandas and polars are imported when a table is
first saved, loaded or hashed.
"""

from __future__ import annotations

from daglite_arrow.formats import CsvFormat
from daglite_arrow.formats import FeatherFormat
from daglite_arrow.formats import ParquetFormat
from daglite_arrow.tables import fingerprint

__version__ = "0.1.0+clone"
#: The daglite plugin API this plugin was built for (`daglite.plugin.API_VERSION`).
DAGLITE_API_VERSION = 1

__all__ = ["CsvFormat", "FeatherFormat", "ParquetFormat", "__version__", "fingerprint"]
