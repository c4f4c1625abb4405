"""The options of `@task`: a bad name fails at decoration, saying what to do."""

from __future__ import annotations

import pytest

from daglite import task


def _f(x, y=1):
    return x


# -- at decoration ---------------------------------------------------------------------------

NAME_HINT = "(a non-empty string; see: daglite plugins), or None for the default, not "


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": 3}, f"backend must be the name of a backend {NAME_HINT}3."),
        ({"backend": ""}, f"backend must be the name of a backend {NAME_HINT}''."),
        ({"backend": " "}, f"backend must be the name of a backend {NAME_HINT}' '."),
        (
            {"backend": "nope"},
            "backend='nope': unknown backend 'nope'; installed backends: inline, process, thread.",
        ),
        (
            {"backend": "loky"},
            "backend='loky': backend 'loky' is not installed: install daglite-loky from a clone "
            "of daglite: uv pip install ./plugins/daglite-loky (or pip install ./core "
            "./plugins/daglite-loky) (installed backends: inline, process, thread).",
        ),
        ({"dataset_format": 3}, f"dataset_format must be the name of a format {NAME_HINT}3."),
        (
            {"dataset_format": "nope"},
            "dataset_format='nope': unknown format 'nope'; installed formats: bytes, json, "
            "pickle, text.",
        ),
        (
            {"dataset_format": "parquet"},
            "dataset_format='parquet': format 'parquet' is not installed: install daglite-arrow "
            "from a clone of daglite: uv pip install ./plugins/daglite-arrow (or pip install "
            "./core ./plugins/daglite-arrow) (installed formats: bytes, json, pickle, text).",
        ),
        (
            {"dataset_store": "gs://bucket/data"},
            "dataset_store: cannot use 'gs://bucket/data' as the dataset store: unknown store "
            "'gs'; installed stores: file, memory.",
        ),
        (
            {"cache_store": "s3://bucket/cache"},
            "cache_store: cannot use 's3://bucket/cache' as the cache store: store 's3' is not "
            "installed: install daglite-s3 from a clone of daglite: uv pip install "
            "./plugins/daglite-s3 (or pip install ./core ./plugins/daglite-s3) (installed "
            "stores: file, memory).",
        ),
        (
            {"cache": "gs://bucket/cache"},
            "cache: cannot use 'gs://bucket/cache' as the cache store: unknown store 'gs'; "
            "installed stores: file, memory.",
        ),
    ],
)
def test_unknown_or_misshapen_names_fail_at_decoration(options, message):
    with pytest.raises(ValueError) as info:
        task(**options)(_f)
    assert str(info.value) == message


def test_known_names_pass_at_decoration():
    t = task(backend="thread", dataset_format="json", dataset_store="memory://x", cache="dir")(_f)
    assert (t.backend, t.dataset_format) == ("thread", "json")
