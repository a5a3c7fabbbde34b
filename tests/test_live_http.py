"""The real openai SDK over real HTTP, against a loopback server the tests start.

These cover what a fake client cannot: the SDK's own retries, its typed
exceptions, and the json_schema fallback as a real server would trigger it.
Answers are scripted per role (``server.by_role``), so an agent a student adds
gets a default answer and changes none of these tests.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import multi_agent_system as mas
from conftest import output
from fake_server import LoopbackServer, chat_body, error_body
from machinery import gateway
from machinery.cli import main
from machinery.config import settings_from_env
from machinery.gateway import LLM, SDK_MAX_RETRIES
from machinery.output import Trace

FAST_RETRY = {"retry-after-ms": "10"}  # keeps the SDK's backoff short in tests
VERDICT_YES = '{"approved": true, "feedback": "Good."}'


@pytest.fixture
def server(monkeypatch):
    with LoopbackServer() as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
        monkeypatch.setenv("OPENAI_MODEL", "gpt-4o-mini")
        yield srv
    assert not srv.unexpected, f"requests the test scripted no answer for: {srv.unexpected}"


def ok(text: str, **kwargs: Any) -> tuple[int, dict, dict]:
    return 200, chat_body(text, **kwargs), {}


def test_a_real_run_over_http_end_to_end(server, console) -> None:
    server.by_role = {
        "planner": [ok("1. Write it.")],
        "worker": [ok("three\nshort\nlines")],
        "critic": [ok(VERDICT_YES)],
    }
    assert main(["Write a haiku", "--json"], console=console) == 0
    data = json.loads(output(console))
    assert data["approved"] and data["demo"] is False
    assert data["total_tokens"] == server.tokens_reported >= 3 * 60  # what the server counted, every agent's calls
    assert server.headers[0]["authorization"] == "Bearer sk-loopback"
    assert [r["response_format"]["type"] for r in server.requests_of("critic")] == ["json_schema"]
    assert server.requests_of("planner")[0]["max_tokens"] == mas.ROLES["planner"].max_tokens


def test_a_429_is_retried_by_the_sdk_then_succeeds(server, console, tmp_path) -> None:
    server.by_role = {
        "planner": [ok("1. plan")],
        "worker": [(429, error_body("Rate limit reached", "rate_limit_error"), FAST_RETRY), ok("draft")],
        "critic": [ok(VERDICT_YES)],
    }
    assert main(["task", "--verbose"], console=console) == 0
    assert len(server.requests_of("worker")) == 2  # the worker's request was sent twice
    assert "openai SDK: Retrying request" in output(console)
    (trace,) = (tmp_path / "logs").glob("*.jsonl")
    assert "Retrying request" in trace.read_text()


def test_json_schema_refused_falls_back_for_the_rest_of_the_run(server, console, tmp_path) -> None:
    refuse = (400, error_body("response_format json_schema is not supported by this server"), {})
    server.by_role = {
        "planner": [ok("1. plan")],
        "worker": [ok("draft 1"), ok("draft 2")],
        "critic": [
            refuse,  # critic asks for json_schema: refused
            ok('{"approved": false, "feedback": "again"}'),  # the same call, with json_object
            ok('{"approved": true, "feedback": "ok"}'),  # next critic call goes straight to json_object
        ],
    }
    assert main(["task"], console=console) == 0
    formats = [r.get("response_format", {}).get("type") for r in server.requests_of("critic")]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert [r for r in server.requests_of("worker") if "response_format" in r] == []  # drafts are free text
    assert "using json_object for the rest of the run" in output(console)


def test_plain_text_is_the_last_fallback(server, console) -> None:
    refuse = (422, error_body("unknown field: response_format"), {})
    server.by_role = {
        "planner": [ok("p")],
        "worker": [ok("d")],
        "critic": [refuse, refuse, ok("**Approved:** Yes\n**Feedback:** fine")],
    }
    assert main(["task"], console=console) == 0
    assert "response_format" not in server.requests_of("critic")[-1]


def test_max_tokens_refused_switches_to_max_completion_tokens(server, console) -> None:
    refuse = (
        400,
        error_body("Unsupported parameter: 'max_tokens'. Use 'max_completion_tokens' instead."),
        {},
    )
    server.by_role = {"planner": [refuse, ok("p")], "worker": [ok("d")], "critic": [ok(VERDICT_YES)]}
    assert main(["task"], console=console) == 0
    assert "max_tokens" in server.requests[0] and "max_tokens" not in server.requests[1]
    assert all(r["max_completion_tokens"] > 0 for r in server.requests[1:])


def test_usage_missing_over_http_is_estimated(server, console) -> None:
    server.by_role = {
        "planner": [ok("p", usage=False)],
        "worker": [ok("d", usage=False)],
        "critic": [ok(VERDICT_YES, usage=False)],
    }
    assert main(["task", "--json"], console=console) == 0
    data = json.loads(output(console))
    assert data["usage_estimated"] is True and data["total_tokens"] > 0


@pytest.mark.parametrize(
    "status, body, expected",
    [
        (
            401,
            error_body("Incorrect API key provided", "invalid_request_error"),
            "rejected the API key (401)",
        ),
        (
            404,
            error_body("The model `nope` does not exist", "invalid_request_error"),
            "model 'gpt-4o-mini' was not found",
        ),
        (400, error_body("messages: bad"), "refused the request (400)"),
    ],
)
def test_configuration_errors_are_one_line_and_exit_2(server, console, tmp_path, status, body, expected) -> None:
    server.answers += [(status, body, {})]
    assert main(["task"], console=console) == 2
    errors = [line for line in output(console).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0]
    assert "Traceback" not in output(console)
    (trace,) = (tmp_path / "logs").glob("*.jsonl")
    assert json.loads(trace.read_text().splitlines()[-1])["stop_reason"] == "config_error"


def test_a_server_that_keeps_failing_stops_with_api_error_and_keeps_the_work(server, console) -> None:
    failing = (503, error_body("overloaded", "server_error"), FAST_RETRY)
    server.by_role = {
        "planner": [ok("1. plan")],
        "worker": [ok("a draft")],
        "critic": [failing] * (SDK_MAX_RETRIES + 1),
    }
    assert main(["task", "--json"], console=console) == 1
    data = json.loads(output(console).split("\n", 1)[1] if output(console).startswith("error") else output(console))
    assert data["stop_reason"] == "api_error" and data["result"] == "a draft"
    assert len(server.requests_of("critic")) == SDK_MAX_RETRIES + 1


def test_an_unreachable_server_is_one_line_and_exit_2(console, monkeypatch) -> None:
    with LoopbackServer() as srv:
        url = srv.url  # a port that was just free, and is closed again below
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setattr(gateway, "SDK_MAX_RETRIES", 0)  # connection refused is instant; no need to retry here
    started = time.monotonic()
    assert main(["task"], console=console) == 2
    assert "cannot reach" in output(console) and "Traceback" not in output(console)
    assert time.monotonic() - started < 10


def test_tool_choice_refused_is_dropped_for_the_rest_of_the_run(server, make_llm) -> None:
    server.answers += [(400, error_body("tool_choice 'required' is not supported"), {}), ok("fine"), ok("again")]
    settings = settings_from_env({"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "k"})
    llm = LLM(settings, make_llm(None).display, Trace(None, "t"))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    for _ in range(2):
        mas.ask(llm, "research", [{"role": "user", "content": "hi"}], tools=tools, tool_choice="required")
    assert [r.get("tool_choice") for r in server.requests] == ["required", None, None]


@pytest.mark.parametrize(
    "answer",
    [(501, {"error": "Unsupported method ('POST')"}, FAST_RETRY), (200, {"html": "<h1>hello</h1>"}, {})],
)
def test_a_server_that_is_not_openai_compatible_is_a_config_error(server, console, answer) -> None:
    server.answers += [answer] * (SDK_MAX_RETRIES + 1)  # the SDK retries a 501 like any 5xx
    assert main(["task"], console=console) == 2
    assert "OpenAI-compatible" in output(console) and "Traceback" not in output(console)
