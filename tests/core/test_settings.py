"""Settings: defaults, `DAGLITE_*` variables, `[tool.daglite]`, precedence and bad values."""

from __future__ import annotations

import os

import attrs
import pytest

from daglite import SettingsError
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.events import MapStarted
from daglite.pluginoptions import plugin_options
from daglite.settings import DagliteSettings
from daglite.settings import find_pyproject
from daglite.settings import get_global_settings
from daglite.settings import load_settings
from daglite.settings import set_global_settings


def write_pyproject(folder, body: str):
    path = folder / "pyproject.toml"
    path.write_text(body)
    return path


def test_defaults():
    settings = DagliteSettings()
    assert settings.backend == "inline"
    assert settings.max_workers is None
    assert (settings.log_level, settings.log_format, settings.event_log) == ("info", "auto", None)
    assert settings.options == {}


def test_default_stores_live_under_one_dot_daglite_folder():
    settings = DagliteSettings()
    assert settings.cache_store == ".daglite/cache"
    assert settings.dataset_store == ".daglite/datasets"


def test_a_session_and_its_tasks_leave_the_working_directory_untouched(tmp_path):
    @task
    def add(x: int, y: int) -> int:
        return x + y

    with session(backend="thread"):
        map_tasks(add, [1, 2], [3, 4])
    assert add(1, 2) == 3
    assert list(tmp_path.iterdir()) == []


def test_settings_are_frozen():
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        DagliteSettings().backend = "thread"  # type: ignore[misc]


def test_environment_variables():
    settings = load_settings(
        environ={
            "DAGLITE_BACKEND": "thread",
            "DAGLITE_MAX_WORKERS": "3",
            "DAGLITE_PROCESSORS": "logging, jsonl,",
            "DAGLITE_LOG_LEVEL": "DEBUG",
            "DAGLITE_CACHE_STORE": "/tmp/c",
            "DAGLITE_EVENT_LOG": "events.jsonl",
            "UNRELATED": "x",
        }
    )
    assert settings.backend == "thread"
    assert settings.max_workers == 3
    assert settings.processors == ("logging", "jsonl")
    assert settings.log_level == "debug"
    assert settings.cache_store == "/tmp/c"
    assert settings.event_log == "events.jsonl"


def test_global_settings_read_the_process_environment(monkeypatch):
    monkeypatch.setenv("DAGLITE_BACKEND", "thread")
    set_global_settings(None)
    assert get_global_settings().backend == "thread"
    assert get_global_settings() is get_global_settings()  # loaded once


def test_pyproject_table_in_the_nearest_parent(tmp_path, monkeypatch):
    write_pyproject(
        tmp_path,
        '[tool.daglite]\nbackend = "thread"\nmax-workers = 2\nprocessors = ["jsonl"]\n'
        "[tool.daglite.options.otel]\nendpoint = 'http://127.0.0.1:4317'\n",
    )
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert find_pyproject() == tmp_path / "pyproject.toml"
    settings = load_settings(environ={})
    assert (settings.backend, settings.max_workers, settings.processors) == (
        "thread",
        2,
        ("jsonl",),
    )
    assert settings.options == {"otel": {"endpoint": "http://127.0.0.1:4317"}}


def test_nearest_pyproject_wins_even_without_a_daglite_table(tmp_path):
    write_pyproject(tmp_path, '[tool.daglite]\nbackend = "thread"\n')
    inner = tmp_path / "inner"
    inner.mkdir()
    write_pyproject(inner, '[project]\nname = "x"\n')
    assert load_settings(cwd=inner, environ={}).backend == "inline"


def test_precedence_explicit_over_session_over_env_over_pyproject_over_default(
    tmp_path, monkeypatch, events
):
    assert load_settings(environ={}).log_level == "info"  # default
    write_pyproject(tmp_path, '[tool.daglite]\nlog_level = "warning"\nbackend = "thread"\n')
    assert load_settings(environ={}).log_level == "warning"  # pyproject > default
    assert load_settings(environ={"DAGLITE_LOG_LEVEL": "error"}).log_level == "error"  # env

    monkeypatch.setenv("DAGLITE_BACKEND", "inline")
    set_global_settings(None)
    assert get_global_settings().backend == "inline"  # env > pyproject
    with session() as ctx:
        assert ctx.backend == "inline"
    session_settings = DagliteSettings(backend="thread")
    with session(settings=session_settings) as ctx:  # session > env
        assert ctx.backend == "thread"
    with session(settings=session_settings, backend="inline") as ctx:  # explicit > session
        assert ctx.backend == "inline"

    @task
    def ident(x: int) -> int:
        return x

    with session(settings=session_settings, plugins=[events]):
        map_tasks(ident, [1])
        map_tasks(ident, [1], backend="inline")  # explicit argument of the call wins
    assert [e.backend for e in events.of_type(MapStarted)] == ["thread", "inline"]


