"""Spans exported over OTLP/HTTP, configured by OTEL_* variables alone, to a local receiver."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

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


SCRIPT = textwrap.dedent(
    """
    from daglite import map_tasks, task, workflow

    @task
    def fetch(x: int) -> int:
        return x + 1

    @workflow
    def collect(n: int) -> int:
        return sum(map_tasks(fetch, range(n)))

    print(collect(3))
    """
)


def run_script(tmp_path, **environ: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DAGLITE_"))}
    env |= {"DAGLITE_PROCESSORS": "otel", **environ}
    return subprocess.run(
        [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True
    )


def free_port() -> int:
    import socket

    with socket.socket() as probe:  # a port nobody listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.timeout(25)
def test_an_unreachable_collector_is_named_once_and_holds_nothing_up(tmp_path):
    # With a 60 s export timeout, any export attempt would keep the script past the bound.
    port = free_port()
    done = run_script(
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_EXPORTER_OTLP_TIMEOUT="60",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "6\n"
    warnings = [line for line in done.stderr.splitlines() if "no OTLP collector" in line]
    assert warnings == [
        f"daglite-otel: no OTLP collector answers at http://127.0.0.1:{port}/v1/traces "
        "(Connection refused); spans are not exported. Set OTEL_EXPORTER_OTLP_ENDPOINT to "
        "your collector's address, or OTEL_TRACES_EXPORTER=console (or none)"
    ]


def test_the_traces_endpoint_variable_is_the_one_named(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/custom/traces"
    done = run_script(tmp_path, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=url)
    assert done.returncode == 0, done.stderr
    assert f"no OTLP collector answers at {url} " in done.stderr
    assert "Set OTEL_EXPORTER_OTLP_TRACES_ENDPOINT to" in done.stderr


def test_the_console_exporter_leaves_stdout_to_the_result(tmp_path):
    done = run_script(tmp_path, OTEL_TRACES_EXPORTER="console")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "6\n"
    assert '"name": "task fetch"' in done.stderr
    assert '"name": "workflow collect"' in done.stderr
