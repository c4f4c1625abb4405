"""Spans exported over OTLP/HTTP, configured by OTEL_* variables alone, to a local receiver."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from opentelemetry import trace

from daglite import map_tasks
from daglite import registry
from daglite import session
from daglite import task
from daglite import workflow

BACKENDS = [
    "inline",
    "thread",
    pytest.param(
        "process",
        marks=pytest.mark.skipif(
            "process" not in registry.names("backend"),
            reason="the process backend is not installed (built by its own issue)",
        ),
    ),
]


@task
def fetch(x: int) -> int:
    # what an instrumented HTTP client would do inside the task
    with trace.get_tracer("tests.http").start_as_current_span(f"GET /item/{x}"):
        return x + 1


@workflow
def collect(n: int) -> int:
    return sum(map_tasks(fetch, range(n)))


def check_tree(spans, n: int, backend: str) -> None:
    by_id = {span.span_id: span for span in spans}
    names = sorted(span.name for span in spans)
    assert names == sorted(
        ["daglite session", "workflow collect"]
        + ["task fetch"] * n
        + [f"GET /item/{x}" for x in range(n)]
    )
    assert len({span.trace_id for span in spans}) == 1

    def parent(span):
        assert span.parent_span_id in by_id, f"{span.name}: parent missing"
        return by_id[span.parent_span_id]

    (root,) = [s for s in spans if s.name == "daglite session"]
    assert root.parent_span_id == b""
    (wf,) = [s for s in spans if s.name == "workflow collect"]
    assert parent(wf) is root
    items = {}
    for span in spans:
        if span.name == "task fetch":
            assert parent(span) is wf
            attributes = {a.key: a.value for a in span.attributes}
            assert attributes["daglite.backend"].string_value == backend
            items[attributes["daglite.map.index"].int_value] = span
    assert sorted(items) == list(range(n))
    for x in range(n):
        (user,) = [s for s in spans if s.name == f"GET /item/{x}"]
        assert parent(user) is items[x]
        assert items[x].start_time_unix_nano <= user.start_time_unix_nano
        assert user.end_time_unix_nano <= items[x].end_time_unix_nano


@pytest.mark.parametrize("backend", BACKENDS)
def test_spans_reach_an_otlp_receiver(receiver, monkeypatch, backend):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otlp-test")
    with session(backend=backend, plugins=["otel"]):
        assert collect(4) == 10
    check_tree(receiver.wait_for(2 + 2 * 4), 4, backend)
    assert set(receiver.paths) == {"/v1/traces"}
    assert {r["service.name"] for r in receiver.resources()} == {"otlp-test"}


def test_a_script_traced_by_environment_variables_alone(receiver, tmp_path):
    script = tmp_path / "pipeline.py"
    script.write_text(
        textwrap.dedent(
            """
            from opentelemetry import trace
            from daglite import map_tasks, task, workflow

            @task
            def fetch(x: int) -> int:
                with trace.get_tracer("script").start_as_current_span(f"GET /item/{x}"):
                    return x + 1

            @workflow
            def collect(n: int) -> int:
                return sum(map_tasks(fetch, range(n)))

            print(collect(3))
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DAGLITE_"))}
    env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "DAGLITE_PROCESSORS": "otel"}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "6"
    check_tree(receiver.spans(), 3, "inline")  # the script has exited: everything was sent
    assert {r["service.name"] for r in receiver.resources()} == {"daglite"}


def test_an_unreachable_collector_does_not_hold_up_the_session(monkeypatch):
    import socket

    from daglite_otel import processor

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3")
    monkeypatch.setattr(processor, "FLUSH_WAIT", 0.2)
    start = time.monotonic()
    with session(plugins=["otel"]):
        assert fetch(1) == 2
    assert time.monotonic() - start < 2.0
