"""--stream through the real SDK, against a loopback server that answers with server-sent events."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

import multi_agent_system as mas
from bench.server import BenchServer
from conftest import output
from machinery.cli import main
from machinery.gateway import ROLE_HEADER
from machinery.output import Display

TASK = "Explain what a budget gate is"


@pytest.fixture
def sse(monkeypatch):
    def start(**options):
        server = BenchServer("approve", **options).__enter__()
        started.append(server)
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
        return server

    started: list[BenchServer] = []
    yield start
    for server in started:
        server.__exit__()


def worker_requests(server: BenchServer) -> list[dict]:
    return [r for r in server.requests if r["extra_headers"][ROLE_HEADER] == "worker"]


def test_the_worker_streams_and_usage_is_counted_exactly(sse, console) -> None:
    server = sse()
    assert main([TASK, "--stream"], console=console) == mas.EXIT_APPROVED
    shown = output(console)
    assert "worker is writing…" in shown and "(scripted draft 1) A short answer to" in shown
    (request,) = worker_requests(server)
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
    assert not any(r.get("stream") for r in server.requests if r not in worker_requests(server))  # only the worker
    assert "~ estimated" not in shown  # the usage chunk was read


def test_streamed_usage_equals_what_the_server_counted(sse, console) -> None:
    server = sse()
    assert main([TASK, "--stream", "--json"], console=console) == mas.EXIT_APPROVED
    data = json.loads(output(console))
    assert data["usage_estimated"] is False
    assert data["tokens"]["prompt"] == sum(server.usages)


def test_a_server_that_sends_no_usage_chunk_gives_an_estimate_marked_as_such(sse, console) -> None:
    sse(stream_usage=False)
    assert main([TASK, "--stream", "--json"], console=console) == mas.EXIT_APPROVED
    assert json.loads(output(console))["usage_estimated"] is True


def test_a_server_that_refuses_stream_options_is_asked_without_them(sse, console) -> None:
    server = sse(refuse_stream_options=True)
    assert main([TASK, "--stream", "--verbose"], console=console) == mas.EXIT_APPROVED
    tries = worker_requests(server)
    assert [bool(r.get("stream_options")) for r in tries] == [True, False]
    assert "usage of streamed replies is estimated" in output(console)


def test_streaming_keeps_the_budget_clamp(sse) -> None:
    server = sse()
    for budget in range(500, 20_000, 100):  # the tightest budget that lets the worker write: its cap is clamped
        server.reset()
        console = Console(file=io.StringIO(), width=120)
        assert main([TASK, "--stream", "--max-tokens", str(budget), "--json"], console=console) in (0, 1)
        if worker_requests(server):
            break
    (request,) = worker_requests(server)[:1]
    assert request["stream"] and request["max_tokens"] < mas.ROLES["worker"].max_tokens
    assert json.loads(output(console))["total_tokens"] <= budget


def test_streamed_text_cannot_restyle_the_terminal(console) -> None:
    display = Display(console)
    display.stream("worker", "plain \x1b[2J[bold]text[/bold]\x07")
    display.stream("worker", "", done=True)
    shown = output(console)
    assert "\x1b" not in shown and "\x07" not in shown and "[bold]text[/bold]" in shown


def test_the_demo_streams_too_saying_it_is_the_demo(console) -> None:
    assert main([TASK, "--stream", "--demo-scenario", "approve"], console=console) == mas.EXIT_APPROVED
    shown = output(console)
    assert "Scripted demo model, not a real LLM" in shown and "worker is writing…" in shown
