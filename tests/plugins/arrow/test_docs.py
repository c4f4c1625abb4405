"""The arrow page of the docs runs here, where the plugin, pandas and polars are installed.

(The docs env skips its blocks: they declare `requires=daglite_arrow pandas polars`.)
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _docs_harness():
    spec = importlib.util.spec_from_file_location("docs_harness", ROOT / "tests/docs/test_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_python_block_of_the_arrow_page_runs(tmp_path, monkeypatch):
    page = ROOT / "docs/plugins/arrow.md"
    harness = _docs_harness()
    monkeypatch.syspath_prepend(str(tmp_path))
    expected = len(re.findall(r"^```python$", page.read_text(), re.MULTILINE))
    assert expected >= 5
    assert harness.run_page(page, tmp_path) == expected


def test_the_readme_example_runs(tmp_path, monkeypatch):
    harness = _docs_harness()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert harness.run_page(ROOT / "plugins/daglite-arrow/README.md", tmp_path) >= 1
