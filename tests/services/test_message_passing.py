"""The message-passing variant without a broker: the chapter's results, its checks on messages, resume, batch."""

from __future__ import annotations

import ast
import difflib
import inspect
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import multi_agent_system as mas
from machinery import cli
from machinery.bus import ERROR, MSG_ID, LocalBus, request_subject
from machinery.services import AgentService, digest
from services.helpers import ROOT, SAME_AGENTS, StatelessModel, a_request, quiet_console, summary_of
from stages.variants import message_passing as mp

TASK = "Write a haiku about agents"


def run_both(*flags: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same task and flags through the chapter and through the variant (no broker)."""
    chapter, variant = quiet_console(), quiet_console()
    assert cli.main([TASK, "--json", *flags], console=chapter) in (0, 1)
    assert mp.main([TASK, "--json", *flags], console=variant) in (0, 1)
    return summary_of(chapter), summary_of(variant)


SAME = ("stop_reason", "stop_detail", "calls", "tokens", "iterations", "plans", "result", "approved")


@pytest.mark.parametrize(
    "flags",
    [
        ("--demo-scenario", "approve"),
        ("--demo-scenario", "revise"),
        ("--demo-scenario", "escalate"),
        ("--demo-scenario", "exhaust"),
        ("--demo-scenario", "exhaust", "--max-iterations", "3"),
        ("--demo-scenario", "exhaust", "--max-tokens", "1500"),
    ],
    ids=" ".join,
)
@SAME_AGENTS
def test_without_a_broker_the_result_is_the_chapters(flags: tuple[str, ...]) -> None:
    chapter, variant = run_both(*flags)
    assert {k: variant[k] for k in SAME} == {k: chapter[k] for k in SAME}


def code_lines(function: Any) -> list[str]:
    source = inspect.getsource(function)
    body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
    first = body[1].lineno if isinstance(body[0], ast.Expr) else body[0].lineno
    return [line for line in source.splitlines()[first - 1 :] if line.strip() and not line.strip().startswith("#")]


@SAME_AGENTS
def test_the_loop_differs_from_the_chapters_only_where_agents_are_reached() -> None:
    diff = difflib.unified_diff(code_lines(mas.orchestrate), code_lines(mp.orchestrate), lineterm="", n=0)
    changed = [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    added = [line for line in changed if line.startswith("+")]
    assert len(changed) <= 8, "\n".join(changed)
    assert all("remote(" in line or "saves the run" in line for line in added), "\n".join(added)


def test_a_service_refuses_malformed_oversized_and_wrongly_typed_messages_and_keeps_serving(caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    bus = LocalBus()
    service = bus.serve("planner", AgentService("planner", mas.Settings(demo=True)).handle)
    good = a_request().model_dump()
    wrong: dict[str, bytes] = {
        "not-json": b"\xff not json",
        "too-big": json.dumps({"x": "y" * 600_000}).encode(),
        "typed-wrong": json.dumps(good | {"allowance": "lots"}).encode(),
        "extra-field": json.dumps(good | {"api_key": "sk-x"}).encode(),
        "other-role": json.dumps(good | {"role": "critic"}).encode(),
        "bad-state": json.dumps(good | {"state": {"task": 3}}).encode(),
        "unknown-role": json.dumps(good | {"role": "director"}).encode(),
    }
    handle = AgentService("planner", mas.Settings(demo=True)).handle
    answers = {name: bus.process("planner", payload, {MSG_ID: "run-1.1"}, handle) for name, payload in wrong.items()}
    answers["no-id"] = bus.process("planner", b"{}", {}, handle)
    answers["other-id"] = bus.process("planner", json.dumps(good).encode(), {MSG_ID: "run-1.2"}, handle)
    for name, (body, headers) in answers.items():
        assert body == b"" and headers[ERROR].startswith("refused"), name
    said = caplog.text
    reasons = ("not valid JSON", "too large", "allowance", "Extra inputs", "runs the planner, not the critic")
    for reason in (*reasons, "state is malformed", "role: Input should be", "Nats-Msg-Id", "differs from the header"):
        assert reason in said, reason
    reply, headers = bus.request("planner", a_request().model_dump_json().encode(), "run-1.1", timeout=5)
    assert ERROR not in headers and json.loads(reply)["role"] == "planner"  # still serving
    service.stop()


def test_a_request_carries_its_allowance_and_the_service_never_spends_more() -> None:
    service = AgentService("planner", mas.Settings(demo=True))
    for allowance in (0, 100, 200, 260, 400, 800, 5_000):
        reply = json.loads(service.handle(a_request(allowance=allowance).model_dump_json().encode(), {})[0])
        spent = reply["tokens_in"] + reply["tokens_out"]
        assert spent <= allowance, (allowance, spent)
        assert reply["kind"] == "reply" or reply["stop_reason"] == "token_budget"


Rogue = Callable[[dict[str, Any]], dict[str, Any]]
ROGUES: dict[str, Rogue] = {
    "another request": lambda r: r | {"causation_id": "run-0.1"},
    "another run": lambda r: r | {"run_id": "someone-else"},
    "a write it may not make": lambda r: r | {"writes": r["writes"] | {"task": "something else"}},
    "a wrong type": lambda r: r | {"tokens_in": "many"},
    "a different request": lambda r: r | {"request_digest": "0" * 32},
    "a bad state": lambda r: r | {"writes": r["writes"] | {"plan_version": "two"}},
    "an unknown stop": lambda r: r | {"kind": "stop", "stop_reason": "approved"},
    "a write it may make, of the wrong type": lambda r: r | {"writes": r["writes"] | {"worker_attempts": "two"}},
}
PAID = {"a write it may make, of the wrong type"}  # the answer to this request: its call was made, and is counted


@pytest.mark.parametrize("rogue", ROGUES, ids=str)
def test_the_orchestrator_accepts_only_the_answer_to_a_request_it_sent(
    rogue: str, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="agents.services")
    honest = AgentService.handle

    def handle(self: AgentService, payload: bytes, headers: dict[str, str]) -> tuple[bytes, bool]:
        body, keep = honest(self, payload, headers)
        if self.role != "worker":
            return body, keep
        return json.dumps(ROGUES[rogue](json.loads(body))).encode(), keep

    monkeypatch.setattr(AgentService, "handle", handle)
    console = quiet_console()
    assert mp.main([TASK, "--json", "--demo-scenario", "approve"], console=console) == 1
    summary = summary_of(console)
    assert summary["stop_reason"] == "api_error" and "reply was refused" in summary["stop_detail"]
    assert summary["calls"] == (2 if rogue in PAID else 1)  # a reply to another request is not counted
    assert "refused the worker's reply" in caplog.text


@SAME_AGENTS  # its trace is replayed through the chapter's loop
def test_a_local_run_stopped_at_its_time_limit_resumes_without_a_repeated_paid_call(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No broker: the state and replies are kept under --log-dir; the resumed run asks only what was not answered."""
    with StatelessModel("approve") as model:
        model.delays = {"critic": 5.0}  # the critic's call runs past the time limit
        monkeypatch.setenv("OPENAI_BASE_URL", model.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        first = quiet_console()
        assert mp.main([TASK, "--json", "--timeout", "1.5"], console=first) == 1
        stopped = summary_of(first)
        assert stopped["stop_reason"] == "timeout" and stopped["calls"] == 2
        model.delays = {}
        again = quiet_console()
        assert mp.main(["--resume", stopped["run_id"], "--json"], console=again) == 0
    resumed = summary_of(again)
    assert resumed["approved"] and resumed["calls"] == 3 and resumed["run_id"] == stopped["run_id"]
    assert sorted(model.arrived) == ["critic", "critic", "planner", "worker"]  # one critic call was abandoned
    trace = Path(resumed["trace"])
    assert trace.with_name(f"{trace.stem}.before-resume-1.jsonl").exists()
    replayed = quiet_console()
    assert cli.main(["--replay", str(trace), TASK, "--json"], console=replayed) == 0
    assert (summary_of(replayed)["calls"], summary_of(replayed)["tokens"]) == (3, resumed["tokens"])
    assert mp.main(["--resume", stopped["run_id"]], console=quiet_console()) == 2  # approved: nothing to resume


def test_a_batch_without_a_broker_keeps_its_ceiling(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("\n".join(f"Explain what a budget gate is, for student {n}" for n in range(4)) + "\n")
    console = quiet_console()
    assert mp.main(["--batch", str(tasks), "--json", "--concurrency", "4"], console=console) == 0
    lines = [json.loads(line) for line in console.file.getvalue().splitlines() if line.startswith("{")]  # type: ignore[attr-defined]
    assert len(lines) == 4 and all(s["approved"] for s in lines)
    ceiling = sum(s["total_tokens"] for s in lines) // 2
    console = quiet_console()
    assert mp.main(["--batch", str(tasks), "--json", "--batch-max-tokens", str(ceiling)], console=console) == 1
    lines = [json.loads(line) for line in console.file.getvalue().splitlines() if line.startswith("{")]  # type: ignore[attr-defined]
    assert sum(s["total_tokens"] for s in lines) <= ceiling
    assert {"token_budget"} <= {s["stop_reason"] for s in lines}
    # one task at a time: each step's spending must be settled into the batch's budget, or every
    # reservation sees nothing spent and all four tasks run in full (they did: 3,872 tokens of 1,936)
    console = quiet_console()
    mp.main(
        ["--batch", str(tasks), "--json", "--batch-max-tokens", str(ceiling), "--concurrency", "1"], console=console
    )
    lines = [json.loads(line) for line in console.file.getvalue().splitlines() if line.startswith("{")]  # type: ignore[attr-defined]
    assert sum(s["total_tokens"] for s in lines) <= ceiling


def test_help_and_the_local_demo_load_no_broker_no_telemetry_and_no_sdk(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom stages.variants import message_passing as m\n"
        "assert m.main(['--help']) == 0\n"
        "assert m.main(['Write a haiku about agents', '--quiet']) == 0\n"
        "print('HEAVY:' + ','.join(x for x in ('nats', 'opentelemetry', 'openai', 'httpx') if x in sys.modules))"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "HEAVY:"


def test_a_request_is_answered_once_however_often_it_is_sent() -> None:
    bus = LocalBus()
    calls: list[str] = []
    service = AgentService("planner", mas.Settings(demo=True))

    def counting(payload: bytes, headers: dict[str, str]) -> tuple[bytes, bool]:
        calls.append(headers[MSG_ID])
        return service.handle(payload, headers)

    bus.serve("planner", counting)
    payload = a_request().model_dump_json().encode()
    first = bus.request("planner", payload, "run-1.1", timeout=5)
    second = bus.process("planner", payload, {MSG_ID: "run-1.1"}, counting)  # delivered again
    third = bus.request("planner", payload, "run-1.1", timeout=5)  # sent again
    assert first[0] == second[0] == third[0] and calls == ["run-1.1"]
    assert json.loads(first[0])["request_digest"] == digest("planner", a_request().state)
    assert request_subject("planner") == "agents.planner.requests"


@pytest.mark.parametrize("url", ["nats://alice:s3cr/et@127.0.0.1:4222", "nats://alice:p@ss@127.0.0.1:9"])
def test_a_password_with_a_slash_or_an_at_sign_is_never_shown(url: str, capsys: Any) -> None:
    pytest.importorskip("nats", reason="nats-py is not installed (pip install -r requirements-nats.txt)")
    console = quiet_console()
    assert mp.main(["Write a haiku", "--broker", url, "--timeout", "2"], console=console) == 2
    shown = console.file.getvalue() + "".join(capsys.readouterr())  # type: ignore[attr-defined]
    assert "s3cr" not in shown and "p@ss" not in shown and "ss@" not in shown and "***@" in shown


def test_without_nats_py_a_broker_is_one_line_naming_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nats" else found(name, *a))
    console = quiet_console()
    assert mp.main(["Write a haiku", "--broker", "nats://alice:s3cret@127.0.0.1:9"], console=console) == 2
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert len(shown.strip().splitlines()) == 1 and "pip install -r requirements-nats.txt" in shown
    assert "s3cret" not in shown
