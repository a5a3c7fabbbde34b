"""An OpenAI-compatible loopback server that misbehaves on purpose, for the fault matrix.

Healthy replies come from the entry point's own offline script (the responder its
demo mode uses), sent over real HTTP, so each program runs its normal path until
the fault strikes. A ``Fault`` says what goes wrong and for which requests:

    FaultServer(responder, FAULTS["server_error_forever"], key=KEY)

Faults are HTTP-level (status codes, bodies that are not JSON, a hang, a dropped
connection) or reply-level (the JSON is fine, the content is not). The server
never needs the network beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

import multi_agent_system as mas
from fake_server import QuietHandler
from machinery.demo import Responder, ScriptedClient
from machinery.gateway import ROLE_HEADER

FAST_RETRY = {"retry-after-ms": "5"}  # the SDK honours it: its backoff stays short in tests
DEEP = 1_500  # nesting levels: past the json module's recursion limit


def _error(status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> Any:
    body = {"error": {"message": message, "type": "error", "code": code}}
    return ("json", status, json.dumps(body).encode(), {**FAST_RETRY, **(headers or {})})


def _deep_json() -> str:
    return '{"approved": ' + '{"a": ' * DEEP + "true" + "}" * DEEP + "}"


@dataclass(frozen=True)
class Fault:
    """``action(server, request, healthy_body)`` returns what to send; ``times`` is how many
    requests it strikes (None: every one) after the first ``after`` healthy ones."""

    name: str
    action: Callable[[FaultServer, dict[str, Any], dict[str, Any]], Any]
    times: int | None = None
    after: int = 0
    needs_timeout: bool = False  # a hang is only bounded by --timeout
    refused: bool = False  # nothing listens: the base URL points at a closed port
    what: str = ""
    # What every program must do: "recovers" (ends as if nothing happened), a stop reason
    # ("api_error", "config_error", "timeout"), or "not_approved" (goes on, never approves
    # garbage, ends at its own limits). ``unlike`` names programs that differ, and how.
    expect: str = "not_approved"
    unlike: tuple[tuple[str, str], ...] = ()


def _status(status: int, message: str, code: str | None = None, **headers: str) -> Callable[..., Any]:
    return lambda server, request, body: _error(status, message, code, headers)


def _raw(content_type: str, data: bytes, status: int = 200) -> Callable[..., Any]:
    return lambda server, request, body: (content_type, status, data, {})


def _reply(change: Callable[[dict[str, Any]], None]) -> Callable[..., Any]:
    def act(server: FaultServer, request: dict[str, Any], body: dict[str, Any]) -> Any:
        change(body)
        return ("json", 200, json.dumps(body).encode(), {})

    return act


def _message(body: dict[str, Any]) -> dict[str, Any]:
    return body["choices"][0]["message"]


def _set_content(value: str | None) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        _message(body)["content"] = value
        _message(body).pop("tool_calls", None)
        body["choices"][0]["finish_reason"] = "stop"

    return change


def _refusal(body: dict[str, Any]) -> None:
    _set_content(None)(body)
    _message(body)["refusal"] = "I'm sorry, I can't help with that."


def _cut_off(body: dict[str, Any]) -> None:
    message = _message(body)
    if message.get("content"):
        message["content"] = message["content"][: max(1, len(message["content"]) // 3)]
    body["choices"][0]["finish_reason"] = "length"


def _no_usage(body: dict[str, Any]) -> None:
    body.pop("usage", None)


def _bad_tool_args(body: dict[str, Any]) -> None:
    message = _message(body)
    calls = message.get("tool_calls") or [
        {"id": "call_fault", "type": "function", "function": {"name": "unasked_tool", "arguments": ""}}
    ]
    for call in calls:
        call["function"]["arguments"] = '{"note": "unterminated'
    message["tool_calls"] = calls


def _deep(body: dict[str, Any]) -> None:
    message = _message(body)
    for call in message.get("tool_calls") or []:
        call["function"]["arguments"] = _deep_json()
    if not message.get("tool_calls"):
        message["content"] = _deep_json()


def _schema_refused(server: FaultServer, request: dict[str, Any], body: dict[str, Any]) -> Any:
    if (request.get("response_format") or {}).get("type") == "json_schema":
        return _error(400, "response_format of type json_schema is not supported by this model")
    return ("json", 200, json.dumps(body).encode(), {})


def _echo_key(status: int) -> Callable[..., Any]:
    def act(server: FaultServer, request: dict[str, Any], body: dict[str, Any]) -> Any:
        auth, key = server.last_auth, server.key
        return _error(
            status, f"Invalid header 'Authorization: {auth}' (api_key={key}). Incorrect API key provided: {key}."
        )

    return act


def _deep_body(server: FaultServer, request: dict[str, Any], body: dict[str, Any]) -> Any:
    data = json.dumps(body)[:-1] + ', "extra": ' + "[" * (2 * DEEP) + "]" * (2 * DEEP) + "}"
    return ("json", 200, data.encode(), {})


def _lone_surrogate(body: dict[str, Any]) -> None:
    message = _message(body)
    if message.get("content") and message["content"].lstrip()[:1] not in "{[":  # prose only: JSON stays readable
        message["content"] += " \ud83d"  # json.dumps writes it as the escape a server cut mid-emoji would send


def _hang(server: FaultServer, request: dict[str, Any], body: dict[str, Any]) -> Any:
    server.stopping.wait(60)  # until the test ends
    return "drop"


def _drop(server: FaultServer, request: dict[str, Any], body: dict[str, Any]) -> Any:
    return "half"


HTML = b"<!doctype html><html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>"

# Every fault the issue names, once where the SDK or the loop can recover, forever where it cannot.
FAULTS = {
    f.name: f
    for f in (
        Fault(
            "rate_limit_once", _status(429, "Rate limit reached for requests"), 1, what="429 once", expect="recovers"
        ),
        Fault(
            "rate_limit_forever",
            _status(429, "Rate limit reached for requests"),
            what="429 every time",
            expect="api_error",
        ),
        Fault(
            "rate_limit_retry_after",
            lambda s, r, b: _error(429, "Rate limit reached", None, {"retry-after": "1", "retry-after-ms": "1000"}),
            1,
            what="429 once, Retry-After: 1",
            expect="recovers",
        ),
        Fault(
            "insufficient_quota",
            _status(429, "You exceeded your current quota, please check your plan.", "insufficient_quota"),
            what="429 insufficient_quota",
            expect="config_error",
        ),
        Fault("server_error_once", _status(500, "The server had an error"), 1, what="500 once", expect="recovers"),
        Fault(
            "server_error_forever", _status(500, "The server had an error"), what="500 every time", expect="api_error"
        ),
        Fault("unavailable_once", _status(503, "Service unavailable"), 1, what="503 once", expect="recovers"),
        Fault("unavailable_forever", _status(503, "Service unavailable"), what="503 every time", expect="api_error"),
        Fault(
            "server_error_mid_run",
            _status(500, "The server had an error"),
            after=len(mas.ROLES) - 1,  # the chapter's planning roles and its worker answer: a draft is paid for
            what=f"500 from call {len(mas.ROLES)} on",
            expect="api_error",
        ),
        Fault("hang", _hang, needs_timeout=True, what="accepts, never answers", expect="timeout"),
        Fault("refused", _hang, refused=True, what="connection refused", expect="config_error"),
        Fault("dropped", _drop, what="connection dropped mid-reply", expect="api_error"),
        Fault(
            "invalid_json",
            _raw("application/json", b'{"id": "x", "choices": [{'),
            what="200, body not JSON",
            expect="api_error",
        ),
        Fault(
            "html_as_json",
            _raw("application/json", HTML),
            what="200, HTML sent as application/json",
            expect="config_error",
        ),
        Fault("html", _raw("text/html; charset=utf-8", HTML), what="200, HTML page", expect="config_error"),
        Fault("empty_choices", _reply(lambda b: b.update(choices=[])), what="200, choices: []", expect="config_error"),
        Fault("empty_content", _reply(_set_content("")), what='content: ""'),
        Fault("null_content", _reply(_set_content(None)), what="content: null"),
        Fault("refusal", _reply(_refusal), what="a refusal"),
        Fault("length", _reply(_cut_off), what='finish_reason: "length"', unlike=(("handoffs", "recovers"),)),
        Fault("unauthorized", _status(401, "Incorrect API key provided"), what="401", expect="config_error"),
        Fault(
            "unknown_model",
            _status(404, "The model does not exist", "model_not_found"),
            what="404 unknown model",
            expect="config_error",
        ),
        Fault("json_schema_refused", _schema_refused, what="json_schema refused (400)", expect="recovers"),
        Fault("usage_missing", _reply(_no_usage), what="no usage in replies", expect="recovers"),
        Fault(
            "bad_tool_arguments",
            _reply(_bad_tool_args),
            what="tool call arguments not JSON",
            unlike=(("chapter", "recovers"), ("variant", "recovers")),
        ),
        Fault("deep_body", _deep_body, what=f"HTTP body nested {2 * DEEP} deep", expect="api_error"),
        Fault("lone_surrogate", _reply(_lone_surrogate), what="a lone surrogate in the reply", expect="recovers"),
        Fault("deep_json", _reply(_deep), what=f"JSON nested {DEEP} deep"),
        Fault("key_echoed_400", _echo_key(400), what="400 whose message echoes the key", expect="config_error"),
        Fault("key_echoed_500", _echo_key(500), what="500 whose message echoes the key", expect="api_error"),
    )
}


@dataclass
class FaultServer:
    responder: Responder
    fault: Fault
    key: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    last_auth: str = ""
    struck: int = 0  # requests the fault was played on: a cell whose fault never struck proves nothing

    def __post_init__(self) -> None:
        self.stopping = threading.Event()
        self._scripted = ScriptedClient(self.responder)
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.last_auth = self.headers.get("authorization", "")
                    number = len(server.requests)
                    server.requests.append(request)
                    role = self.headers.get(ROLE_HEADER)
                    body = server._scripted.body(dict(request, extra_headers={ROLE_HEADER: role}))
                f = server.fault
                strikes = number >= f.after and (f.times is None or number < f.after + f.times)
                server.struck += strikes
                answer = f.action(server, request, body) if strikes else ("json", 200, json.dumps(body).encode(), {})
                if answer == "drop":
                    self.close_connection = True
                    return
                if answer == "half":  # headers promise a body that never fully arrives
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", "4000")
                    self.end_headers()
                    self.wfile.write(b'{"id": "chatcmpl-cut", "choi')
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                content_type, status, data, headers = answer
                self.send_body(status, "application/json" if content_type == "json" else content_type, data, headers)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        port = self.httpd.server_address[1]
        if self.fault.refused:  # a port that was just free: nothing will answer there
            self.httpd.server_close()
        self.url = f"http://127.0.0.1:{port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        if not self.fault.refused:
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        if not self.fault.refused:
            self.httpd.shutdown()
            self.httpd.server_close()
