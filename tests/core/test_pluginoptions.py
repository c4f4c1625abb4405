"""`daglite.pluginoptions`: a plugin's options, converted to the types it declares."""

from __future__ import annotations

import pytest

from daglite.errors import SettingsError
from daglite.pluginoptions import plugin_options
from daglite.settings import DagliteSettings


@pytest.mark.parametrize(
    ("known", "value", "converted"),
    [
        (bool, "yes", True),
        (bool, "OFF", False),
        (int, "7", 7),
        (float, "0.5", 0.5),
        (str, "7", "7"),
        (int, 7, 7),
    ],
)
def test_option_text_becomes_the_declared_type(known, value, converted):
    settings = DagliteSettings(options={"p": {"k": value}})
    assert plugin_options(settings, "p", {"k": known}) == {"k": converted}


@pytest.mark.parametrize(
    ("known", "message"),
    [
        (bool, "invalid value 'maybe' for option 'k' of plugin 'p': expected true or false"),
        (int, "invalid value 'maybe' for option 'k' of plugin 'p': expected an integer"),
    ],
)
def test_option_text_that_does_not_convert_is_named(known, message):
    settings = DagliteSettings(options={"p": {"k": "maybe"}})
    with pytest.raises(SettingsError) as info:
        plugin_options(settings, "p", {"k": known})
    assert str(info.value) == message
