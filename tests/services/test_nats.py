"""Agents as services over a real nats-server: the chapter's result across processes, and every fault.

Services run as processes where the test is about a process (one per role; one killed mid-call),
and as threads with connections of their own elsewhere (quicker to start, the same bus).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import multi_agent_system as mas
from machinery import cli
from machinery.bus import ERROR, MSG_ID, REPLAYED, REPLY_TO, Bus, Service, request_subject
from machinery.services import RUNS, AgentService
from services.helpers import (
    ROOT,
    SAME_AGENTS,
    NatsServer,
    StatelessModel,
    a_request,
    free_port,
    quiet_console,
    spawn_service,
    summary_of,
    wait_until,
)
from stages.variants import message_passing as mp

TASK = "Write a haiku about agents"


@pytest.fixture
def threads() -> Iterator[Callable[..., list[Bus]]]:
    """Services as threads, each on a connection of its own; all closed at the end."""
    made: list[tuple[Bus, Service]] = []

    def start(url: str, *roles: str, model: StatelessModel | None = None, ack_wait: float = 30.0) -> list[Bus]:
        settings = mas.Settings(base_url=model.url, api_key="sk-test") if model else mas.Settings(demo=True)
        for role in roles:
            bus = Bus.connect(url)
            made.append((bus, bus.serve(role, AgentService(role, settings).handle, ack_wait)))
        return [bus for bus, _ in made[-len(roles) :]]

    yield start
    for bus, service in made:
        service.stop(2)
        bus.close()


def in_background(argv: list[str]) -> tuple[threading.Thread, list[Any]]:
    """The orchestrator in a thread: ``out`` gets its exit code and its --json summary."""
    out: list[Any] = []

    def run() -> None:
        console = quiet_console()
        out.append(mp.main(argv, console=console))
        out.append(summary_of(console))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def a_real_model(monkeypatch: pytest.MonkeyPatch, model: StatelessModel) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", model.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


@SAME_AGENTS
def test_each_role_in_its_own_process_gives_the_chapters_result(
    nats_server: NatsServer, processes: list[subprocess.Popen[str]]
) -> None:
    """Three service processes, this process the orchestrator: the chapter's stop reason, calls and tokens,
    and a trace that --show, --replay and --diagram read like the chapter's."""
    processes += [spawn_service(role, nats_server.url) for role in ("planner", "worker", "critic")]
    chapter, variant = quiet_console(), quiet_console()
    flags = ["--json", "--demo-scenario", "escalate"]
    assert cli.main([TASK, *flags], console=chapter) == 0
    assert mp.main([TASK, *flags, "--broker", nats_server.url], console=variant) == 0
    ours, theirs = summary_of(variant), summary_of(chapter)
    same = ("stop_reason", "calls", "tokens", "iterations", "plans", "result")
    assert {k: ours[k] for k in same} == {k: theirs[k] for k in same}
    trace = ours["trace"]
    replayed = quiet_console()
    assert cli.main(["--replay", trace, TASK, "--json"], console=replayed) == 0
    assert (summary_of(replayed)["calls"], summary_of(replayed)["tokens"]) == (ours["calls"], ours["tokens"])
    assert cli.main(["--show", trace, "--quiet"], console=quiet_console()) == 0
    drawn = quiet_console()
    assert cli.main(["--diagram", trace], console=drawn) == 0
    assert "sequenceDiagram" in drawn.file.getvalue()  # type: ignore[attr-defined]
    for process in processes:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert "answered before" not in (process.stderr.read() if process.stderr else "")