def test_evolve_makes_a_validated_copy():
    base = DagliteSettings()
    changed = base.evolve(backend="thread", max_workers="4")
    assert (changed.backend, changed.max_workers) == ("thread", 4)
    assert base.backend == "inline"
    with pytest.raises(SettingsError) as info:
        base.evolve(max_workers=0)
    assert str(info.value) == (
        "invalid daglite setting in arguments: max_workers must be a whole number >= 1 "
        "(or empty), not 0"
    )
    with pytest.raises(
        SettingsError, match=r"unknown daglite setting\(s\) \['colour'\] in arguments;"
    ):
        base.evolve(colour="red")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MAX_WORKERS", "zero", "max_workers must be a whole number >= 1 (or empty), not 'zero'"),
        ("MAX_WORKERS", "-2", "max_workers must be a whole number >= 1 (or empty), not '-2'"),
        ("LOG_LEVEL", "loud", "log_level must be one of debug, info, warning, error, not 'loud'"),
        ("LOG_FORMAT", "xml", "log_format must be one of auto, console, json, not 'xml'"),
    ],
)
def test_bad_environment_value_names_the_setting_and_the_variable(name, value, message):
    with pytest.raises(SettingsError) as info:
        load_settings(environ={f"DAGLITE_{name}": value})
    assert str(info.value) == (
        f"invalid value {value!r} for '{name.lower()}' in the environment (DAGLITE_{name}): "
        f"{message}"
    )


def test_bad_environment_value_fails_when_global_settings_load(monkeypatch):
    monkeypatch.setenv("DAGLITE_MAX_WORKERS", "many")
    set_global_settings(None)
    with pytest.raises(SettingsError, match=r"'max_workers' in the environment"):
        get_global_settings()
    with pytest.raises(SettingsError, match=r"DAGLITE_MAX_WORKERS"), session():
        pass


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("max_workers = 0", "invalid value 0 for 'max_workers' in [tool.daglite] of {path}: "),
        ("backend = 3", "invalid value 3 for 'backend' in [tool.daglite] of {path}: "),
        ("plugins = 5", "invalid value 5 for 'plugins' in [tool.daglite] of {path}: "),
        ("processors = 5", "invalid value 5 for 'plugins' in [tool.daglite] of {path}: "),
        (
            'colour = "red"',
            "unknown daglite setting(s) ['colour'] in [tool.daglite] of {path}; known settings: ",
        ),
    ],
)
def test_bad_pyproject_value_names_the_setting_and_the_file(tmp_path, table, message):
    path = write_pyproject(tmp_path, f"[tool.daglite]\n{table}\n")
    with pytest.raises(SettingsError) as info:
        load_settings(environ={})
    assert str(info.value).startswith(message.format(path=path))


def test_unreadable_pyproject_and_non_table_are_reported(tmp_path):
    path = write_pyproject(tmp_path, "[tool.daglite\n")
    with pytest.raises(SettingsError, match=rf"^cannot read daglite settings from {path}: "):
        load_settings(environ={})
    path = write_pyproject(tmp_path, '[tool]\ndaglite = "thread"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(environ={})
    assert str(info.value) == f"[tool.daglite] in {path} must be a table"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("backend", 3, "backend must be a string, not 3"),
        ("event_log", 1, "event_log must be a string, not 1"),
        ("options", [], "options must be a table of plugin tables, not []"),
        (
            "options",
            {"rich": 3},
            "options of plugin 'rich' must be a table ([tool.daglite.options.rich]), not 3",
        ),
        ("plugins", 5, "plugins must be a list of names, not 5"),
        ("processors", 5, "plugins must be a list of names, not 5"),
        ("max_workers", 1.5, "max_workers must be a whole number >= 1 (or empty), not 1.5"),
    ],
)
def test_constructor_rejects_bad_values_naming_the_setting(field, value, message):
    with pytest.raises((TypeError, ValueError)) as info:
        DagliteSettings(**{field: value})
    assert str(info.value) == message


def test_set_global_settings_rejects_other_types():
    with pytest.raises(TypeError) as info:
        set_global_settings({"backend": "thread"})  # type: ignore[arg-type]
    assert str(info.value) == "set_global_settings() takes a DagliteSettings or None, not dict"


