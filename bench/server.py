"""A loopback OpenAI-compatible server for the benchmark (and the streaming tests).

It answers ``POST /v1/chat/completions`` with the chapter's scripted demo model
(``ScriptedClient`` and ``demo_script``), so its replies and usage counts are
those of the offline demo, but they arrive over real HTTP through the real SDK.
Each task gets its own script, keyed by the task text, so concurrent runs of
different tasks do not share a conversation.

``latency`` seconds are slept before each reply: the model's thinking time.
TCP_NODELAY is set on every connection: without it a small reply can sit
~40 ms in the kernel waiting for a delayed ACK, which would swamp a 50 ms latency.
With ``"stream": true`` the reply comes as server-sent events; ``stream_usage``
False imitates a server that ignores ``stream_options`` (no usage chunk), and
``refuse_stream_options`` one that answers 400 to it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from machinery.demo import ScriptedClient, demo_script, task_in
from machinery.gateway import ROLE_HEADER

Scenario = Callable[[str], str]  # task text -> demo scenario name


class BenchServer:
    def __init__(
        self,
        scenario: str | Scenario = "approve",
        *,
        latency: float = 0.0,
        stream_usage: bool = True,
        refuse_stream_options: bool = False,
        cached_tokens: int = 0,
    ) -> None:
        self.scenario = scenario if callable(scenario) else (lambda task, name=scenario: name)
        self.latency = latency
        self.stream_usage = stream_usage
        self.refuse_stream_options = refuse_stream_options
        self.cached_tokens = cached_tokens  # reported as usage.prompt_tokens_details.cached_tokens when > 0
        self.scripts: dict[str, ScriptedClient] = {}
        self.timings: list[tuple[float, float]] = []  # (request read, reply written) per request, perf_counter
        self.requests: list[dict[str, Any]] = []
        self.usages: list[int] = []  # the prompt tokens counted for each request, in order
        self._lock = threading.RLock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the SDK reuses its connection

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:  # /stats: what a benchmark in another process reads
                self._send(200, server.stats())

            def do_POST(self) -> None:
                started = time.perf_counter()  # from here on the time is the server's: reading, thinking, replying
                length = int(self.headers.get("content-length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                if self.path.endswith("/configure"):  # a benchmark in another process sets the next scenario
                    server.configure(request["scenario"], request.get("latency", 0.0))
                    self._send(200, {})
                    return
                request["extra_headers"] = {ROLE_HEADER: self.headers.get(ROLE_HEADER)}
                if server.latency:
                    time.sleep(server.latency)
                if request.get("stream_options") and server.refuse_stream_options:
                    server.record(request, {}, started)
                    self._send(400, {"error": {"message": "stream_options is not supported", "type": "invalid"}})
                    return
                body = server.body(request)
                # counted before the reply goes out: a client that has the reply finds it counted
                server.record(request, body, started)
                if request.get("stream"):
                    self._stream(body, bool((request.get("stream_options") or {}).get("include_usage")))
                else:
                    self._send(200, body)

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict[str, Any], include_usage: bool) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                choice = body["choices"][0]
                text = choice["message"]["content"] or ""
                pieces = [text[i : i + 12] for i in range(0, len(text), 12)] or [""]
                base = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"]}
                base["model"] = body["model"]
                events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
                events += [{**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
                events.append(
                    {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]}
                )
                if include_usage and server.stream_usage:
                    events.append({**base, "choices": [], "usage": body["usage"]})
                for event in events:
                    self._chunk(f"data: {json.dumps(event)}\n\n".encode())
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def body(self, request: dict[str, Any]) -> dict[str, Any]:
        """The demo model's reply for this request, from the script of its task."""
        task = task_in(request)
        with self._lock:
            script = self.scripts.get(task)
            if script is None:
                script = self.scripts[task] = ScriptedClient(demo_script(self.scenario(task)))
            body = script.body(request)
        if self.cached_tokens and body.get("usage"):
            cached = min(self.cached_tokens, body["usage"]["prompt_tokens"])
            body["usage"]["prompt_tokens_details"] = {"cached_tokens": cached}
        return body

    def record(self, request: dict[str, Any], body: dict[str, Any], started: float) -> None:
        """A request answered: what it asked, the prompt tokens counted, and when it was read and its reply ready."""
        with self._lock:
            self.requests.append(request)
            self.usages.append((body.get("usage") or {}).get("prompt_tokens", 0))
            self.timings.append((started, time.perf_counter()))

    def configure(self, scenario: str, latency: float) -> None:
        self.scenario = lambda task, name=scenario: name
        self.latency = latency
        self.reset()

    def stats(self) -> dict[str, Any]:
        """Per request, in order: (start, end) timings, prompt tokens counted, the asking role, the request."""
        with self._lock:
            return {
                "timings": list(self.timings),
                "usages": list(self.usages),
                "roles": self.roles(),
                "requests": list(self.requests),
            }

    def roles(self) -> list[str]:
        return [str(r["extra_headers"][ROLE_HEADER]) for r in self.requests]

    def waiting(self) -> tuple[float, float]:
        """(wall time from the first request read to the last reply written, time spent answering)."""
        with self._lock:
            timings = list(self.timings)
        if not timings:
            return 0.0, 0.0
        wall = max(end for _, end in timings) - min(start for start, _ in timings)
        return wall, sum(end - start for start, end in timings)

    def reset(self) -> None:
        with self._lock:  # a re-entrant lock: configure() and the handlers call this holding it, or not
            self.scripts.clear()
            self.timings.clear()
            self.requests.clear()
            self.usages.clear()

    def __enter__(self) -> BenchServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve() -> None:
    """``python -m bench.server``: serve in a process of its own, so the model's side of the HTTP
    work does not compete with the loop for the interpreter lock. Prints its URL, then serves."""
    with BenchServer() as server:
        print(server.url, flush=True)
        server.thread.join()


if __name__ == "__main__":
    serve()
