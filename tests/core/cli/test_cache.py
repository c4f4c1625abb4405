"""`daglite cache info` / `daglite cache clear`, run for real in subprocesses; durations."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import daglite_cmd


def _cache_cmd(tmp_path: Path, *args: str):
    return daglite_cmd(*args, cwd=tmp_path)


def test_cache_info_of_an_unknown_store_exits_2(tmp_path):
    done = _cache_cmd(tmp_path, "cache", "info", "--store", "nope://bucket/cache")
    assert done.returncode == 2
    assert "cannot open the cache store 'nope://bucket/cache'" in done.stderr
    assert "unknown store 'nope'" in done.stderr


def test_cache_clear_rejects_a_bad_duration(tmp_path):
    done = _cache_cmd(tmp_path, "cache", "clear", "--older-than", "soon")
    assert done.returncode == 2
    assert "invalid duration 'soon': use a number of seconds or parts like 30s" in done.stderr


CACHED = """
from daglite import task, workflow


@task(cache=True)
def slow_square(x: int) -> int:
    return x * x


@workflow
def squares(n: int = 3) -> list[int]:
    return [slow_square(i) for i in range(n)]
"""


def test_cache_commands_on_a_real_store(tmp_path):
    (tmp_path / "cached.py").write_text(CACHED)
    done = daglite_cmd("run", "cached.py:squares", "--n", "3", "--log-level", "error", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    info = daglite_cmd("cache", "info", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "entries: 3" in info.stdout
    cleared = daglite_cmd("cache", "clear", cwd=tmp_path)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.startswith("removed 3 cache entries from ")
    assert "entries: 0" in daglite_cmd("cache", "info", cwd=tmp_path).stdout


def test_cache_clear_older_than_on_a_real_store(tmp_path):
    (tmp_path / "cached.py").write_text(CACHED)
    done = daglite_cmd("run", "cached.py:squares", "--n", "2", "--log-level", "error", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    kept = daglite_cmd("cache", "clear", "--older-than", "1h", cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.startswith("removed 0 cache entries older than 1h from ")
    assert "entries: 2" in daglite_cmd("cache", "info", cwd=tmp_path).stdout
    gone = daglite_cmd("cache", "clear", "--older-than", "0", cwd=tmp_path)
    assert gone.stdout.startswith("removed 2 cache entries older than 0 from ")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("1.5", 1.5), ("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800),
     ("1w", 604800), ("1h30m", 5400), (" 2H ", 7200)],
)  # fmt: skip
def test_parse_duration(text, seconds):
    from daglite.cli.cache import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [("-5", "--older-than must not be negative"), ("2x", "invalid duration '2x'"),
     ("1h 30m", "invalid duration '1h 30m'"), ("", "invalid duration ''")],
)  # fmt: skip
def test_parse_duration_rejects(text, message):
    from daglite.cli.cache import parse_duration
    from daglite.cli.targets import UsageError

    with pytest.raises(UsageError, match=message):
        parse_duration(text)
