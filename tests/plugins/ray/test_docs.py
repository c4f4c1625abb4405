"""The ray pages of the docs run here, where the plugin is installed (the docs env skips
their blocks: they declare `requires=daglite_ray`). Their sessions find the run's shared
local Ray initialised and use it.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.timeout(300)


def _docs_harness():
    spec = importlib.util.spec_from_file_location("docs_harness", ROOT / "tests/docs/test_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_python_block_of_the_ray_page_runs(local_ray, tmp_path, monkeypatch):
    page = ROOT / "docs/plugins/ray.md"
    harness = _docs_harness()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    expected = len(re.findall(r"^```python$", page.read_text(), re.MULTILINE))
    assert expected >= 3
    assert harness.run_page(page, tmp_path) == expected


def test_the_scaling_page_runs_with_its_ray_section(local_ray, tmp_path, monkeypatch):
    page = ROOT / "docs/scaling.md"
    harness = _docs_harness()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    ray_blocks = [b for b in harness.blocks(page) if "daglite_ray" in b.directive]
    assert len(ray_blocks) == 1
    assert harness.run_page(page, tmp_path) >= 4


def test_the_readme_example_runs(local_ray, tmp_path, monkeypatch):
    harness = _docs_harness()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert harness.run_page(ROOT / "plugins/daglite-ray/README.md", tmp_path) == 1
