"""`Backend.check`: a backend can refuse a session when it opens, before any map."""

from __future__ import annotations

import pytest

from daglite import BackendError
from daglite import DagliteSettings
from daglite import registry
from daglite import session
from daglite.backends.base import Backend
from daglite.backends.inline import InlineBackend


class PickyBackend(InlineBackend):
    """Refuses settings without `options["picky"]["ok"]`."""

    checked: list[DagliteSettings] = []

    @classmethod
    def check(cls, settings):
        cls.checked.append(settings)
        if not settings.options.get("picky", {}).get("ok"):
            raise BackendError("picky backend: set options.picky.ok")


def test_a_failing_check_stops_the_session_at_open():
    with (
        registry.override("backend", "picky", PickyBackend),
        pytest.raises(BackendError) as info,
        session(backend="picky"),
    ):
        pytest.fail("the session opened")  # pragma: no cover
    assert str(info.value) == "picky backend: set options.picky.ok"


def test_check_gets_the_session_settings_and_the_backend_stays_lazy():
    settings = DagliteSettings(options={"picky": {"ok": True}})
    PickyBackend.checked.clear()
    with (
        registry.override("backend", "picky", PickyBackend),
        session(backend="picky", settings=settings) as ctx,
    ):
        assert ctx._backends == {}  # checked, not started
    assert PickyBackend.checked == [settings]


def test_the_default_check_accepts_anything():
    assert Backend.check(DagliteSettings()) is None
