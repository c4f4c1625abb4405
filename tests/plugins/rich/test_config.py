"""Enabling the rich processor by name, its options, their errors, and pickling."""

from __future__ import annotations

import pickle
import re

import pytest
from rich.console import Console

from daglite import registry
from daglite import session
from daglite import task
from daglite.errors import SettingsError
from daglite.settings import DagliteSettings
from daglite_rich import RichProcessor

from .conftest import screen


def test_the_entry_point_names_it_rich():
    assert "rich" in registry.names("processor")
    assert registry.load("processor", "rich") is RichProcessor
    info = next(e for e in registry.entries("processor") if e.name == "rich")
    assert info.distribution == "daglite-rich"


def test_session_plugins_by_name_prints_to_stderr(capsys):
    @task
    def one() -> int:
        return 1

    with session(plugins=["rich"]) as ctx:
        one()
        (processor,) = ctx.processors
        assert isinstance(processor, RichProcessor)

    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.search(r"^\d\d:\d\d:\d\d ✔ one ", captured.err, re.M)
    assert re.search(r"^✔ daglite session finished in .+: 1 task run,", captured.err, re.M)


def test_settings_enable_and_configure_it(capsys, monkeypatch):
    monkeypatch.setenv("DAGLITE_PROCESSORS", "rich")
    from daglite import settings as settings_module

    settings_module.set_global_settings(None)
    options = {"rich": {"stream": "stdout", "show_tasks": False, "plain_interval": 0}}
    settings = settings_module.get_global_settings().evolve(options=options)

    @task
    def one() -> int:
        return 1

    with session(settings=settings) as ctx:
        one()
        (processor,) = ctx.processors

    assert (processor.stream, processor.show_tasks, processor.plain_interval) == (
        "stdout",
        False,
        0,
    )
    out = capsys.readouterr().out
    assert "✔ one" not in out
    assert "daglite session finished" in out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"colour": "red", "stream": "stdout"},
            "unknown option(s) ['colour'] for plugin 'rich'; known options of 'rich': "
            "['plain_interval', 'redirect', 'refresh_per_second', 'show_tasks', 'stream'] (set "
            "in [tool.daglite.options.rich], DAGLITE_RICH_<OPTION> or --option "
            "rich.<key>=<value>)",
        ),
        (
            {"plain_interval": "often"},
            "invalid value 'often' for option 'plain_interval' of plugin 'rich': expected a number",
        ),
        (
            {"stream": "printer"},
            "invalid value in the 'rich' options ([tool.daglite.options.rich]): "
            "stream must be 'stderr' or 'stdout', not 'printer'",
        ),
    ],
)
def test_bad_options_are_reported_when_the_session_opens(options, message):
    settings = DagliteSettings(plugins=("rich",), options={"rich": options})
    with pytest.raises(SettingsError) as info, session(settings=settings):
        pass
    assert str(info.value) == message


def test_options_that_are_not_a_table_are_refused_by_the_settings():
    with pytest.raises(ValueError) as info:
        DagliteSettings(options={"rich": [1, 2]})
    assert str(info.value) == (
        "options of plugin 'rich' must be a table ([tool.daglite.options.rich]), not [1, 2]"
    )


def test_options_from_variables_are_converted_to_their_declared_types():
    from daglite.settings import load_settings

    environ = {
        "DAGLITE_PLUGINS": "rich",
        "DAGLITE_RICH_PLAIN_INTERVAL": "2.5",
        "DAGLITE_RICH_SHOW_TASKS": "false",
    }
    with session(settings=load_settings(environ=environ)) as ctx:
        (processor,) = [p for p in ctx.processors if type(p).__name__ == "RichProcessor"]
    assert (processor.plain_interval, processor.show_tasks) == (2.5, False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"console": "stdout"}, "console must be a rich.console.Console, not 'stdout'"),
        ({"stream": 2}, "stream must be 'stderr' or 'stdout', not 2"),
        ({"show_tasks": "yes"}, "show_tasks must be true or false, not 'yes'"),
        ({"refresh_per_second": 0}, "refresh_per_second must be a number above 0, not 0"),
        ({"refresh_per_second": True}, "refresh_per_second must be a number above 0, not True"),
        ({"plain_interval": -1}, "plain_interval must be a number >= 0, not -1"),
        ({"plain_interval": "5"}, "plain_interval must be a number >= 0, not '5'"),
        ({"redirect": "auto"}, "redirect must be true, false or None, not 'auto'"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError) as info:
        RichProcessor(**kwargs)
    assert str(info.value) == message


def test_it_pickles_with_its_configuration_before_and_after_a_session(console):
    processor = RichProcessor(console=console, stream="stdout", plain_interval=1.5, redirect=False)
    copy = pickle.loads(pickle.dumps(processor))
    assert (copy.stream, copy.plain_interval, copy.redirect) == ("stdout", 1.5, False)

    @task
    def one() -> int:
        return 1

    with session(plugins=[processor]):
        one()
        mid = pickle.loads(pickle.dumps(processor))  # while live: only configuration travels
    assert not mid.live
    assert isinstance(mid.console, Console)
    assert mid.console is not console, "a given console does not travel"
    assert "daglite session finished" in screen(console)[-1]
    assert repr(mid) == "<RichProcessor stream='stdout'>"


def test_close_without_session_end_still_clears_and_summarizes(console):
    from daglite import events

    processor = RichProcessor(console=console)
    processor(events.SessionStarted(session_id="s1", backend="thread"))
    processor(
        events.MapStarted(session_id="s1", map_id="m1", name="work", backend="thread", total=3)
    )
    assert processor.live
    processor.close()
    assert not processor.live
    lines = screen(console)
    assert len(lines) == 1
    assert re.match(
        r"✔ daglite session finished in .+: 0 tasks run, 0 cache hits, 0 failures, 1 map$", lines[0]
    )
    processor.close()  # a second close is a no-op
    assert len(screen(console)) == 1


def test_naming_it_in_settings_and_in_plugins_makes_one_processor(capsys):
    settings = DagliteSettings(processors=("rich",))
    with session(plugins=["rich", "rich"], settings=settings) as ctx:
        assert len(ctx.processors) == 1
    assert capsys.readouterr().err.count("daglite session finished") == 1


def test_the_docs_page_examples_run(capsys):
    from pathlib import Path

    page = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "rich.md"
    blocks = re.findall(r"^```python\n(.*?)^```$", page.read_text(encoding="utf-8"), re.M | re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(page), "exec"), {"__name__": "__main__"})
    assert "✔ daglite session finished in" in capsys.readouterr().err
