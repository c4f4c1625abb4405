"""Bad input fails at the earliest moment (decoration, session open), saying what to do."""

from __future__ import annotations

import asyncio
import os

import pytest

from daglite import BackendError
from daglite import PluginError
from daglite import SettingsError
from daglite import StoreError
from daglite import gather_tasks
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.settings import DagliteSettings
from daglite.testing import EventCapture


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


# -- at session open -------------------------------------------------------------------------

BACKEND_HINT = (
    "backend must be a backend name such as 'inline', 'thread' or 'process' (see: daglite "
    "plugins), or None for the default, not "
)


@pytest.mark.parametrize("backend", ["", "  ", 3])
def test_an_empty_or_non_text_backend_is_an_error_everywhere(backend):
    events = EventCapture()
    with pytest.raises(BackendError) as info, session(backend=backend, plugins=[events]):
        pass
    assert str(info.value) == BACKEND_HINT + repr(backend)
    assert events.kinds() == []  # nothing started
    with pytest.raises(BackendError) as info:
        map_tasks(task(_f), [1], backend=backend)
    assert str(info.value) == BACKEND_HINT + repr(backend)

    async def double(x):
        return 2 * x

    with pytest.raises(BackendError) as info:
        asyncio.run(gather_tasks(task(double), [1], backend=backend))
    assert str(info.value) == BACKEND_HINT + repr(backend)


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


@pytest.mark.parametrize("which", ["cache_store", "dataset_store"])
def test_an_unknown_store_scheme_fails_when_the_session_opens(which, tmp_path):
    ran = []
    events = EventCapture()
    with (
        pytest.raises(StoreError) as info,
        session(plugins=[events], **{which: "gs://bucket/data"}),
    ):
        ran.append(1)
    kind = which.split("_")[0]
    assert str(info.value) == (
        f"cannot use 'gs://bucket/data' as the {kind} store: unknown store 'gs'; installed "
        "stores: file, memory"
    )
    assert ran == [] and events.kinds() == []
    # the same from the settings
    with (
        pytest.raises(StoreError, match=f"cannot use 'gs://b/x' as the {kind} store"),
        session(settings=DagliteSettings(**{which: "gs://b/x"})),
    ):
        ran.append(1)
    assert ran == []


def test_an_unwritable_event_log_fails_when_the_session_opens(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):  # root ignores permissions: use a path below a file
        folder = tmp_path / "a-file"
        folder.write_text("")
    path = folder / "events.jsonl"
    ran = []
    with (
        pytest.raises(PluginError) as info,
        session(settings=DagliteSettings(event_log=str(path))),
    ):
        ran.append(1)
    assert ran == []
    assert str(info.value).startswith(f"cannot write the event log '{path}': ")
    assert str(info.value).endswith(
        "; choose a writable path (daglite run --event-log PATH, DAGLITE_EVENT_LOG or "
        "event_log in [tool.daglite])"
    )
    assert not path.exists()


# -- map arguments ---------------------------------------------------------------------------


@task
def add(x: int, y: int) -> int:
    return x + y


def test_a_non_iterable_map_argument_is_named():
    with pytest.raises(TypeError) as info:
        map_tasks(add, [1, 2], 5)
    assert str(info.value) == (
        "`map_tasks(add, ...)`: argument 2 (for parameter 'y') is int 5, which is not "
        "iterable; pass one iterable of values per parameter, e.g. a list, or [value] * n to "
        "repeat a constant"
    )
    with pytest.raises(TypeError, match=r"argument 1 \(for parameter 'x'\) is NoneType None"):
        map_tasks(add, None, [1])

    @task
    async def aadd(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError) as info:
        asyncio.run(gather_tasks(aadd, 7, [1]))
    assert str(info.value).startswith(
        "`gather_tasks(aadd, ...)`: argument 1 (for parameter 'x') is int 7, which is not iterable"
    )


def test_lazy_iterables_are_not_consumed_by_the_check():
    assert map_tasks(add, iter([1, 2]), (n * 10 for n in range(2))) == [1, 12]
