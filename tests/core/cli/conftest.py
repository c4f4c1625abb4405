"""What the command-line tests share: the `daglite` command run for real, and a flows file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FLOWS = '''
"""Workflows for the command-line tests."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Literal

from daglite import get_logger
from daglite import map_tasks
from daglite import task
from daglite import workflow


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@task
def double(x: int) -> int:
    get_logger().info("doubling", x=x)
    return 2 * x


@task
def explode(x: int) -> int:
    if x == 2:
        raise ValueError(f"bad item {x}")
    return x


@workflow
def typed(
    n: int,
    scale: float = 1.5,
    name: str = "w",
    verbose: bool = False,
    out: Path = Path("out.txt"),
    color: Color = Color.RED,
    mode: Literal["a", "b"] = "a",
    tags: list[str] | None = None,
) -> dict:
    """Exercise every parameter type.

    Args:
        n: How many items to double.
        scale: A factor.
    """
    return {
        "n": n, "scale": scale, "name": name, "verbose": verbose, "out": str(out),
        "color": color.value, "mode": mode, "tags": tags,
        "doubled": map_tasks(double, range(n)),
    }


@workflow
def failing(n: int = 4) -> list[int]:
    """Fails on item 2."""
    return map_tasks(explode, range(n))


@workflow
def shadow(backend: str = "mine") -> str:
    """Has a parameter named like a session option."""
    return backend


@workflow
async def later(x: int = 2) -> int:
    """An async workflow."""
    return double(x)


@workflow
def odd_result() -> set:
    """Returns what JSON cannot hold."""
    return {3, 1, 2}


@workflow
def interrupted() -> None:
    """Gets Ctrl-C."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGINT)
    import time

    time.sleep(5)


not_a_workflow = double


@workflow
def doubles(n: int = 2) -> list[int]:
    return map_tasks(double, range(n))
'''


def _command() -> list[str]:
    script = Path(sys.executable).with_name("daglite")
    return [str(script)] if script.exists() else [sys.executable, "-m", "daglite.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGLITE_")}
    env["DAGLITE_LOG_FORMAT"] = "json"  # what a pipe gets anyway; explicit for clarity
    env.update(extra)
    return env


def daglite_cmd(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [*_command(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or _env(),
        timeout=timeout,
    )


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    return tmp_path