def test_a_service_killed_mid_call_is_redelivered_to_another_copy(
    nats_server: NatsServer, processes: list[subprocess.Popen[str]], threads: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with StatelessModel("approve", latency=0.4) as model:
        a_real_model(monkeypatch, model)
        threads(nats_server.url, "planner", "critic", model=model)
        first = spawn_service("worker", nats_server.url, "--ack-wait", "1", model_url=model.url)
        processes.append(first)
        thread, out = in_background([TASK, "--json", "--broker", nats_server.url])
        wait_until(lambda: "worker" in model.arrived, what="the worker's call")
        first.kill()  # mid-call: the request was delivered and never acknowledged
        killed = time.monotonic()
        threads(nats_server.url, "worker", model=model, ack_wait=1.0)  # a second copy joins
        thread.join(30)
    code, summary = out
    assert code == 0 and summary["approved"] and summary["calls"] == 3, summary
    assert model.arrived == ["planner", "worker", "worker", "critic"]  # the killed copy's call was made again
    assert time.monotonic() - killed < 10


def test_a_service_killed_with_no_other_copy_stops_the_run_within_its_time_limit(
    nats_server: NatsServer, processes: list[subprocess.Popen[str]], threads: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with StatelessModel("approve", latency=0.2) as model:
        model.delays = {"worker": 30.0}
        a_real_model(monkeypatch, model)
        threads(nats_server.url, "planner", "critic", model=model)
        processes.append(spawn_service("worker", nats_server.url, model_url=model.url))
        started = time.monotonic()
        thread, out = in_background([TASK, "--json", "--broker", nats_server.url, "--timeout", "3"])
        wait_until(lambda: "worker" in model.arrived, what="the worker's call")
        processes[-1].kill()
        thread.join(20)
    code, summary = out
    assert code == 1 and summary["stop_reason"] == "timeout", summary
    assert "no worker service answered" in summary["stop_detail"]
    assert time.monotonic() - started < 5


def test_a_killed_orchestrator_resumes_without_a_repeated_paid_call(
    nats_server: NatsServer, threads: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with StatelessModel("exhaust", latency=0.3) as model:
        a_real_model(monkeypatch, model)
        threads(nats_server.url, "planner", "worker", "critic", model=model)
        env = {k: v for k, v in os.environ.items() if k != "NATS_URL"} | {"PYTHONPATH": str(ROOT)}
        flags = ["--json", "--max-iterations", "3", "--broker", nats_server.url, "--log-dir", str(tmp_path / "logs")]
        command = [sys.executable, "-m", "stages.variants.message_passing", TASK, *flags]
        orchestrator = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(lambda: len(model.arrived) >= 3, what="three calls")
        orchestrator.kill()  # mid-call: the third reply comes to nobody
        orchestrator.wait(10)
        (trace,) = (tmp_path / "logs").glob("*.jsonl")
        console = quiet_console()
        resume = ["--resume", trace.stem, "--json", "--broker", nats_server.url, "--log-dir", str(tmp_path / "logs")]
        assert mp.main(resume, console=console) == 1
        resumed, calls_made = summary_of(console), len(model.arrived)
        again = quiet_console()  # the same run, never killed
        assert mp.main([TASK, *flags], console=again) == 1
    whole = summary_of(again)
    assert resumed["stop_reason"] == whole["stop_reason"] == "max_iterations"
    assert (resumed["calls"], resumed["tokens"]) == (whole["calls"], whole["tokens"])
    assert calls_made == whole["calls"] == len(model.arrived) - whole["calls"]  # not one call made twice
    events = [json.loads(line) for line in Path(resumed["trace"]).read_text().splitlines()]
    assert [e["event"] for e in events].count("call") == whole["calls"] and events[-1]["event"] == "end"


def test_a_request_is_answered_once_and_bad_messages_are_refused(
    nats_server: NatsServer, threads: Any, caplog: Any
) -> None:
    caplog.set_level(logging.INFO)
    threads(nats_server.url, "planner")
    sender = Bus.connect(nats_server.url)
    try:
        subject, to = request_subject("planner"), f"agents.replies.{sender.inbox}"
        for payload, headers in [
            (b"\xff not json", {MSG_ID: "bad.1", REPLY_TO: to}),
            (json.dumps({"role": "planner"}).encode(), {MSG_ID: "bad.2", REPLY_TO: to}),
            (b"{}", {REPLY_TO: to}),
        ]:
            sender.publish(subject, payload, headers)
        request = a_request().model_dump()
        body = json.dumps(request).encode()
        first, _ = sender.request("planner", body, request["message_id"], timeout=10)
        again, headers = sender.request("planner", body, request["message_id"], timeout=10)
        assert first == again and headers.get(REPLAYED) == "1"
        wrong = json.dumps(request | {"role": "critic"}).encode()
        with pytest.raises(Exception, match="runs the planner, not the critic"):
            sender.request("planner", wrong, "run-1.9", timeout=10)
    finally:
        sender.close()
    said = caplog.text
    assert "not valid JSON" in said and "not a valid Request" in said and "Nats-Msg-Id" in said
    assert said.count("planner: run-1.1: 1 call(s)") == 1  # the agent ran once
    assert ERROR == "Agent-Error"


def test_a_broker_down_at_start_is_one_line_and_exit_2(tmp_path: Path) -> None:
    pytest.importorskip("nats", reason="nats-py is not installed (pip install -r requirements-nats.txt)")
    url = f"nats://alice:s3cret-pw-123@127.0.0.1:{free_port()}"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "stages.variants.message_passing"]
    runs = [
        subprocess.Popen([*base, TASK, "--broker", url], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        subprocess.Popen([*base, "serve", "worker", "--broker", url], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    ]  # fmt: skip
    for process in runs:
        out, err = process.communicate(timeout=30)
        assert process.returncode == 2
        assert out == "" and len(err.strip().splitlines()) == 1, err
        assert "cannot connect to the broker at nats://***@127.0.0.1" in err and "s3cret" not in err


def test_a_broker_that_dies_mid_run_stops_it_keeping_its_trace_and_best_draft(
    nats_server: NatsServer, threads: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with StatelessModel("exhaust", latency=0.2) as model:
        a_real_model(monkeypatch, model)
        threads(nats_server.url, "planner", "worker", "critic", model=model)
        thread, out = in_background(["Explain what a budget gate is", "--json", "--broker", nats_server.url])
        wait_until(lambda: model.arrived.count("critic") >= 1 and len(model.arrived) >= 4, what="a verdict")
        nats_server.stop(kill=True)
        stopped = time.monotonic()
        thread.join(30)
    code, summary = out
    assert code == 1 and summary["stop_reason"] == "api_error" and "lost the broker" in summary["stop_detail"]
    assert summary["result"] and summary["best"] is not None  # the best draft so far is the result
    assert time.monotonic() - stopped < 12
    events = [json.loads(line) for line in Path(summary["trace"]).read_text().splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "end"
    assert any(e["event"] == "warning" and "could not be saved" in e.get("message", "") for e in events)


def test_the_saved_run_is_in_the_brokers_key_value_store(nats_server: NatsServer, threads: Any) -> None:
    threads(nats_server.url, "planner", "worker", "critic")
    console = quiet_console()
    assert mp.main([TASK, "--json", "--broker", nats_server.url], console=console) == 0
    summary = summary_of(console)
    reader = Bus.connect(nats_server.url)
    try:
        saved = json.loads(reader.kv_get(RUNS, summary["run_id"]) or b"{}")
    finally:
        reader.close()
    assert saved["task"] == TASK and saved["state"]["status"] == "approved" and saved["step"] >= summary["calls"]
    assert mp.main(["--resume", summary["run_id"], "--broker", nats_server.url], console=quiet_console()) == 2
