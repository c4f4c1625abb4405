"""`daglite run TARGET [--param value ...]`: a command built from the workflow's signature.

The workflow's parameters become options (and positionals) parsed from their annotations
by cyclopts; the session options (`--backend`, `--log-format`, ...) are added in a group of
their own. The workflow then runs inside a session opened with those options, so it joins
that session instead of opening one of its own.
"""

from __future__ import annotations

import inspect
import sys
import typing
from pathlib import Path
from typing import Annotated
from typing import Any
from typing import Literal

import cyclopts
from cyclopts import Group
from cyclopts import Parameter

from daglite.cli.targets import UsageError
from daglite.cli.targets import load_workflow

SESSION = Group("Session", sort_key=1)
_PREFIX = "daglite_"


def _options(
    *,
    daglite_backend: Annotated[
        str | None,
        Parameter(
            name="--backend",
            group=SESSION,
            help="Backend for map_tasks: inline, thread, process, or a plugin's.",
        ),
    ] = None,
    daglite_cache_store: Annotated[
        str | None,
        Parameter(name="--cache-store", group=SESSION, help="Cache store (a path or URL)."),
    ] = None,
    daglite_dataset_store: Annotated[
        str | None,
        Parameter(name="--dataset-store", group=SESSION, help="Dataset store (a path or URL)."),
    ] = None,
    daglite_log_format: Annotated[
        Literal["auto", "console", "json"] | None,
        Parameter(
            name="--log-format",
            group=SESSION,
            help="Log lines readable (console) or as JSON (auto: console on a terminal).",
        ),
    ] = None,
    daglite_log_level: Annotated[
        Literal["debug", "info", "warning", "error"] | None,
        Parameter(name="--log-level", group=SESSION, help="Lowest level logged."),
    ] = None,
    daglite_quiet: Annotated[
        bool,
        Parameter(
            name=("--quiet", "-q"),
            negative=(),
            group=SESSION,
            help="Log warnings and errors only (--log-level warning).",
        ),
    ] = False,
    daglite_verbose: Annotated[
        bool,
        Parameter(
            name=("--verbose", "-v"),
            negative=(),
            group=SESSION,
            help="Log every task call too (--log-level debug).",
        ),
    ] = False,
    daglite_plugin: Annotated[
        list[str] | None,
        Parameter(
            name="--plugin",
            group=SESSION,
            help="Event processor to add, by name (repeatable); see: daglite plugins.",
        ),
    ] = None,
    daglite_option: Annotated[
        list[str] | None,
        Parameter(
            name="--option",
            group=SESSION,
            help="A plugin option PLUGIN.KEY=VALUE (repeatable), e.g. rich.plain-interval=5.",
        ),
    ] = None,
    daglite_event_log: Annotated[
        Path | None,
        Parameter(
            name="--event-log",
            group=SESSION,
            help="Append every event of the run to this file as JSON lines.",
        ),
    ] = None,
    daglite_report: Annotated[
        Path | None,
        Parameter(
            name="--report",
            group=SESSION,
            help="Write an HTML report of the run to this file (see: daglite report --help).",
        ),
    ] = None,
    daglite_traceback: Annotated[
        bool,
        Parameter(
            name="--traceback",
            negative=(),
            group=SESSION,
            help="On failure, print the full traceback.",
        ),
    ] = False,
) -> None:
    """The session options of `daglite run` (their signature is reused)."""


#: Names of the session options that take a value (to find TARGET among the tokens).
VALUE_OPTIONS = frozenset(
    {
        "--backend",
        "--cache-store",
        "--dataset-store",
        "--log-format",
        "--log-level",
        "--plugin",
        "--option",
        "--event-log",
        "--report",
    }
)


def reflow(doc: str | None) -> str:
    """`doc` with the lines of each prose paragraph joined (cyclopts keeps line breaks).

    Sections such as `Args:` keep their lines, so cyclopts still finds parameter help there.
    """
    paragraphs = inspect.cleandoc(doc or "").split("\n\n")
    out = []
    for paragraph in paragraphs:
        lines = paragraph.splitlines()
        if lines and lines[0].rstrip().endswith(":") and len(lines) > 1:
            out.append(paragraph)  # a docstring section
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


def find_target(tokens: list[str]) -> int | None:
    """Index of TARGET among the tokens after `run` (`None` when there is none)."""
    skip = False
    for index, token in enumerate(tokens):
        if skip:
            skip = False
            continue
        if token == "--":
            return index + 1 if index + 1 < len(tokens) else None
        if token.startswith("-"):
            skip = token in VALUE_OPTIONS
            continue
        return index
    return None


def _resolved_signature(func: Any) -> inspect.Signature:
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise UsageError(
            f"cannot read the annotations of workflow {func.__qualname__}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return signature.replace(
        parameters=[
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in signature.parameters.values()
        ]
    )


def build_app(target: str) -> tuple[cyclopts.App, Any]:
    """The cyclopts app for `daglite run TARGET` and the workflow it runs.

    Raises:
        UsageError: TARGET cannot be found (see `load_workflow`).
    """
    workflow = load_workflow(target)
    signature = _resolved_signature(workflow.func)
    params = list(signature.parameters.values())
    taken = {p.name.replace("_", "-") for p in params}
    for option in _resolved_signature(_options).parameters.values():
        flag = option.name[len(_PREFIX) :].replace("_", "-")
        if flag not in taken:  # a workflow parameter of the same name wins
            params.append(option)
    # Keyword-only options must follow any *args; keep the workflow's order otherwise.
    kinds = sorted(params, key=lambda p: p.kind)

    def runner(*args: Any, **kwargs: Any) -> Any:
        return args, kwargs

    runner.__signature__ = signature.replace(parameters=kinds)  # type: ignore[attr-defined]
    runner.__annotations__ = {p.name: p.annotation for p in kinds}
    runner.__doc__ = inspect.getdoc(workflow.func) or workflow.description
    runner.__name__ = workflow.name
    runner.__module__ = __name__
    app = cyclopts.App(
        name=f"daglite run {target}",
        help=reflow(workflow.description) or None,
        help_format="plaintext",
        version_flags=(),
        result_action="return_value",
        default_parameter=Parameter(negative_iterable=()),
        error_formatter=lambda error: (
            f"daglite: error: {error}\nsee the parameters with: daglite run {target} --help"
        ),
    )
    app.default(runner)
    return app, workflow


