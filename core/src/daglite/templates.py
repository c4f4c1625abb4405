"""Templates: task names and dataset keys with `{param}` placeholders, checked once.

A template is checked when the task is decorated (`check_template`): every placeholder
names a parameter of the function (or `map_index`), its conversion is `!r`, `!s` or `!a`
(dataset keys also take `!p`, below) and its format spec is one Python's own types
accept (`{x:>8}`, `{x:.2f}`, `{day:%Y-%m-%d}`). So a typo fails at decoration, not at the
first call.

Dataset keys are paths in a store, so a value filled into a key must not pick a different
key than the template meant: `fill_key` refuses a value whose text contains a path
separator (`/` or a backslash) or is `.` or `..`, which would let a parameter such as
`user="../alice"` reach another user's dataset. A placeholder opts in to values that
span several folders with the `!p` (path) conversion, `"reports/{region!p}/summary.json"`;
such a value may contain `/` but still no `.` or `..` segment and no leading `/`.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

BUILTIN_PLACEHOLDERS = frozenset({"map_index"})

#: The conversion that lets a dataset key placeholder take a value spanning folders.
PATH_CONVERSION = "p"

_CONVERSIONS = frozenset({None, "r", "s", "a"})


def _fields(template: str) -> list[tuple[str, str, str | None]]:
    """`(field, format_spec, conversion)` of every placeholder of `template`, nested included."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"Template '{template}' is malformed: {exc}") from None
    found = []
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        found.append((field, spec or "", conversion))
        if spec and "{" in spec:  # a nested placeholder, `{x:{width}}`
            found += _fields(spec)
    return found


def placeholders(template: str) -> set[str]:
    """The `{field}` names a template uses (`"{a}-{b.c}"` -> `{"a", "b"}`).

    Raises:
        ValueError: The template is malformed (an unmatched brace, ...).
    """
    return {field.split(".")[0].split("[")[0] for field, _, _ in _fields(template)}


def _spec_is_valid(spec: str) -> bool:
    """Whether `spec` is a format spec str, int or float accept, or a strftime pattern.

    (A `datetime` takes any text as a pattern, so a pattern must use a `%` directive.)
    """
    if "%" in spec:
        return True
    for sample in ("", 0, 0.0):
        try:
            format(sample, spec)
        except (ValueError, TypeError):
            continue
        return True
    return False


def check_template(kind: str, template: str, func: Callable[..., Any]) -> frozenset[str]:
    """Check a name (`kind="Name"`) or dataset key (`kind="Dataset"`) template for `func`.

    Returns:
        The parameter names the template uses.

    Raises:
        ValueError: The template is malformed, has an empty placeholder, names something that
            is not a parameter, or has a conversion or format spec that would fail at the call
            (each message says what to write instead).
    """
    import inspect

    fields = _fields(template)
    allowed = _CONVERSIONS | ({PATH_CONVERSION} if kind == "Dataset" else set())
    for field, spec, conversion in fields:
        if field == "":
            raise ValueError(
                f"{kind} template '{template}' has an empty placeholder '{{}}': name a "
                "parameter, e.g. '{x}'."
            )
        if conversion not in allowed:
            choices = (
                "!r, !s, !a or !p (a value spanning folders)"
                if kind == "Dataset"
                else "!r, !s or !a"
            )
            raise ValueError(
                f"{kind} template '{template}' has an unknown conversion '!{conversion}' in "
                f"{{{field}!{conversion}}}: use {choices}, or none."
            )
        if spec and "{" not in spec and not _spec_is_valid(spec):
            raise ValueError(
                f"{kind} template '{template}' has an invalid format spec '{spec}' in "
                f"{{{field}:{spec}}}: use Python's format mini-language, e.g. "
                f"'{{{field}:>8}}', '{{{field}:04d}}' or '{{{field}:.2f}}'."
            )
    used = frozenset(field.split(".")[0].split("[")[0] for field, _, _ in fields)
    available = set(inspect.signature(func).parameters) | BUILTIN_PLACEHOLDERS
    unknown = used - available
    if unknown:
        raise ValueError(
            f"{kind} template '{template}' references {set(unknown)} which won't be available "
            f"at runtime. Available placeholders: {sorted(available)}."
        )
    return used


# -- dataset keys ---------------------------------------------------------------------------


class UnsafeValue(ValueError):
    """A value filled into a key template would change which key the template names."""


_FORMATTER = string.Formatter()


@functools.lru_cache(maxsize=512)
def _parsed(template: str) -> tuple[tuple[str, str | None, str, str | None], ...]:
    return tuple(
        (literal, field, spec or "", conv)
        for literal, field, spec, conv in _FORMATTER.parse(template)
    )


def fill_key(template: str, values: Mapping[str, Any]) -> str:
    """`template` with its placeholders filled from `values` (see the module docstring).

    Raises:
        UnsafeValue: A value contains a path separator or is `.`/`..` (and its placeholder
            does not opt in with `!p`), or a `!p` value leaves its place.
        KeyError, IndexError, AttributeError, ValueError: A placeholder cannot be filled.
    """
    parts = []
    for literal, field, spec, conversion in _parsed(template):
        parts.append(literal)
        if field is None:
            continue
        if field.isidentifier():
            value = values[field]
        else:  # `{x.attr}`, `{x[0]}`
            value = _FORMATTER.get_field(field, (), values)[0]
        if "{" in spec:  # a nested placeholder, `{x:{width}}`
            spec = spec.format_map(values)
        if conversion == PATH_CONVERSION:
            text = format(value, spec)
            segments = text.replace("\\", "/").split("/")
            if text.startswith("/") or any(s in (".", "..") for s in segments):
                raise UnsafeValue(
                    f"the value {text!r} of {{{field}!p}} is absolute or has a '.' or '..' "
                    "segment; a !p value may span folders, but only downwards"
                )
        else:
            if conversion is not None:
                value = _FORMATTER.convert_field(value, conversion)
            text = format(value, spec)
            if "/" in text or "\\" in text or text in (".", ".."):
                raise UnsafeValue(
                    f"the value {text!r} of {{{field}}} contains a path separator or is '.' or "
                    "'..', so it would pick another key; if the value is meant to span folders, "
                    f"opt in with {{{field}!p}} in the template"
                )
        parts.append(text)
    return "".join(parts)
