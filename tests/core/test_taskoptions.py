"""`TaskOptions`: the option list of `@task`, written once, and each option's check.

A bad option fails at decoration, saying what to do.
"""

from __future__ import annotations

import inspect

import attrs
import pytest

from daglite import task
from daglite.taskoptions import TaskOptions
from daglite.taskoptions import option_names
from daglite.tasks import _TaskDecorator


def _f(x, y=1):
    return x


# -- at decoration ---------------------------------------------------------------------------

NAME_HINT = "(a non-empty string; see: daglite plugins), or None for the default, not "


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": 3}, f"backend must be the name of a backend {NAME_HINT}3."),
        ({"backend": ""}, f"backend must be the name of a backend {NAME_HINT}''."),
        ({"backend": " "}, f"backend must be the name of a backend {NAME_HINT}' '."),
        (
            {"backend": "nope"},
            "backend='nope': unknown backend 'nope'; installed backends: inline, process, thread.",
        ),
        (
            {"backend": "loky"},
            "backend='loky': backend 'loky' is not installed: install daglite-loky from a clone "
            "of daglite: uv pip install ./plugins/daglite-loky (or pip install ./core "
            "./plugins/daglite-loky) (installed backends: inline, process, thread).",
        ),
        ({"dataset_format": 3}, f"dataset_format must be the name of a format {NAME_HINT}3."),
        (
            {"dataset_format": "nope"},
            "dataset_format='nope': unknown format 'nope'; installed formats: bytes, json, "
            "pickle, text.",
        ),
        (
            {"dataset_format": "parquet"},
            "dataset_format='parquet': format 'parquet' is not installed: install daglite-arrow "
            "from a clone of daglite: uv pip install ./plugins/daglite-arrow (or pip install "
            "./core ./plugins/daglite-arrow) (installed formats: bytes, json, pickle, text).",
        ),
        (
            {"dataset_store": "gs://bucket/data"},
            "dataset_store: cannot use 'gs://bucket/data' as the dataset store: unknown store "
            "'gs'; installed stores: file, memory.",
        ),
        (
            {"cache_store": "s3://bucket/cache"},
            "cache_store: cannot use 's3://bucket/cache' as the cache store: store 's3' is not "
            "installed: install daglite-s3 from a clone of daglite: uv pip install "
            "./plugins/daglite-s3 (or pip install ./core ./plugins/daglite-s3) (installed "
            "stores: file, memory).",
        ),
        (
            {"cache": "gs://bucket/cache"},
            "cache: cannot use 'gs://bucket/cache' as the cache store: unknown store 'gs'; "
            "installed stores: file, memory.",
        ),
    ],
)
def test_unknown_or_misshapen_names_fail_at_decoration(options, message):
    with pytest.raises(ValueError) as info:
        task(**options)(_f)
    assert str(info.value) == message


def test_known_names_pass_at_decoration():
    t = task(backend="thread", dataset_format="json", dataset_store="memory://x", cache="dir")(_f)
    assert (t.backend, t.dataset_format) == ("thread", "json")


# -- the option list and TaskOptions -------------------------------------------------------


def test_the_options_of_task_are_the_fields_of_task_options_with_the_same_defaults():
    # The option list is written twice: as these fields (the runtime) and as the typed
    # keyword parameters of `@task`. Adding an option to one and not the other fails here.
    fields = {field.name: field.default for field in attrs.fields(TaskOptions)}
    parameters = {
        name: p.default
        for name, p in inspect.signature(task).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert parameters == fields
    assert tuple(parameters) == option_names()  # in the same order


def test_the_typed_overload_of_task_with_options_lists_them_too():
    # The overload `task(*, name=..., ...) -> _TaskDecorator` is what type checkers see.
    source = inspect.getsource(inspect.getmodule(_TaskDecorator))  # type: ignore[arg-type]
    start = source.index("@overload\ndef task(\n    *,")
    overload = source[start : source.index(") -> _TaskDecorator: ...", start)]
    named = [line.strip().split(":")[0] for line in overload.splitlines()[3:] if ":" in line]
    assert tuple(named) == option_names()


def test_defaults_need_no_plugin_and_numbers_of_seconds_are_floats():
    options = TaskOptions(timeout=3, retry_delay=1, retry_backoff=2)
    assert (options.timeout, options.retry_delay, options.retry_backoff) == (3.0, 1.0, 2.0)
    assert all(isinstance(v, float) for v in (options.timeout, options.retry_delay))
    assert TaskOptions().cache_ignore == ()
    assert TaskOptions(cache_ignore=["a", "b"]).cache_ignore == ("a", "b")


def test_options_are_immutable():
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        TaskOptions().retries = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": ""}, "Task name must be a non-empty string, not ''."),
        (
            {"name": "a.b"},
            "Task name 'a.b' cannot contain period ('.') characters; use '_' or '-'.",
        ),
        ({"retries": -1}, "retries must be a whole number >= 0, not -1."),
        ({"retry_backoff": 0.5}, "retry_backoff must be a finite number >= 1, not 0.5."),
        (
            {"cache_hash": "sha1"},
            "cache_hash must be a function (func, inputs) -> str, or None for the default key, "
            "not str 'sha1'.",
        ),
        (
            {"backend": ""},
            "backend must be the name of a backend (a non-empty string; see: daglite plugins), "
            "or None for the default, not ''.",
        ),
    ],
)
def test_each_option_is_checked_when_the_options_are_built(options, message):
    with pytest.raises(ValueError) as info:
        TaskOptions(**options)
    assert str(info.value) == message


def test_a_cache_hash_that_is_not_a_function_fails_at_decoration():
    with pytest.raises(ValueError, match=r"^cache_hash must be a function \(func, inputs\)"):
        task(cache=True, cache_hash=42)(lambda x: x)  # type: ignore[call-overload]


def test_check_function_checks_what_depends_on_the_function():
    def f(a):
        return a

    def gen(a):
        yield a

    TaskOptions(cache_ignore=("a",), dataset="out/{a}.pkl").check_function(f, "f")
    with pytest.raises(ValueError, match=r"^cache_ignore names \['b'\] which are not param"):
        TaskOptions(cache_ignore=("b",)).check_function(f, "f")
    with pytest.raises(ValueError, match=r"^Name template 'f-\{b\}' references \{'b'\}"):
        TaskOptions().check_function(f, "f-{b}")
    with pytest.raises(ValueError, match=r"^Retries are not supported for generator tasks\.$"):
        TaskOptions(retries=1).check_function(gen, "gen")
