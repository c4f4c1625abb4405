"""Templates of task names and dataset keys: checked at decoration, filled safely per call."""

from __future__ import annotations

import datetime

import pytest

from daglite import DatasetError
from daglite import TaskError
from daglite import load_dataset
from daglite import map_tasks
from daglite import save_dataset
from daglite import session
from daglite import task
from daglite.templates import UnsafeValue
from daglite.templates import fill_key

# -- checked at decoration -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{x!q}",
            "Name template '{x!q}' has an unknown conversion '!q' in {x!q}: use !r, !s or !a, "
            "or none.",
        ),
        (
            "{x:>>>}",
            "Name template '{x:>>>}' has an invalid format spec '>>>' in {x:>>>}: use Python's "
            "format mini-language, e.g. '{x:>8}', '{x:04d}' or '{x:.2f}'.",
        ),
        (
            "run-{x:{w!z}}",
            "Name template 'run-{x:{w!z}}' has an unknown conversion '!z' in {w!z}: use !r, !s "
            "or !a, or none.",
        ),
        # `!p` is for dataset keys only: a name is not a path
        ("{x!p}", "Name template '{x!p}' has an unknown conversion '!p' in {x!p}: use !r, !s "),
    ],
)
def test_bad_name_templates_fail_at_decoration(template, message):
    def f(x, w=1):
        return x

    with pytest.raises(ValueError) as info:
        task(name=template)(f)
    assert str(info.value).startswith(message)


def test_bad_dataset_templates_fail_at_decoration():
    def f(x):
        return x

    with pytest.raises(ValueError) as info:
        task(dataset="out/{x!q}.json")(f)
    assert str(info.value) == (
        "Dataset template 'out/{x!q}.json' has an unknown conversion '!q' in {x!q}: use !r, "
        "!s, !a or !p (a value spanning folders), or none."
    )
    with pytest.raises(ValueError, match=r"invalid format spec 'Z9' in \{x:Z9\}"):
        task(dataset="out/{x:Z9}.json")(f)


@pytest.mark.parametrize(
    ("template", "value", "name"),
    [
        ("step-{x:>4}", 7, "step-   7"),
        ("step-{x:04d}", 7, "step-0007"),
        ("step-{x:+}", 7, "step-+7"),
        ("day-{x:%Y-%m-%d}", datetime.date(2026, 12, 4), "day-2026-12-04"),
        ("step-{x!r}", "a", "step-'a'"),
        ("step-{x:{w}}", 7, "step-  7"),
    ],
)
def test_valid_templates_are_accepted_and_filled(template, value, name):
    @task(name=template)
    def f(x, w=3):
        from daglite import current_task

        return current_task().name

    with session():
        assert f(value) == name


def test_a_spec_the_value_does_not_take_fails_with_the_template_and_task_named():
    @task(name="step-{x:d}")
    def f(x):
        return x

    with session(), pytest.raises(ValueError) as info:
        f("seven")
    assert str(info.value) == (
        "cannot fill the name template 'step-{x:d}' of task "
        f"{__name__}.test_a_spec_the_value_does_not_take_fails_with_the_template_and_task_named."
        "<locals>.f: ValueError: Unknown format code 'd' for object of type 'str'"
    )


# -- dataset keys: a value must not pick another key ------------------------------------------


@task(dataset="reports/{user}/summary.json")
def report(user: str) -> dict:
    return {"user": user}


@task(dataset="reports/{region!p}/summary.json")
def regional(region: str) -> dict:
    return {"region": region}


@pytest.mark.parametrize("user", ["../reports/alice", "bob/../alice", "a/b", "..", ".", "a\\b"])
def test_a_key_value_with_a_separator_or_dots_is_refused_and_nothing_is_overwritten(tmp_path, user):
    with session(dataset_store=str(tmp_path)):
        report("alice")
        with pytest.raises(DatasetError) as info:
            report(user)
        assert load_dataset("reports/alice/summary.json") == {"user": "alice"}
    assert str(info.value) == (
        f"refusing to fill dataset key 'reports/{{user}}/summary.json' in task 'report': the "
        f"value {user!r} of {{user}} contains a path separator or is '.' or '..', so it would "
        "pick another key; if the value is meant to span folders, opt in with {user!p} in the "
        "template; nothing was saved or loaded"
    )
    saved = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert saved == ["reports/alice/summary.json"]


def test_save_and_load_calls_inside_a_task_are_held_to_the_same_rule(tmp_path):
    @task
    def read(user: str) -> list:
        return load_dataset("exports/{user}.json")

    with session(dataset_store=str(tmp_path)):
        export("alice")
        assert read("alice") == ["alice"]
        for call in (export, read):
            with pytest.raises(TaskError) as info:
                call("../exports/alice")
            assert isinstance(info.value.__cause__, DatasetError)
            assert "the value '../exports/alice' of {user} contains a path separator" in str(
                info.value
            )


def test_the_p_conversion_opts_in_to_values_spanning_folders_but_only_downwards(tmp_path):
    with session(dataset_store=str(tmp_path)):
        regional("eu/west")
        assert load_dataset("reports/eu/west/summary.json") == {"region": "eu/west"}
        for bad in ("../x", "/etc", "eu/../../x", "eu/./x"):
            with pytest.raises(DatasetError) as info:
                regional(bad)
            assert str(info.value) == (
                "refusing to fill dataset key 'reports/{region!p}/summary.json' in task "
                f"'regional': the value {bad!r} of {{region!p}} is absolute or has a '.' or "
                "'..' segment; a !p value may span folders, but only downwards; nothing was "
                "saved or loaded"
            )


@task
def export(user: str) -> str:
    return save_dataset("exports/{user}.json", [user])


def test_map_items_are_checked_one_by_one(tmp_path):
    with session(dataset_store=str(tmp_path)):
        results = map_tasks(export, ["ann", "../ann", "bo"], return_exceptions=True)
    assert results[0].endswith("exports/ann.json") and results[2].endswith("exports/bo.json")
    assert isinstance(results[1], TaskError)
    assert "the value '../ann' of {user} contains a path separator" in str(results[1])


def test_fill_key_checks_the_formatted_text_not_the_raw_value():
    class Folder:
        def __format__(self, spec):
            return "a/b"

    with pytest.raises(UnsafeValue, match=r"the value 'a/b' of \{x\} contains a path separator"):
        fill_key("k/{x}.txt", {"x": Folder()})
    assert fill_key("k/{x:>3}/{y!p}.txt", {"x": 7, "y": "c/d"}) == "k/  7/c/d.txt"
    assert fill_key("k/{x[0]}.txt", {"x": ["ok"]}) == "k/ok.txt"
    assert fill_key("{{k}}/{n.real}/{z:>{w}}", {"n": 3, "z": 1, "w": 3}) == "{k}/3/  1"
    with pytest.raises(UnsafeValue, match=r"the value \"'/'\" of \{x\}"):
        fill_key("k/{x!r}", {"x": "/"})  # checked after the conversion too
