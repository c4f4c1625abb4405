"""The package: its public names, and that importing it stays lean and side-effect free."""

from __future__ import annotations

import subprocess
import sys

import pytest

import daglite

HEAVY = ("stevedore", "fsspec", "structlog", "cloudpickle", "asyncio", "pluggy")


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def test_public_names():
    for name in daglite.__all__:
        assert getattr(daglite, name) is not None, name
    assert {
        "task",
        "workflow",
        "session",
        "async_session",
        "map_tasks",
        "gather_tasks",
        "hookimpl",
        "TaskError",
        "TaskTimeoutError",
    } <= set(daglite.__all__)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match=r"^module 'daglite' has no attribute 'nope'$"):
        daglite.nope  # noqa: B018


def test_import_daglite_does_not_import_heavy_dependencies():
    out = run(f"import sys, daglite\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    assert out == "[]"


def test_import_daglite_has_no_side_effects():
    out = run(
        "import daglite, daglite.hooks, daglite.registry, daglite.settings\n"
        "print(daglite.hooks._global_plugins, daglite.registry._loaded,"
        " daglite.settings._global)\n"
    )
    assert out == "[] {} None"


def test_hookimpl_imports_pluggy_only_when_asked_for():
    out = run(
        "import sys, daglite\n"
        "before = 'pluggy' in sys.modules\n"
        "daglite.hookimpl\n"
        "print(before, 'pluggy' in sys.modules)\n"
    )
    assert out == "False True"


def test_a_full_core_session_imports_no_plugin():
    out = run(
        "import asyncio, sys\n"
        "import daglite\n"
        "from daglite import gather_tasks, map_tasks, session, task, workflow\n"
        "from daglite.testing import capture_events\n"
        "class Hook:\n"
        "    @daglite.hookimpl\n"
        "    def before_task(self, metadata):\n"
        "        pass\n"
        "@task(retries=1, timeout=5)\n"
        "def f(x):\n"
        "    return x\n"
        "@task\n"
        "async def g(x):\n"
        "    return x\n"
        "@workflow\n"
        "def w():\n"
        "    return map_tasks(f, [1, 2])\n"
        "with capture_events() as ev, session(backend='thread', plugins=[ev, Hook()]):\n"
        "    f(1); w(); map_tasks(g, [1]); asyncio.run(gather_tasks(g, [1]))\n"
        "print(sorted(m for m in sys.modules if m.startswith('daglite_')))\n"
    )
    assert out == "[]"
