"""A tiny OpenAI-compatible HTTP server on 127.0.0.1, started by the tests themselves.

It lets tests drive the real openai SDK over real HTTP: its retries, its typed
exceptions, its parsing. Each request to /v1/chat/completions takes the next
scripted answer: a (status, body, headers) tuple, or a callable that gets the
request's JSON and returns one. Answers come from one of two places:

``answers``
    one queue, in request order, whoever asks;
``by_role``
    one queue per role, chosen by the request's X-Agent-Role header. A role
    whose queue runs dry gets a 400 and is recorded in ``unexpected`` (the tests'
    fixture fails on it); a role with no queue at all (an agent a student added)
    gets a labelled 200 reply and is recorded in ``defaulted``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from machinery import gateway
from machinery.gateway import estimate_tokens

Answer = tuple[int, dict[str, Any], dict[str, str]]
ROLE_HEADER = gateway.ROLE_HEADER.lower()  # header names are stored lower-cased


def chat_body(content: str, prompt_tokens: int = 50, completion_tokens: int = 10, usage: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": 0,
        "model": "loopback-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }
    if usage:
        body["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return body


def error_body(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": None}}


class QuietHandler(BaseHTTPRequestHandler):
    """What every loopback server here shares: no log lines, no Nagle delay, one way to send a body."""

    def setup(self) -> None:
        super().setup()
        # Without this, each reply waits ~40 ms for a delayed ACK (Nagle's algorithm).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_body(self, status: int, content_type: str, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass


class LoopbackServer:
    def __init__(self) -> None:
        self.answers: list[Answer | Callable[[dict[str, Any]], Answer]] = []
        self.by_role: dict[str, list[Answer | Callable[[dict[str, Any]], Answer]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.unexpected: list[str] = []  # requests a per-role queue had no answer for
        self.defaulted: list[str] = []  # roles that had no queue, once per request
        self.tokens_reported = 0  # the usage totals of every 200 answer sent
        server = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(request)
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                item = server.next_answer(server.headers[-1].get(ROLE_HEADER), request)
                answer = item(request) if callable(item) else item
                status, body, headers = answer
                if status == 200 and isinstance(body.get("usage"), dict):
                    server.tokens_reported += body["usage"].get("total_tokens", 0)
                self.send_body(status, "application/json", json.dumps(body).encode(), headers)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def next_answer(self, role: str | None, request: dict[str, Any]) -> Answer | Callable[[dict[str, Any]], Answer]:
        if not self.by_role:
            if not self.answers:
                return (500, error_body("loopback server: no scripted answer left"), {})
            return self.answers.pop(0)
        if role not in self.by_role:
            self.defaulted.append(str(role))
            prompt_tokens = estimate_tokens(request.get("messages") or [])  # honest: no estimate is scaled up
            return (200, chat_body(f"(fake {role} reply)", prompt_tokens=prompt_tokens), {})
        queue = self.by_role[role]
        if not queue:
            number = self.roles().count(role)
            self.unexpected.append(f"the {role}'s request {number} (request #{len(self.requests)} in all)")
            return (400, error_body(f"loopback server: the {role} queue ran dry"), {})
        return queue.pop(0)

    def roles(self) -> list[str | None]:
        """Which agent sent each request, from its X-Agent-Role header."""
        return [headers.get(ROLE_HEADER) for headers in self.headers]

    def requests_of(self, role: str) -> list[dict[str, Any]]:
        return [request for request, who in zip(self.requests, self.roles(), strict=True) if who == role]

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