def run(tokens: list[str]) -> int:
    """`daglite run [SESSION OPTIONS] TARGET [PARAMETERS]`; returns the exit status."""
    at = find_target(tokens)
    assert at is not None
    target = tokens[at]
    app, workflow = build_app(target)
    rest = tokens[:at] + tokens[at + 1 :]
    command, bound, _ = app.parse_args(rest)
    if getattr(command, "__name__", None) != workflow.name or command.__module__ != __name__:
        command(*bound.args, **bound.kwargs)  # --help
        return 0
    args = list(bound.args)
    kwargs = {k: v for k, v in bound.kwargs.items() if not k.startswith(_PREFIX)}
    options = {k[len(_PREFIX) :]: v for k, v in bound.kwargs.items() if k.startswith(_PREFIX)}
    return execute(workflow, args, kwargs, options)


def execute(workflow: Any, args: list[Any], kwargs: dict[str, Any], options: dict[str, Any]) -> int:
    """Run `workflow` in a session opened with the command-line `options`; the exit status."""
    from daglite.errors import DagliteError
    from daglite.errors import TaskError
    from daglite.session import SessionContext
    from daglite.settings import load_settings
    from daglite.settings import set_global_settings

    changes: dict[str, Any] = {}
    for name in ("log_format", "log_level"):
        if options.get(name) is not None:
            changes[name] = options[name]
    chosen = [flag for flag in ("quiet", "verbose") if options.get(flag)]
    if chosen:
        if len(chosen) > 1 or "log_level" in changes:
            raise UsageError(
                "choose one of -q/--quiet, -v/--verbose and --log-level: they all set how "
                "much is logged"
            )
        changes["log_level"] = "warning" if chosen[0] == "quiet" else "debug"
    if options.get("event_log") is not None:
        changes["event_log"] = str(options["event_log"])
    if options.get("report") is not None:
        changes["report"] = str(options["report"])
    for name in ("backend", "cache_store", "dataset_store"):
        if options.get(name) is not None:
            changes[name] = options[name]
    try:
        settings = load_settings()
        if options.get("option"):
            changes["options"] = _with_options(settings.options, options["option"])
        settings = settings.evolve(**changes)
    except DagliteError as exc:
        raise UsageError(str(exc)) from exc
    set_global_settings(settings)  # bare calls and worker processes see the same settings
    try:
        ctx = SessionContext(
            backend=options.get("backend"),
            cache_store=options.get("cache_store"),
            dataset_store=options.get("dataset_store"),
            plugins=list(options.get("plugin") or []),
            settings=settings,
        ).open()
    except DagliteError as exc:  # a bad option, found before any task ran
        text = str(exc)
        # a missing plugin, or one that cannot be used
        missing = "installed" in text or _plugin_error(exc) is not None
        hint = "; see: daglite plugins" if missing else ""
        raise UsageError(f"{text}{hint}") from exc
    try:
        result = workflow(*args, **kwargs)
        if inspect.iscoroutine(result):
            import asyncio

            result = asyncio.run(result)
    except KeyboardInterrupt as exc:
        ctx.close(exc)
        print("daglite: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        ctx.close(exc)
        plugin_error = _plugin_error(exc)
        if plugin_error is not None:  # a plugin asked for by name cannot be used
            print(f"daglite: error: {plugin_error}; see: daglite plugins", file=sys.stderr)
            return 2
        _report_failure(workflow.name, exc, TaskError, bool(options.get("traceback")))
        return 1
    ctx.close()
    _print_result(result)
    return 0


def _with_options(current: Any, given: list[str]) -> dict[str, dict[str, Any]]:
    """`current` plugin options with `--option PLUGIN.KEY=VALUE` values applied."""
    merged = {plugin: dict(table) for plugin, table in current.items()}
    for text in given:
        target, sep, value = text.partition("=")
        plugin, dot, key = target.strip().partition(".")
        if not sep or not dot or not plugin or not key:
            raise UsageError(
                f"--option takes PLUGIN.KEY=VALUE (e.g. --option rich.plain-interval=5), "
                f"not {text!r}"
            )
        merged.setdefault(plugin, {})[key.replace("-", "_")] = value
    return merged


def _plugin_error(exc: BaseException) -> BaseException | None:
    """The `PluginError` that `exc` comes from, if any (its chain of causes)."""
    from daglite.errors import PluginError

    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, PluginError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__  # type: ignore[assignment]
    return None


def _report_failure(name: str, exc: BaseException, task_error: type, full: bool) -> None:
    if full:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    what = str(exc) if isinstance(exc, task_error) else f"{type(exc).__name__}: {exc}"
    hint = "" if full else " (run again with --traceback for the full traceback)"
    print(f"daglite: workflow '{name}' failed: {what}{hint}", file=sys.stderr)


def _print_result(result: Any) -> None:
    if result is None:
        return
    if isinstance(result, str):
        print(result)
        return
    import json

    try:
        print(json.dumps(result, indent=2, allow_nan=True))
    except (TypeError, ValueError):
        import pprint

        pprint.pprint(result)
