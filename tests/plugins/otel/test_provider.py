"""Which TracerProvider the `otel` processor uses: the application's, or one built from OTEL_*."""

from __future__ import annotations

import json

import pytest
from opentelemetry import trace

from daglite import PluginError
from daglite import map_tasks
from daglite import session
from daglite import task
from daglite_otel import OtelProcessor
from daglite_otel import provider


@task
def square(x: int) -> int:
    with trace.get_tracer("tests.user").start_as_current_span(f"user {x}"):
        return x * x


def parent_name(spans, span) -> str:
    by_id = {s.context.span_id: s for s in spans}
    return by_id[span.parent.span_id].name


def test_by_name_it_uses_the_applications_provider_and_nests_user_spans(memory):
    trace.set_tracer_provider(memory.provider)
    with session(backend="thread", plugins=["otel"]) as ctx:
        assert map_tasks(square, [1, 2]) == [1, 4]
    (processor,) = [p for p in ctx.processors if isinstance(p, OtelProcessor)]
    assert processor in ctx.hook_plugins  # a named processor that is a hook plugin is one too
    spans = memory.spans()
    assert parent_name(spans, memory.one("user 2")) == "task square"
    assert parent_name(spans, memory.named("task square")[0]) == "daglite session"
    assert provider.global_provider() is memory.provider


def test_enabled_through_the_processors_setting(memory, monkeypatch):
    monkeypatch.setenv("DAGLITE_PROCESSORS", "otel")
    trace.set_tracer_provider(memory.provider)
    with session():
        square(3)
    spans = memory.spans()
    assert parent_name(spans, memory.one("user 3")) == "task square"
    assert parent_name(spans, memory.one("task square")) == "daglite session"


def test_an_explicit_provider_leaves_the_global_one_alone(memory):
    with session(plugins=[OtelProcessor(tracer_provider=memory.provider)]):
        square(1)
    assert memory.one("task square")
    assert not provider.is_configured()


def test_unknown_exporter_fails_the_session(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,zipkin")
    with pytest.raises(PluginError) as info, session(plugins=["otel"]):
        pass
    assert str(info.value) == (
        "daglite-otel cannot build the trace exporter(s) ['zipkin'] named by "
        "OTEL_TRACES_EXPORTER='otlp,zipkin'; use otlp, console, none, or configure a "
        "TracerProvider yourself (opentelemetry.trace.set_tracer_provider) before the session"
    )
    assert not provider.is_configured()


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
)
def test_otlp_over_grpc_is_refused_with_a_hint(monkeypatch, variable):
    monkeypatch.setenv(variable, "grpc")
    with pytest.raises(PluginError) as info:
        OtelProcessor()
    assert str(info.value) == (
        "daglite-otel exports OTLP over http/protobuf only, not 'grpc' "
        "(OTEL_EXPORTER_OTLP_PROTOCOL); unset it, or configure a TracerProvider with the "
        "exporter you need (e.g. opentelemetry-exporter-otlp-proto-grpc) yourself"
    )


def test_exporter_settings_are_not_checked_when_the_application_configured_tracing(
    memory, monkeypatch
):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    trace.set_tracer_provider(memory.provider)
    with session(plugins=["otel"]):
        square(2)
    assert memory.one("task square")


def test_console_exporter_from_the_environment(monkeypatch, capfd):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "console-test")
    with session(plugins=["otel"]):
        square(4)
    captured = capfd.readouterr()
    assert captured.out == ""  # standard output is left to the program's results
    printed = captured.err
    spans = json.loads("[" + printed.replace("}\n{", "},\n{") + "]")
    names = sorted(span["name"] for span in spans)
    assert names == ["daglite session", "task square", "user 4"]
    assert {span["resource"]["attributes"]["service.name"] for span in spans} == {"console-test"}
    assert provider.global_provider().resource.attributes["service.name"] == "console-test"


def test_none_exporter_and_default_service_name(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    built = provider.build_from_environ()
    assert built.resource.attributes["service.name"] == "daglite"
    assert built._active_span_processor._span_processors == ()


def test_disabled_sdk_records_nothing_and_tasks_still_run(monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with session(backend="thread", plugins=["otel"]) as ctx:
        assert map_tasks(square, [1, 2, 3]) == [1, 4, 9]
        (processor,) = [p for p in ctx.processors if isinstance(p, OtelProcessor)]
        assert processor._traces == {}
    assert not trace.get_current_span().get_span_context().is_valid
