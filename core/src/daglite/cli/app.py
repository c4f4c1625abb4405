"""The `daglite` command: `run`, `list`, `describe`, `plugins`, `report` and `cache`.

Exit statuses: 0 success; 1 the workflow failed; 2 a usage error (unknown target, bad
parameter value, unknown backend or plugin), with a message saying what to do.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Annotated
from typing import Any

import cyclopts
from cyclopts import Parameter

from daglite import __version__
from daglite.cli import cache as cache_commands
from daglite.cli import running
from daglite.cli.running import reflow
from daglite.cli.targets import UsageError
from daglite.cli.targets import load_module
from daglite.cli.targets import load_workflow
from daglite.cli.targets import split_target
from daglite.cli.targets import workflows_in

app = cyclopts.App(
    name="daglite",
    help=(
        "Run and inspect daglite workflows.\n\n"
        "A TARGET is package.module:workflow or path/to/file.py:workflow. "
        "Exit status: 0 success, 1 the workflow failed, 2 usage error."
    ),
    version=__version__,
    version_flags=("--version",),
    help_format="plaintext",
    help_formatter="plain",
    result_action="return_value",
)


def _reflowed(func: Any) -> Any:
    func.__doc__ = reflow(func.__doc__)
    return func


cache_app = cyclopts.App(
    name="cache",
    help="Inspect or prune the cache store.",
    help_format="plaintext",
    help_formatter="plain",
    result_action="return_value",
)
app.command(cache_app)


@app.command
@_reflowed
def run(
    target: str,
    /,
    *parameters: Annotated[str, Parameter(allow_leading_hyphen=True)],
) -> int:
    """Run a workflow and print its result.

    The workflow's parameters become options, parsed from its annotations: see them with
    `daglite run TARGET --help`. Session options (--backend, --cache-store, --dataset-store,
    --log-format, --log-level, --plugin, --event-log, --report, --traceback) are accepted
    before or after TARGET; a workflow parameter with the same name takes precedence.

    Args:
        target: package.module:workflow or path/to/file.py:workflow.
        parameters: The workflow's parameters (--name value ...).
    """
    return running.run([target, *parameters])


@app.command(name="list")
@_reflowed
def list_(target: str, /) -> int:
    """List the workflows of a module or file.

    Args:
        target: package.module or path/to/file.py.
    """
    source, _ = split_target(target)
    module = load_module(source)
    found = workflows_in(module)
    if not found:
        print(f"'{source}' defines no @workflow", file=sys.stderr)
        return 0
    width = max(len(name) for name in found)
    for attr, workflow in found.items():
        summary = (workflow.description or "").strip().splitlines()
        print(f"{source}:{attr:<{width}}  {summary[0] if summary else ''}".rstrip())
    return 0


@app.command
@_reflowed
def describe(target: str, /) -> int:
    """Show a workflow's parameters (types, defaults) and description.

    Args:
        target: package.module:workflow or path/to/file.py:workflow.
    """
    import docstring_parser  # cyclopts' own docstring parser

    workflow = load_workflow(target)
    signature = running._resolved_signature(workflow.func)
    doc = docstring_parser.parse(inspect.getdoc(workflow.func) or workflow.description or "")
    kind = "async workflow" if inspect.iscoroutinefunction(workflow.func) else "workflow"
    print(f"{kind} {workflow.name}  ({target})")
    text = "\n\n".join(t for t in (doc.short_description, doc.long_description) if t)
    if text:
        print()
        for line in reflow(text).splitlines():
            print(f"  {line}".rstrip())
    helps = {p.arg_name: " ".join((p.description or "").split()) for p in doc.params}
    rows = [
        (
            "--" + param.name.replace("_", "-"),
            _type_name(param.annotation),
            "required"
            if param.default is inspect.Parameter.empty
            else f"default: {_value_text(param.default)}",
            helps.get(param.name, ""),
        )
        for param in signature.parameters.values()
    ]
    print("\nparameters:")
    if not rows:
        print("  (none)")
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)] + [row[3]]
        print(("  " + "  ".join(cells)).rstrip())
    print(f"\nrun it: daglite run {target} [PARAMETERS]  (all options: --help)")
    return 0


def _type_name(annotation: Any) -> str:
    import enum
    import typing

    if annotation is inspect.Parameter.empty:
        return "any"
    if typing.get_origin(annotation) is typing.Literal:
        return "|".join(str(a) for a in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "|".join(member.name.lower() for member in annotation)
    if isinstance(annotation, type):
        return annotation.__name__
    return inspect.formatannotation(annotation).replace("pathlib.", "")


def _value_text(value: Any) -> str:
    import enum
    import os

    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


@app.command
@_reflowed
def plugins(*, check: bool = False) -> int:
    """List every plugin of every entry-point group and whether it can be used.

    For each group (backends, stores, formats, processors): the name, the providing
    distribution and its version, and "ok" or what is wrong: it fails to import, does not fit
    the contract of its kind, was built for another plugin API version, or its name is also
    claimed by another distribution (pick one with the providers setting).

    Args:
        check: Exit with status 1 when any plugin has a problem (for CI).
    """
    from daglite import registry
    from daglite.errors import PluginError

    problems = 0
    for kind, group in registry.GROUPS.items():
        print(group)
        infos = registry.entries(kind)
        if not infos:
            print("  (none installed)")
        width = max((len(info.name) for info in infos), default=0)
        for info in infos:
            where = f"{info.distribution or '?'} {info.version or ''}".strip()
            try:
                if info.distribution == "daglite.testing":
                    registry.load(kind, info.name)
                else:
                    registry.load_entry(kind, info)
                    picked = registry.chosen(kind, info.name)
                    if picked != info:
                        where += f"  (not used: the providers setting picks {picked.distribution})"
                status = "ok"
            except PluginError as exc:
                problems += 1
                status = f"error: {exc}"
            print(f"  {info.name:<{width}}  {where}  {status}")
    if problems:
        print(f"\n{problems} plugin(s) cannot be used", file=sys.stderr)
    return 1 if problems and check else 0


@app.command
@_reflowed
def report(
    log: Path,
    /,
    *,
    output: Annotated[Path | None, Parameter(name=("--output", "-o"))] = None,
    session: str | None = None,
) -> int:
    """Build a self-contained HTML report of a run from its event log.

    The page opens offline in any browser: a timeline of every task call per worker,
    statistics per task and per map, failures with their tracebacks, datasets and log
    records. Write the event log with `daglite run --event-log run.jsonl ...` (or run with
    `--report run.html` to get the page directly).

    Args:
        log: The JSON-lines event log of the run.
        output: The HTML file to write (default: the log's name with .html).
        session: Report only the session with this id (default: every session in the log).
    """
    from daglite.report import ReportError
    from daglite.report import build_report

    out = output if output is not None else log.with_suffix(".html")
    try:
        written = build_report(log, out, session_id=session)
    except ReportError as exc:
        raise UsageError(str(exc)) from exc
    print(written)
    return 0


@app.command(name="new-plugin")
@_reflowed
def new_plugin(name: str, /, *, directory: Path = Path(".")) -> int:
    """Write a standalone plugin package with a backend, a store, a format and a processor.

    The package daglite-NAME depends on this daglite, declares its plugin API version, and
    its tests pass as written: install it next to the daglite core and run pytest.

    Args:
        name: The plugin's name: one lowercase word (its entry points, URL scheme and format).
        directory: Where to create the daglite-NAME folder.
    """
    from daglite.cli.scaffold import new_plugin as write

    target = write(name, directory)
    print(f"created {target}")
    print(f"next: cd {target} && uv venv && uv pip install <daglite clone>/core -e '.[test]'")
    print("      && .venv/bin/pytest")
    return 0


@cache_app.command
@_reflowed
def info(*, store: Annotated[str | None, Parameter(help="Cache store path or URL.")] = None) -> int:
    """Show the cache store's location, entry count and size.

    Args:
        store: Path or URL of the cache store (default: the cache_store setting).
    """
    return cache_commands.info(store)


@cache_app.command
@_reflowed
def clear(
    *,
    store: str | None = None,
    older_than: str | None = None,
    force: bool = False,
) -> int:
    """Remove cache entries: all of them, or those older than a duration.

    Only cache entries (and temporary files of writes that never finished) are removed; a
    folder that is not a daglite cache store is refused unless --force is given.

    Args:
        store: Path or URL of the cache store (default: the cache_store setting).
        older_than: Only entries written longer ago than this (30s, 15m, 2h, 7d, 1w, 1h30m).
        force: Clear a folder even if it is not recognised as a daglite cache store.
    """
    return cache_commands.clear(store, older_than, force)


def _format_error(error: Any) -> str:
    return f"daglite: error: {error}\nsee: daglite --help"


def run_command(tokens: list[str]) -> int:
    """Run the command line `tokens`; returns the exit status."""
    try:
        if tokens[:1] == ["run"] and running.find_target(tokens[1:]) is not None:
            status = running.run(tokens[1:])
        else:
            status = app(tokens, error_formatter=_format_error)
    except UsageError as exc:
        print(f"daglite: error: {exc}", file=sys.stderr)
        status = 2
    except SystemExit as exc:  # cyclopts exits 2 on bad options; keep its status
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return status if isinstance(status, int) else 0
