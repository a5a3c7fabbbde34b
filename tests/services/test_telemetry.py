"""One OpenTelemetry trace across processes, with the GenAI attributes; and a broker password that is never shown.

The orchestrator and two services run in this process, their spans caught by the SDK's
in-memory exporter; the worker runs in a process of its own and exports over OTLP/HTTP to a
small collector here. The worker's spans must land in the orchestrator's trace: the W3C
context crossed the process boundary in the NATS headers.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import multi_agent_system as mas
from machinery import telemetry
from machinery.bus import Bus
from machinery.services import RUNS, AgentService
from services.helpers import NatsServer, quiet_console, spawn_service, summary_of
from stages.variants import message_passing as mp

pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed (requirements-nats.txt)")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

SECRET = "s3cret-pw-4711"
TASK = "Explain what a budget gate is"
EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The in-memory exporter, on the one tracer provider a process may set."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
    telemetry.enable("tests")
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


class Collector:
    """An OTLP/HTTP endpoint on loopback that keeps every span it is sent, as (trace id, name, attributes)."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.spans: list[tuple[str, str, dict[str, Any]]] = []
        self.raw: list[bytes] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.raw.append(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            values = {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}
                            collector.spans.append((span.trace_id.hex(), span.name, values))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_spans_from_two_processes_join_one_trace_and_no_credential_leaks(
    start_nats: Any, spans: InMemorySpanExporter, processes: list[subprocess.Popen[str]], caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    server: NatsServer = start_nats("--user", "alice", "--pass", SECRET)
    url = server.url.replace("nats://", f"nats://alice:{SECRET}@")
    collector = Collector()
    buses = [Bus.connect(url) for _ in range(2)]
    services = [
        b.serve(r, AgentService(r, mas.Settings(demo=True)).handle)
        for b, r in zip(buses, ("planner", "critic"), strict=True)
    ]
    otlp = ("env:OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.url, "env:OTEL_BSP_SCHEDULE_DELAY=50")
    worker = spawn_service("worker", url, *otlp)
    processes.append(worker)
    try:
        console = quiet_console()
        assert mp.main([TASK, "--json", "--demo-scenario", "revise", "--broker", url], console=console) == 0
        summary = summary_of(console)
        worker.send_signal(signal.SIGTERM)  # it sends what it still holds, then exits
        assert worker.wait(15) == 0
        saved = buses[0].kv_get(RUNS, summary["run_id"]) or b""
    finally:
        for service in services:
            service.stop(2)
        for bus in buses:
            bus.close()
        collector.close()
    ours = spans.get_finished_spans()
    (root,) = [s for s in ours if s.name == "invoke_agent orchestrator"]
    trace_id = root.context.trace_id
    steps = [s for s in ours if s.name.startswith("invoke_agent ") and s is not root]
    assert [s.attributes["gen_ai.agent.name"] for s in steps] == ["planner", "worker", "critic", "worker", "critic"]
    for step in steps:
        attributes = step.attributes or {}
        assert attributes["gen_ai.operation.name"] == "invoke_agent" and step.context.trace_id == trace_id
        assert attributes["gen_ai.request.model"] == mas.DEMO_MODEL and attributes["gen_ai.usage.input_tokens"] > 0
        assert attributes["gen_ai.usage.output_tokens"] > 0
    chats = [s for s in ours if s.name.startswith("chat ")]  # the planner's and the critic's calls, made here
    assert len(chats) == 3 and all(s.context.trace_id == trace_id for s in chats)
    sends = {s.context.span_id for s in ours if s.name.startswith("send ")}
    processed = [s for s in ours if s.name.startswith("process ")]
    assert processed and all(s.parent is not None and s.parent.span_id in sends for s in processed)
    theirs = [s for s in collector.spans if s[1].startswith("chat ")]  # the worker's, from the other process
    assert len(theirs) == 2, collector.spans
    for their_trace, _, attributes in theirs:
        assert their_trace == f"{trace_id:032x}"
        assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.agent.name"] == "worker"
        assert attributes["gen_ai.usage.input_tokens"] > 0 and attributes["gen_ai.request.model"] == mas.DEMO_MODEL
    out, err = worker.communicate(timeout=5)
    shown = [
        console.file.getvalue(),  # type: ignore[attr-defined]
        caplog.text,
        Path(summary["trace"]).read_text(),
        saved.decode(),
        json.dumps([[str(v) for v in (s.attributes or {}).values()] for s in ours]),
        json.dumps(collector.spans),
        b"".join(collector.raw).decode(errors="replace"),
        out + err,
    ]
    assert all(SECRET not in text for text in shown)
    wrong = quiet_console()
    assert mp.main([TASK, "--broker", url.replace(SECRET, "wrong-pw-0815")], console=wrong) == 2
    said = wrong.file.getvalue()  # type: ignore[attr-defined]
    assert "Authorization" in said and "wrong-pw-0815" not in said and len(said.strip().splitlines()) <= 2
