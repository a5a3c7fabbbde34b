"""Shared test fixtures: a fake OpenAI client, a network guard, captured output.

Every test runs offline and without a key. The fake client hands back real
``openai`` response objects from a queue, records every request, and fails the
test loudly when the code asks for more replies than the test scripted.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletion
from rich.console import Console

import multi_agent_system as mas

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real network, no real key, no stray .env: only loopback sockets may connect."""
    real_connect = socket.socket.connect

    def guarded_connect(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if sock.family == socket.AF_UNIX or host in LOOPBACK:
            return real_connect(sock, address)
        raise AssertionError(f"a test tried to reach the network: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_MODEL",
        "PLANNER_MODEL",
        "WORKER_MODEL",
        "CRITIC_MODEL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # traces land in tmp_path/logs, and no .env is found


class FakeClient:
    """Stands in for ``openai.OpenAI``: replies come from a queue, in order.

    Queue items are ChatCompletion objects (see ``completion``) or exceptions,
    which are raised as the server's answer. ``calls`` records every request.
    """

    def __init__(self, *replies: Any):
        self.queue = list(replies)
        self.calls: list[dict[str, Any]] = []
        self.chat = self
        self.completions = self

    def create(self, **request: Any) -> Any:
        self.calls.append(request)
        if not self.queue:
            last = request["messages"][0]["content"][:60]
            raise AssertionError(f"FakeClient: unexpected call #{len(self.calls)} (system prompt {last!r}…)")
        item = self.queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def roles(self) -> list[str]:
        """Which agent made each call, read from the system prompt."""
        return [mas.request_role(call) or "?" for call in self.calls]


def completion(
    text: str | None = "ok",
    prompt_tokens: int | None = 100,
    completion_tokens: int | None = 20,
    model: str = "gpt-4o-mini",
    **kwargs: Any,
) -> Any:
    body = mas.completion_body(
        text, model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, **kwargs
    )
    return ChatCompletion.model_validate(body)  # a real SDK object, as a server's reply becomes


def verdict(approved: bool, feedback: str = "Fix the ending.") -> Any:
    return completion(f'{{"approved": {str(approved).lower()}, "feedback": "{feedback}"}}')


@pytest.fixture
def console() -> Console:
    return Console(file=StringIO(), width=120, color_system=None)


def output(console: Console) -> str:
    return console.file.getvalue()  # type: ignore[attr-defined]


@pytest.fixture
def make_llm(tmp_path: Path, console: Console) -> Callable[..., mas.LLM]:
    """Build an LLM around a client, with captured output and a trace in tmp_path."""

    def build(client: Any, mode: mas.Mode = "normal", **settings: Any) -> mas.LLM:
        settings.setdefault("default_model", "gpt-4o-mini")
        trace = mas.Trace(tmp_path / "trace.jsonl", "test-run")
        return mas.LLM(mas.Settings(**settings), mas.Display(console, mode), trace, client=client)

    return build
