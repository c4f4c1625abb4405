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
from daglite import formats
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


def interleaved_ms(funcs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """The best time of each function in ms, over `rounds` rounds that run each once in turn.

    Interleaving spreads the load of a busy machine over every contender alike.
    """
    samples: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(rounds):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: min(values) for name, values in samples.items()}


def _size(tmp: str, key: str) -> float:
    return os.path.getsize(os.path.join(tmp, "datasets", key)) / 1e6


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
        f"best of {repeats} interleaved runs"
    )
    lines: list[tuple[str, str]] = []

    with tempfile.TemporaryDirectory() as tmp:
        store = DatasetStore(os.path.join(tmp, "datasets"))
        variants = [
            ("pickle", "frame.pkl", {}),
            ("parquet", "frame.parquet", {}),
            ("parquet, plain", "plain.parquet", {"compression": "none", "use_dictionary": False}),
            ("feather", "frame.feather", {}),
            ("feather, uncompressed", "plain.feather", {"compression": "uncompressed"}),
        ]
        funcs: dict[str, Callable[[], Any]] = {}
        for label, key, options in variants:
            funcs[f"save {label}"] = lambda k=key, o=options: store.save(k, frame, options=o)
            funcs[f"load {label}"] = lambda k=key: store.load(k, pd.DataFrame)
        times = interleaved_ms(funcs, repeats)
        pickled = times["save pickle"], times["load pickle"], _size(tmp, "frame.pkl")
        lines.append(("dataset", "save ms   load ms   size MB   (ratio to pickle)"))
        for label, key, _ in variants:
            save, load, size = times[f"save {label}"], times[f"load {label}"], _size(tmp, key)
            lines.append(
                (
                    f"  {label}",
                    f"{save:7.0f}   {load:7.0f}   {size:7.1f}   "
                    f"(save {save / pickled[0]:.2f}x, load {load / pickled[1]:.2f}x, "
                    f"size {size / pickled[2]:.2f}x)",
                )
            )

        assert cache_format(pd.DataFrame) is not None, "install daglite-arrow"
        cache = CacheStore(os.path.join(tmp, "cache"))
        plain = CacheStore(os.path.join(tmp, "plain"))

        def put_pickle() -> None:  # the core without the plugin
            formats._cache_formats[pd.DataFrame] = None
            try:
                plain.put("b" * 40, frame)
            finally:
                formats._cache_formats.pop(pd.DataFrame)

        times = interleaved_ms(
            {
                "put feather": lambda: cache.put("a" * 40, frame),
                "get feather": lambda: cache.get("a" * 40),
                "put pickle": put_pickle,
                "get pickle": lambda: plain.get("b" * 40),
            },
            repeats,
        )
        lines.append(("cache entry", "put ms    get ms"))
        for label, name in (("feather (plugin)", "feather"), ("pickle (core)", "pickle")):
            lines.append(
                (f"  {label}", f"{times['put ' + name]:7.0f}   {times['get ' + name]:7.0f}")
            )
        lines.append(
            (
                "  ratio feather/pickle",
                f"put {times['put feather'] / times['put pickle']:.2f}x, "
                f"get {times['get feather'] / times['get pickle']:.2f}x",
            )
        )

    def state_key() -> None:  # the core's encoding of the frame's (pickle) state
        cachekeys._fingerprints[pd.DataFrame] = None
        try:
            cache_key(summarize, frame)
        finally:
            cachekeys._fingerprints.pop(pd.DataFrame)

    raw = np.ascontiguousarray(frame[[f"f{i}" for i in range(7)]].to_numpy())
    times = interleaved_ms(
        {
            "fingerprint": lambda: cache_key(summarize, frame),
            "state": state_key,
            "pickle": lambda: hashlib.sha256(pickle.dumps(frame, protocol=5)).digest(),
            "floor": lambda: hashlib.sha256(raw).digest(),
        },
        repeats,
    )
    fingerprint, floor = times["fingerprint"], times["floor"] * frame.shape[1] / 7
    lines.append(("cache key of the frame", "ms"))
    lines.append(("  content fingerprint (plugin)", f"{fingerprint:7.0f}"))
    lines.append(
        (
            "  pickle state (core)",
            f"{times['state']:7.0f}   ({fingerprint / times['state']:.2f}x of it)",
        )
    )
    lines.append(
        (
            "  sha256(pickle.dumps(frame))",
            f"{times['pickle']:7.0f}   ({fingerprint / times['pickle']:.2f}x of it)",
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
