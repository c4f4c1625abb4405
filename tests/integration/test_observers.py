"""daglite-otel, daglite-rich and the core's jsonl log watching one run on worker processes.

Every observer is fed by the same relayed event stream, so each must see the whole run:
the same task calls, the worker's retry and log record, the spans user code opened there.
"""

from __future__ import annotations

import io
import json
import os
import re

import pytest

pytest.importorskip("daglite_otel")
pytest.importorskip("daglite_rich")
pytest.importorskip("daglite_loky")

from integration_tasks import CallLog  # noqa: E402
from integration_tasks import pipeline  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.util._once import Once  # noqa: E402
from rich.console import Console  # noqa: E402

from daglite import session  # noqa: E402
from daglite.processors.eventlog import JsonlProcessor  # noqa: E402
from daglite.settings import DagliteSettings  # noqa: E402
from daglite_otel import OtelProcessor  # noqa: E402
from daglite_otel import relay  # noqa: E402
from daglite_rich import RichProcessor  # noqa: E402

N = 4
#: the workflow's tasks: N map items and `total`
TASKS = N + 1
SUMMARY = (
    rf"✔ daglite session finished in .+: {TASKS} tasks run, 0 cache hits, 0 failures, "
    r"1 retry, 1 map"
)


def _reset_otel() -> None:
    # OpenTelemetry sets a process's global provider once; each test needs it unset again.
    installed = trace._TRACER_PROVIDER
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    relay._installed = False
    shutdown = getattr(installed, "shutdown", None)
    if shutdown is not None:
        shutdown()


@pytest.fixture
def exporter(monkeypatch):
    """An in-memory span exporter behind the global (and a fresh) SDK provider."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    _reset_otel()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exporter.provider = provider
    yield exporter
    _reset_otel()
    provider.shutdown()


def _check_spans(spans, session_id: str, backend: str) -> None:
    by_id = {span.context.span_id: span for span in spans}

    def parent(span):
        assert span.parent is not None, f"{span.name} has no parent"
        assert span.parent.span_id in by_id, f"{span.name}'s parent was not exported"
        return by_id[span.parent.span_id]

    (root,) = [s for s in spans if s.name == "daglite session"]
    (flow,) = [s for s in spans if s.name == "workflow pipeline"]
    (summed,) = [s for s in spans if s.name == "task total"]
    items = [s for s in spans if s.name == "task double"]
    users = [s for s in spans if s.name.startswith("user ")]
    assert root.parent is None
    assert root.attributes["daglite.session.id"] == session_id
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert parent(flow) is root and parent(summed) is flow
    assert sorted(s.attributes["daglite.map.index"] for s in items) == list(range(N))
    assert {parent(s).name for s in items} == {"workflow pipeline"}
    assert {s.attributes["daglite.backend"] for s in items} == {backend}
    # spans opened by user code in the worker processes hang under their task's span
    assert sorted(s.name for s in users) == [f"user {x}" for x in range(N)]
    for span in users:
        owner = parent(span)
        assert owner.name == "task double"
        assert owner.attributes["daglite.map.index"] == int(span.name.split()[1])
    for span in spans:
        if span.parent is not None:
            outer = parent(span)
            assert outer.start_time <= span.start_time <= span.end_time <= outer.end_time


def _check_jsonl(path, session_id: str) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    kinds = [line["event"] for line in lines]
    assert kinds[0] == "SessionStarted" and kinds[-1] == "SessionEnded"
    assert {line["session_id"] for line in lines} == {session_id}
    done = sorted(
        (line["name"], line["map_index"]) for line in lines if line["event"] == "TaskSucceeded"
    )
    assert done == [("double", x) for x in range(N)] + [("total", None)]
    assert kinds.count("TaskRetried") == 1
    logged = [line for line in lines if line["event"] == "LogRecorded"]
    assert sorted(line["fields"]["x"] for line in logged) == [0, 1, 1, 2, 3]
    return lines


@pytest.mark.parametrize("backend", ["process", "loky"])
def test_otel_rich_and_jsonl_each_see_the_whole_run(exporter, tmp_path, backend):
    console = Console(file=io.StringIO(), force_terminal=False, width=200)
    log = tmp_path / "events.jsonl"
    observers = [
        OtelProcessor(exporter.provider),
        RichProcessor(console=console, plain_interval=0),
        JsonlProcessor(log),
    ]
    settings = DagliteSettings(max_workers=2, processors=())
    with session(backend=backend, settings=settings, plugins=observers) as ctx:
        assert pipeline(N) == sum(2 * x for x in range(N))

    _check_spans(list(exporter.get_finished_spans()), ctx.session_id, backend)
    lines = _check_jsonl(log, ctx.session_id)
    assert sum(line["event"] == "TaskSucceeded" for line in lines) == TASKS
    shown = console.file.getvalue().splitlines()
    assert re.fullmatch(SUMMARY, shown[-1]), shown[-1]
    assert any(re.search(r"↻ double\[1\] attempt 1 failed \(ConnectionError", s) for s in shown)
    assert any(re.search(r"✔ workflow pipeline finished in", s) for s in shown)


def test_plugins_mix_names_processor_objects_and_hook_plugins(exporter, tmp_path, capsys):
    """Names from two plugins and the core, a processor object and a hook plugin, together.

    The settings keep the default `logging` processor: `rich` replaces it, so the run is
    not logged twice. `jsonl` comes from the event_log setting.
    """
    trace.set_tracer_provider(exporter.provider)  # "otel" by name uses the global provider
    calls = tmp_path / "calls.txt"
    log = tmp_path / "events.jsonl"
    events: list = []
    settings = DagliteSettings(
        max_workers=2,
        processors=("logging",),
        event_log=str(log),
        options={"rich": {"plain_interval": 0}},
    )
    plugins = ["otel", "rich", events.append, CallLog(str(calls))]
    with session(backend="process", settings=settings, plugins=plugins) as ctx:
        assert pipeline(N) == sum(2 * x for x in range(N))

    _check_spans(list(exporter.get_finished_spans()), ctx.session_id, "process")
    _check_jsonl(log, ctx.session_id)
    assert [e.kind for e in events] == [
        json.loads(line)["event"] for line in log.read_text().splitlines()
    ]
    err = capsys.readouterr().err.splitlines()
    assert re.fullmatch(SUMMARY, err[-1]), err
    assert not [line for line in err if line.startswith("{")], "no JSON logging lines"
    ran = [line.split() for line in calls.read_text().splitlines()]
    assert sorted(name for _, name in ran) == [f"double[{x}]" for x in range(N)] + ["total"]
    pids = {name: int(pid) for pid, name in ran}
    assert pids["total"] == os.getpid()
    assert os.getpid() not in {pids[f"double[{x}]"] for x in range(N)}, "hooks ran in workers"


def test_a_mistyped_name_lists_what_every_installed_plugin_provides():
    from daglite import BackendError
    from daglite import PluginError

    with pytest.raises(PluginError) as caught, session(plugins=["rich", "otell"]):
        pass
    assert str(caught.value) == (
        "unknown processor 'otell'; installed processors: jsonl, logging, otel, rich"
    )
    with pytest.raises(BackendError) as caught, session(backend="lokyy"):
        pass
    assert str(caught.value).startswith(
        "unknown backend 'lokyy'; installed backends: inline, loky, process, thread"
    )
