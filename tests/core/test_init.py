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


def test_import_daglite_runs_no_daglite_module():
    out = run("import sys, daglite\nprint(sorted(m for m in sys.modules if 'daglite' in m))\n")
    assert out == "['daglite']"
    out = run("import sys, daglite\nprint([m for m in ('typing', 'attrs') if m in sys.modules])")
    assert out == "[]"


def test_a_bare_task_call_loads_only_what_it_needs():
    out = run(
        "import sys\n"
        "from daglite import task\n"
        "@task\n"
        "def f(x):\n"
        "    return x\n"
        "assert f(1) == 1\n"
        "print(sorted(m for m in sys.modules if m.startswith('daglite')))\n"
    )
    assert out == (
        "['daglite', 'daglite.context', 'daglite.drivers', 'daglite.errors', 'daglite.interest',"
        " 'daglite.lifecycle', 'daglite.pipeline', 'daglite.settings', 'daglite.tallies',"
        " 'daglite.taskoptions', 'daglite.tasks', 'daglite.taskspec', 'daglite.templates']"
    )


def test_each_public_name_loads_on_first_use():
    out = run(
        "import importlib, daglite\n"
        "names = sorted(set(daglite.__all__) - {'__version__'})\n"
        "print([n for n in names if n in vars(daglite)])\n"
        "for n in names:\n"
        "    value = getattr(daglite, n)\n"
        "    source = importlib.import_module(daglite._SOURCES[n])\n"
        "    assert value is getattr(source, n) is vars(daglite)[n], n\n"
        "print('ok')\n"
    )
    assert out == "[]\nok"


def test_public_names_are_the_objects_of_their_modules():
    from daglite import composers
    from daglite import errors
    from daglite import session as session_function
    from daglite import tasks
    from daglite import workflows

    assert daglite.task is tasks.task
    assert daglite.workflow is workflows.workflow
    assert daglite.map_tasks is composers.map_tasks
    assert daglite.TaskError is errors.TaskError
    assert daglite.session is session_function
    assert callable(daglite.session)


@pytest.mark.parametrize(
    "first",
    [
        "import daglite.session",
        "import daglite.workflows",
        "from daglite import workflow",
        "from daglite.session import SessionContext",
    ],
)
def test_daglite_session_stays_the_function_whatever_loads_the_module_first(first):
    out = run(
        f"import daglite\n{first}\n"
        "from daglite import session\n"
        "import daglite.session as also\n"
        "print(session.__name__, daglite.session is session, also is session)\n"
    )
    assert out == "session True True"


def test_dir_lists_every_public_name():
    out = run("import daglite\nprint(sorted(set(daglite.__all__) - set(dir(daglite))))")
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
