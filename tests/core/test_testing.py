"""`daglite.testing`: the helpers users' tests get (event capture, plugin override)."""

from __future__ import annotations

import doctest
import threading

import pytest

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite import testing
from daglite.errors import PluginError
from daglite.events import TaskStarted
from daglite.events import TaskSucceeded
from daglite.testing import EventCapture
from daglite.testing import capture_events
from daglite.testing import check_plugin
from daglite.testing import override_plugin


@task
def double(x: int) -> int:
    return 2 * x


def test_the_module_doctest_passes():
    result = doctest.testmod(testing, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_capture_events_opens_nothing_and_records_what_sessions_emit():
    with capture_events() as captured:
        assert isinstance(captured, EventCapture)
        assert captured.events == []
        double(1)  # no session: nothing to capture
        assert captured.events == []
        with session(plugins=[captured], backend="thread"):
            map_tasks(double, range(3))
    assert captured.kinds()[0] == "SessionStarted"
    assert captured.kinds()[-1] == "SessionEnded"
    assert sorted(e.map_index for e in captured.of_type(TaskStarted)) == [0, 1, 2]
    assert all(isinstance(e, TaskSucceeded) for e in captured.of_type(TaskSucceeded))
    assert repr(captured) == f"<EventCapture {len(captured.events)} events>"


def test_one_capture_can_serve_several_sessions_and_be_cleared():
    captured = EventCapture()
    for _ in range(2):
        with session(plugins=[captured]):
            double(1)
    assert captured.kinds().count("SessionStarted") == 2
    captured.clear()
    assert captured.events == [] and captured.kinds() == []


def test_capture_is_safe_from_many_threads():
    captured = EventCapture()
    from daglite.events import SessionStarted

    def feed():
        for _ in range(500):
            captured(SessionStarted(session_id="s", backend="b"))

    threads = [threading.Thread(target=feed) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(captured.events) == 2000


def test_override_plugin_provides_a_fake_processor_by_name():
    received = []

    class Fake:
        def __call__(self, event):
            received.append(event.kind)

    with override_plugin("processor", "fake", Fake), session(plugins=["fake"]):
        pass
    assert received == ["SessionStarted", "SessionEnded"]
    from daglite import PluginError

    with (
        pytest.raises(PluginError, match="unknown processor 'fake'"),
        session(plugins=["fake"]),
    ):
        pass


def test_override_plugin_validates_on_entering():
    with (
        pytest.raises(ValueError, match="unknown plugin kind 'thing'"),
        override_plugin("thing", "x", object()),
    ):
        pass


def test_event_capture_pickles_with_its_events():
    import pickle

    captured = EventCapture()
    with session(plugins=[captured]):
        pass
    copy = pickle.loads(pickle.dumps(captured))
    assert copy.events == captured.events
    copy(captured.events[0])
    assert len(copy.events) == 3


def test_check_plugin_loads_an_installed_plugin_and_says_what_is_wrong(installed):
    installed("good", "1.0", {"daglite.processors": {"good": "P"}}, "P = print\n")
    assert check_plugin("processor", "good") is print
    with pytest.raises(PluginError, match=r"^unknown processor 'nope'; installed processors: "):
        check_plugin("processor", "nope")