def test_set_global_settings_is_used_by_sessions_and_none_reloads(monkeypatch):
    set_global_settings(DagliteSettings(backend="thread"))
    with session() as ctx:
        assert ctx.backend == "thread"
    monkeypatch.setitem(os.environ, "DAGLITE_BACKEND", "inline")
    set_global_settings(None)
    with session() as ctx:
        assert ctx.backend == "inline"


def test_an_empty_processor_list_turns_them_all_off():
    assert load_settings(environ={"DAGLITE_PROCESSORS": ""}).processors == ()
    assert DagliteSettings(processors=[]).processors == ()


# -- plugins, options, providers -------------------------------------------------------------


def test_plugins_is_the_one_name_and_processors_an_alias():
    assert DagliteSettings(processors=("a",)).plugins == ("a",)
    assert DagliteSettings(plugins=("a",)).processors == ("a",)
    assert DagliteSettings().evolve(processors=("b",)).plugins == ("b",)
    with pytest.raises(SettingsError) as info:
        DagliteSettings(plugins=("a",), processors=("b",))
    assert str(info.value) == (
        "both 'plugins' and its deprecated alias 'processors' are set in arguments; keep 'plugins'"
    )
    both = load_settings(environ={"DAGLITE_PLUGINS": "a", "DAGLITE_PROCESSORS": "b"})
    assert both.plugins == ("a",)  # the one name wins
    assert load_settings(environ={"DAGLITE_PROCESSORS": "b"}).plugins == ("b",)


def test_pyproject_takes_plugins_and_the_alias_but_not_both(tmp_path):
    write_pyproject(tmp_path, '[tool.daglite]\nprocessors = ["x"]\n')
    assert load_settings(environ={}).plugins == ("x",)
    path = write_pyproject(tmp_path, '[tool.daglite]\nprocessors = ["x"]\nplugins = ["y"]\n')
    with pytest.raises(SettingsError) as info:
        load_settings(environ={})
    assert str(info.value) == (
        f"both 'plugins' and its deprecated alias 'processors' are set in [tool.daglite] of "
        f"{path}; keep 'plugins'"
    )


def test_plugin_options_from_file_and_variables_with_dashes(tmp_path):
    write_pyproject(
        tmp_path,
        "[tool.daglite.options.rich]\nplain-interval = 30\nstream = 'stdout'\n"
        "[tool.daglite.options.my-plugin]\nlevel = 1\n",
    )
    settings = load_settings(
        environ={"DAGLITE_RICH_PLAIN_INTERVAL": "5", "DAGLITE_MY_PLUGIN_DEPTH": "2"}
    )
    assert settings.options["rich"] == {"plain_interval": "5", "stream": "stdout"}
    # a name with a dash: its variables still reach it
    assert plugin_options(settings, "my-plugin", {"level": int, "depth": int}) == {
        "level": 1,
        "depth": 2,
    }


def test_providers_from_a_table_a_quoted_key_and_a_variable(tmp_path):
    write_pyproject(tmp_path, '[tool.daglite.providers]\nformat.csv = "daglite-arrow"\n')
    assert load_settings(environ={}).providers == {"format": {"csv": "daglite-arrow"}}
    assert DagliteSettings(providers={"backend.x": "d"}).providers == {"backend": {"x": "d"}}
    settings = load_settings(environ={"DAGLITE_PROVIDERS": "format.csv=a, store.s3=b"})
    assert settings.providers == {"format": {"csv": "a"}, "store": {"s3": "b"}}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("format.csv", "providers must look like kind.name=distribution[,...], not 'format.csv'"),
        (
            {"gadget": {"x": "d"}},
            "providers: unknown plugin kind 'gadget'; expected one of ('backend', 'store', "
            "'format', 'processor')",
        ),
        ({"format": {"csv": 3}}, "providers: format.csv must name a distribution, not 3"),
        (5, "providers must be a table, not 5"),
    ],
)
def test_bad_providers_are_named(value, message):
    with pytest.raises(ValueError) as info:
        DagliteSettings(providers=value)
    assert str(info.value) == message


SETTING = "backend must name a backend (e.g. 'inline', 'thread', 'process'), not "


def test_an_empty_backend_setting_is_refused_where_it_is_read(monkeypatch):
    with pytest.raises(ValueError) as info:
        DagliteSettings(backend="")
    assert str(info.value) == SETTING + "''"
    monkeypatch.setenv("DAGLITE_BACKEND", "")
    from daglite.settings import load_settings

    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("invalid value '' for 'backend' in the environment (DAGLITE_BACKEND")
    assert message.endswith("): " + SETTING + "''")
