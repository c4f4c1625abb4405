"""The processors that ship with the core: made by name from the settings, exported lazily."""

from __future__ import annotations

import pickle

import pytest

from daglite import events as ev
from daglite.processors.eventlog import JsonlProcessor
from daglite.processors.logs import LoggingProcessor
from daglite.sessionplugins import make_processor
from daglite.settings import DagliteSettings
from daglite.settings import load_settings


def test_processors_pickle():
    out = LoggingProcessor(level="debug", format="console")
    out(_succeeded())  # builds (unpicklable) renderer state
    copy = pickle.loads(pickle.dumps(out))
    assert (copy.level, copy.format) == ("debug", "console")
    jsonl = pickle.loads(pickle.dumps(JsonlProcessor("x/events.jsonl")))
    assert str(jsonl.path) == "x/events.jsonl"


def test_logging_is_the_default_processor(monkeypatch):
    assert DagliteSettings().processors == ("logging",)
    monkeypatch.setenv("DAGLITE_PROCESSORS", "")
    assert load_settings().processors == ()


def test_processors_come_from_entry_points_with_their_settings(tmp_path):
    log = str(tmp_path / "ev.jsonl")
    settings = DagliteSettings(log_level="error", log_format="json", event_log=log)
    logging = make_processor("logging", settings)
    assert isinstance(logging, LoggingProcessor)
    assert (logging.level, logging.format) == ("error", "json")
    jsonl = make_processor("jsonl", settings)
    assert isinstance(jsonl, JsonlProcessor)
    assert jsonl.path.name == "ev.jsonl"
    jsonl.close()


def test_processors_package_exports_both_lazily():
    import daglite.processors as package

    assert package.JsonlProcessor is JsonlProcessor
    assert package.LoggingProcessor is LoggingProcessor
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        package.Nope  # noqa: B018


def _succeeded(**extra):
    fields = {
        "session_id": "s-1",
        "task_id": "t-1",
        "name": "square",
        "map_index": 3,
        "duration": 0.25,
    }
    return ev.TaskSucceeded(**{**fields, **extra})
