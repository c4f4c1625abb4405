"""Finding workflows from a command-line TARGET.

A TARGET is `package.module:workflow` or `path/to/file.py:workflow`; without `:workflow`
it names a module or file, and a command that needs one workflow takes the only workflow
defined there.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from daglite.workflows import BaseWorkflow


class UsageError(Exception):
    """A command-line mistake: the command exits with status 2 and this message."""


def split_target(target: str) -> tuple[str, str | None]:
    """`"pkg.mod:wf"` -> `("pkg.mod", "wf")`; `"pkg.mod"` -> `("pkg.mod", None)`."""
    source, sep, attr = target.rpartition(":")
    if sep and attr.isidentifier() and source:
        return source, attr
    return target, None


def _is_path(source: str) -> bool:
    return source.endswith(".py") or "/" in source or "\\" in source


def load_module(source: str) -> ModuleType:
    """Import the module named by `source` (a dotted module name or a `.py` file path).

    A file's folder is put first on `sys.path` and the file imported under its own name, so
    worker processes can import it too; if that name is taken by another module, the file
    is imported under a private name and its functions are pickled by value.

    Raises:
        UsageError: No such file or module, or importing it failed.
    """
    if _is_path(source):
        return _load_file(Path(source))
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.append(str(Path.cwd()))  # like `python -m`: modules of the working directory
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (source == exc.name or source.startswith(exc.name + ".")):
            raise UsageError(
                f"cannot find module '{source}': check the spelling, install its package, "
                "or give a file path instead (path/to/file.py:workflow)"
            ) from exc
        raise UsageError(f"cannot import module '{source}': {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise UsageError(f"cannot import module '{source}': {type(exc).__name__}: {exc}") from exc


def _load_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise UsageError(f"no such file: {path} (a TARGET is path/to/file.py:workflow)")
    if path.suffix != ".py":
        raise UsageError(f"{path} is not a Python file (a TARGET is path/to/file.py:workflow)")
    path = path.resolve()
    name = path.stem
    existing = sys.modules.get(name)
    try:
        if existing is None and name.isidentifier():
            folder = str(path.parent)
            if folder not in sys.path:
                sys.path.insert(0, folder)
            module = importlib.import_module(name)
            if Path(getattr(module, "__file__", "") or "").resolve() == path:
                return module
        elif existing is not None and Path(getattr(existing, "__file__", "") or "") == path:
            return existing
        return _load_file_privately(path)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"cannot import {path}: {type(exc).__name__}: {exc}") from exc


def _load_file_privately(path: Path) -> ModuleType:
    import cloudpickle

    name = f"_daglite_target_{abs(hash(str(path))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    cloudpickle.register_pickle_by_value(module)  # workers cannot import it by this name
    return module


def workflows_in(module: ModuleType) -> dict[str, BaseWorkflow[Any, Any]]:
    """The workflows found in `module`'s namespace, by attribute name, in definition order."""
    from daglite.workflows import is_workflow

    found: dict[str, BaseWorkflow[Any, Any]] = {}
    seen: set[int] = set()
    for attr, value in vars(module).items():
        if is_workflow(value) and id(value) not in seen:
            seen.add(id(value))
            found[attr] = value
    return found


def load_workflow(target: str) -> BaseWorkflow[Any, Any]:
    """The workflow named by `target`.

    Raises:
        UsageError: The module cannot be imported, has no such attribute, the attribute is
            not a workflow, or no `:workflow` was given and the module has not exactly one.
    """
    source, attr = split_target(target)
    module = load_module(source)
    available = workflows_in(module)
    listing = ", ".join(available) or "none"
    if attr is None:
        if len(available) == 1:
            return next(iter(available.values()))
        if not available:
            raise UsageError(f"'{source}' defines no @workflow")
        raise UsageError(
            f"'{source}' defines several workflows ({listing}); pick one: {source}:NAME"
        )
    if not hasattr(module, attr):
        raise UsageError(
            f"'{source}' has no workflow '{attr}'; its workflows: {listing} "
            f"(see: daglite list {source})"
        )
    obj = getattr(module, attr)
    from daglite.workflows import is_workflow

    if not is_workflow(obj):
        from daglite.tasks import BaseTask

        what = "a @task" if isinstance(obj, BaseTask) else f"a {type(obj).__name__}"
        raise UsageError(
            f"'{target}' is {what}, not a @workflow; decorate an entry point with "
            f"@workflow (workflows here: {listing})"
        )
    return obj
