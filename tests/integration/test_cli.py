"""`daglite run` with a loky backend, otel tracing and an S3 dataset store, all by name.

A real command in a fresh process: the store is moto's S3 server (configured by the
environment variables daglite-s3 documents), the spans go over OTLP/HTTP to a small
receiver on 127.0.0.1, the map items run on loky's worker processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import pytest

pytest.importorskip("daglite_loky")
pytest.importorskip("daglite_otel")
pytest.importorskip("opentelemetry.proto")

FLOW = """
    import os

    from daglite import map_tasks
    from daglite import task
    from daglite import workflow


    @task(dataset="parts/{x}.json")
    def part(x: int) -> dict:
        return {"x": x, "pid": os.getpid()}


    @workflow
    def report(n: int) -> int:
        return sum(item["x"] for item in map_tasks(part, range(n)))
"""


class Receiver:
    """An OTLP/HTTP trace endpoint on 127.0.0.1 that keeps every span it receives."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        self.spans: list = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                received.spans += [
                    span
                    for resource in request.resource_spans
                    for scope in resource.scope_spans
                    for span in scope.spans
                ]
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    found = Receiver()
    yield found
    found.close()


def test_daglite_run_with_loky_otel_and_an_s3_dataset_store(s3, receiver, tmp_path):
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DAGLITE_"))}
    env |= s3.env | {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "DAGLITE_MAX_WORKERS": "2"}
    daglite = shutil.which("daglite", path=os.path.dirname(sys.executable))
    assert daglite is not None, "the daglite command is installed next to python"
    command = [
        daglite,
        "run",
        "flow.py:report",
        "--n",
        "5",
        "--backend",
        "loky",
        "--plugin",
        "otel",
        "--dataset-store",
        f"{s3.prefix}/data",
        "--event-log",
        "events.jsonl",
    ]
    with subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as done:
        out, err = done.communicate(timeout=60)

    assert done.returncode == 0, err
    assert out.strip() == "10"
    assert s3.keys() == [f"data/parts/{x}.json" for x in range(5)]
    parts = [json.loads(s3.read(f"data/parts/{x}.json")) for x in range(5)]
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    (started,) = [e for e in events if e["event"] == "MapStarted"]
    assert started["backend"] == "loky"
    saved = [e for e in events if e["event"] == "DatasetSaved"]
    assert sorted(e["key"] for e in saved) == [f"parts/{x}.json" for x in range(5)]
    assert {e["store"] for e in saved} == {f"{s3.prefix}/data"}
    (ended,) = [e for e in events if e["event"] == "SessionEnded"]
    workers = {part["pid"] for part in parts}
    assert [part["x"] for part in parts] == list(range(5))
    assert done.pid not in workers, "the items ran in loky's workers, not in the command"
    assert ended["session_id"] == started["session_id"]
    # the command has exited: every span reached the receiver
    names = sorted(span.name for span in receiver.spans)
    assert names == sorted(["daglite session", "workflow report"] + ["task part"] * 5), names
    by_id = {span.span_id: span for span in receiver.spans}
    flow = next(span for span in receiver.spans if span.name == "workflow report")
    root = by_id[flow.parent_span_id]
    assert root.name == "daglite session"
    assert {by_id[s.parent_span_id].name for s in receiver.spans if s.name == "task part"} == {
        "workflow report"
    }
