"""What the report tests share: reading the data a report page draws."""

from __future__ import annotations

import json
import re
from pathlib import Path

from daglite.settings import DagliteSettings

DATA = re.compile(r'<script type="application/json" id="daglite-data">(.*?)</script>', re.S)


def page_data(html: Path) -> dict:
    """The data a report page draws (what its script parses)."""
    return json.loads(DATA.search(html.read_text(encoding="utf-8")).group(1))


def settings_for(tmp_path: Path, **changes) -> DagliteSettings:
    return DagliteSettings(
        processors=(),
        cache_store=str(tmp_path / "cache"),
        dataset_store=str(tmp_path / "datasets"),
        **changes,
    )
