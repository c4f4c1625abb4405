"""Tables with daglite-arrow: parquet and feather against the pickle format, in one run.

Run it with `python benchmarks/bench_arrow.py` (`--rows 100000` for a fast, rough pass);
needs `daglite-arrow` and pandas (`pip install -e plugins/daglite-arrow pandas`).

For a 1,000,000-row, 10-column pandas frame it prints:

- dataset save and load (to local files) in pickle, parquet and feather (with their
  default compression, and "plain": no compression, no dictionary encoding): time, size,
  and the ratio to pickle (< 1 is faster / smaller);
- the result cache: put and get of the frame as a feather entry (what the plugin does) and
  as a pickle entry (the core without the plugin);
- the cache key of a call taking the frame: the plugin's content fingerprint, against the
  core's default encoding of the frame (its pickle state) and against pickling the frame
  and hashing the bytes (the plain-Python way).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from daglite import cachekeys
from daglite import task
from daglite.caching import CacheStore
from daglite.caching import cache_key
from daglite.datasets import DatasetStore
from daglite.formats import cache_format


def make_frame(rows: int) -> pd.DataFrame:
    """`rows` rows, 10 columns: 7 floats, an int, a timestamp and a low-cardinality text."""
    rng = np.random.default_rng(42)
    frame = pd.DataFrame({f"f{i}": rng.normal(size=rows) for i in range(7)})
    frame["qty"] = rng.integers(0, 1000, size=rows)
    frame["at"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(rows), unit="s")
    frame["city"] = (
        pd.Series([f"city-{i}" for i in range(100)])
        .take(rng.integers(0, 100, size=rows))
        .to_numpy()
    )
    return frame


def best_ms(func: Callable[[], Any], repeats: int) -> float:
    """The best of `repeats` timings of `func()`, in milliseconds (robust on a busy machine)."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1e3)
    return min(samples)


@task(cache=True)
def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.describe()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    frame = make_frame(args.rows)
    repeats = args.repeats
    print(
        f"frame: {args.rows:,} rows x {frame.shape[1]} columns, "
        f"{frame.memory_usage(deep=True).sum() / 1e6:.0f} MB in memory; "
        f"best of {repeats} runs"
    )
    lines: list[tuple[str, str]] = []

    with tempfile.TemporaryDirectory() as tmp:
        store = DatasetStore(os.path.join(tmp, "datasets"))
        results = {}
        variants = [
            ("pickle", "frame.pkl", {}),
            ("parquet", "frame.parquet", {}),
            ("parquet, plain", "plain.parquet", {"compression": "none", "use_dictionary": False}),
            ("feather", "frame.feather", {}),
            ("feather, uncompressed", "plain.feather", {"compression": "uncompressed"}),
        ]
        for label, key, options in variants:
            save = best_ms(lambda k=key, o=options: store.save(k, frame, options=o), repeats)
            load = best_ms(lambda k=key: store.load(k, pd.DataFrame), repeats)
            size = os.path.getsize(os.path.join(tmp, "datasets", key)) / 1e6
            results[label] = (save, load, size)
        pickled = results["pickle"]
        lines.append(("dataset", "save ms   load ms   size MB   (ratio to pickle)"))
        for fmt, (save, load, size) in results.items():
            lines.append(
                (
                    f"  {fmt}",
                    f"{save:7.0f}   {load:7.0f}   {size:7.1f}   "
                    f"(save {save / pickled[0]:.2f}x, load {load / pickled[1]:.2f}x, "
                    f"size {size / pickled[2]:.2f}x)",
                )
            )

        cache = CacheStore(os.path.join(tmp, "cache"))
        assert cache_format(pd.DataFrame) is not None, "install daglite-arrow"
        put_arrow = best_ms(lambda: cache.put("a" * 40, frame), repeats)
        get_arrow = best_ms(lambda: cache.get("a" * 40), repeats)
        plain = CacheStore(os.path.join(tmp, "plain"))
        from daglite import formats

        formats._cache_formats[pd.DataFrame] = None  # the core without the plugin: pickle
        put_pickle = best_ms(lambda: plain.put("b" * 40, frame), repeats)
        get_pickle = best_ms(lambda: plain.get("b" * 40), repeats)
        formats._cache_formats.pop(pd.DataFrame)
        lines.append(("cache entry", "put ms    get ms"))
        lines.append(("  feather (plugin)", f"{put_arrow:7.0f}   {get_arrow:7.0f}"))
        lines.append(("  pickle (core)", f"{put_pickle:7.0f}   {get_pickle:7.0f}"))
        lines.append(
            (
                "  ratio feather/pickle",
                f"put {put_arrow / put_pickle:.2f}x, get {get_arrow / get_pickle:.2f}x",
            )
        )

    fingerprint = best_ms(lambda: cache_key(summarize, frame), repeats)
    cachekeys._fingerprints[pd.DataFrame] = None  # the core's encoding of the frame's state
    try:
        state = best_ms(lambda: cache_key(summarize, frame), repeats)
    finally:
        cachekeys._fingerprints.pop(pd.DataFrame)
    pickle_hash = best_ms(lambda: hashlib.sha256(pickle.dumps(frame, protocol=5)).digest(), repeats)
    raw = np.ascontiguousarray(frame[[f"f{i}" for i in range(7)]].to_numpy())
    floor = best_ms(lambda: hashlib.sha256(raw).digest(), repeats) * frame.shape[1] / 7
    lines.append(("cache key of the frame", "ms"))
    lines.append(("  content fingerprint (plugin)", f"{fingerprint:7.0f}"))
    lines.append(("  pickle state (core)", f"{state:7.0f}   ({fingerprint / state:.2f}x of it)"))
    lines.append(
        (
            "  sha256(pickle.dumps(frame))",
            f"{pickle_hash:7.0f}   ({fingerprint / pickle_hash:.2f}x of it)",
        )
    )
    lines.append(
        ("  sha256 of 10 raw columns (floor)", f"{floor:7.0f}   ({fingerprint / floor:.2f}x of it)")
    )
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
