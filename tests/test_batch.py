"""Many tasks at once: reading the batch file, shared budget and rate limit, failures, Ctrl-C, the CLI."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import multi_agent_system as mas
from conftest import FakeClient, completion, interruptible, output
from fake_server import LoopbackServer, chat_body, error_body
from machinery.batch import (
    BATCH_CONCURRENCY,
    RATE_WINDOW_S,
    BatchBudget,
    BatchOutcome,
    GatedClient,
    RateLimit,
    batch_exit_code,
    run_batch,
)
from machinery.cli import build_parser, main
from machinery.config import read_batch, settings_from_env
from machinery.demo import ScriptedClient, demo_script
from machinery.gateway import ROLE_HEADER, SDK_MAX_RETRIES, estimate_tokens, openai_client
from machinery.prices import price_for


def demo_settings(tmp_path: Path, **limits: Any) -> mas.Settings:
    return mas.Settings(demo=True, demo_scenario="approve", log_dir=tmp_path / "logs", **limits)


def demo_clients(scenario: str = "approve") -> Any:
    return lambda: ScriptedClient(demo_script(scenario))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tasks.txt"
    path.write_text(text, encoding="utf-8")
    return path


# -- the batch file ------------------------------------------------------------


def test_a_batch_file_is_lines_or_jsonl_with_comments_and_blanks_skipped(tmp_path) -> None:
    path = write(tmp_path, 'First task\n\n# a comment\n{"task": "Second task", "id": 7}\n  Third task  \n')
    assert read_batch(path) == ["First task", "Second task", "Third task"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ok\n{not json\n", ":2: not valid JSON"),
        ('{"prompt": "x"}\n', ':1: a JSON line needs a "task" string'),
        ("x" * (mas.TASK_MAX_CHARS + 1) + "\n", f":1: the task is {mas.TASK_MAX_CHARS + 1} characters"),
        ("# only a comment\n\n", "has no tasks"),
        ("-\n", ":1: a batch task cannot be read from standard input"),
    ],
)
def test_a_bad_batch_file_is_refused_before_any_call_naming_the_line(tmp_path, console, text, says) -> None:
    path = write(tmp_path, text)
    client = FakeClient()  # any call fails the test
    assert main(["--batch", str(path)], console=console, client=client) == mas.EXIT_USAGE
    assert says in output(console) and client.calls == []


def test_a_missing_batch_file_is_one_clear_line(tmp_path, console) -> None:
    assert main(["--batch", str(tmp_path / "nope.txt")], console=console) == mas.EXIT_USAGE
    assert "cannot read the batch file" in output(console) and "Traceback" not in output(console)


# -- running -------------------------------------------------------------------


def test_every_task_runs_with_its_own_run_id_trace_and_result(tmp_path) -> None:
    tasks = [f"Explain topic {n}" for n in range(1, 6)]
    outcomes = run_batch(tasks, demo_settings(tmp_path), demo_clients(), concurrency=3)
    assert [o.index for o in outcomes] == [1, 2, 3, 4, 5]
    assert all(o.summary["approved"] and o.summary["calls"] == len(mas.ROLES) for o in outcomes)  # each agent once
    assert len({o.summary["run_id"] for o in outcomes}) == len(tasks)
    for o in outcomes:
        events = [json.loads(line) for line in Path(o.summary["trace"]).read_text().splitlines()]
        assert events[0]["task"] == o.task and events[-1]["event"] == "end"
        assert o.task.split()[-1] in o.summary["result"]  # each result is its own task's


def test_a_failing_task_never_stops_the_others(tmp_path) -> None:
    made: list[int] = []

    def make() -> Any:
        made.append(1)
        if len(made) == 1:  # the first task's client breaks with an error that is no server fault
            return FakeClient(planner=[RuntimeError("a bug in a student's agent")])
        return ScriptedClient(demo_script("approve"))

    outcomes = run_batch(["a", "b", "c"], demo_settings(tmp_path), make, concurrency=1)
    reasons = [o.summary["stop_reason"] for o in outcomes]
    assert reasons.count("crashed") == 1 and reasons.count("approved") == 2
    crashed = next(o for o in outcomes if o.summary["stop_reason"] == "crashed")
    assert "a bug in a student's agent" in crashed.summary["stop_detail"]


def test_ctrl_c_stops_the_batch_and_keeps_every_finished_result_and_trace(tmp_path) -> None:
    done: list[BatchOutcome] = []

    def interrupt_after_first(outcome: BatchOutcome) -> None:
        done.append(outcome)
        if len(done) == 1:
            raise KeyboardInterrupt

    tasks = [f"task {n}" for n in range(1, 6)]
    outcomes = run_batch(tasks, demo_settings(tmp_path), demo_clients(), concurrency=1, on_done=interrupt_after_first)
    assert len(outcomes) == len(tasks)
    first = done[0].summary  # the task that finished before Ctrl-C, whichever slot it has
    assert first["approved"] and Path(first["trace"]).read_text().splitlines()[-1].count('"end"')
    later = {o.summary["stop_reason"] for o in outcomes[1:]}
    assert later <= {"interrupted", "approved"} and "interrupted" in later
    assert any(not o.started for o in outcomes)  # tasks not yet begun are reported, not lost
    assert batch_exit_code(outcomes) == mas.EXIT_INTERRUPTED


@pytest.mark.parametrize(
    ("reasons", "code"),
    [
        (["approved", "approved"], mas.EXIT_APPROVED),
        (["approved", "escalation_exhausted"], mas.EXIT_NOT_APPROVED),
        (["approved", "config_error", "api_error"], mas.EXIT_USAGE),
        (["config_error", "interrupted"], mas.EXIT_INTERRUPTED),
    ],
)
def test_batch_exit_codes(reasons, code) -> None:
    outcomes = [BatchOutcome(i, "t", {"stop_reason": r}) for i, r in enumerate(reasons)]
    assert batch_exit_code(outcomes) == code


# -- the shared budget -----------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    ceiling=st.integers(200, 5_000),
    calls=st.lists(st.tuples(st.integers(1, 400), st.integers(1, 600), st.floats(0, 1)), min_size=1, max_size=40),
)
def test_concurrent_reservations_never_jointly_overshoot_the_ceiling(ceiling, calls) -> None:
    budget = BatchBudget(max_tokens=ceiling)
    barrier = threading.Barrier(len(calls))

    def one(prompt: int, completion_cap: int, used_share: float) -> None:
        barrier.wait()  # every thread reserves at the same moment
        try:
            allowed, held, usd = budget.reserve(prompt, completion_cap, None)
        except mas.BudgetExhausted:
            return
        assert allowed <= completion_cap
        budget.settle((held, usd), prompt + int(allowed * used_share), 0.0)  # real usage is at most the reservation

    threads = [threading.Thread(target=one, args=call) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.spent_tokens <= ceiling


def test_a_batch_token_ceiling_stops_tasks_before_they_overshoot(tmp_path) -> None:
    ceiling = 1_500  # room for about two approve runs of the demo
    budget = BatchBudget(max_tokens=ceiling)
    outcomes = run_batch(
        [f"task {n}" for n in range(6)], demo_settings(tmp_path), demo_clients(), concurrency=3, budget=budget
    )
    reasons = [o.summary["stop_reason"] for o in outcomes]
    assert "token_budget" in reasons and "approved" in reasons
    assert budget.spent_tokens <= ceiling
    assert sum(o.summary["total_tokens"] for o in outcomes) == budget.spent_tokens  # settled on what was counted
    stopped = next(o for o in outcomes if o.summary["stop_reason"] == "token_budget")
    assert "batch's token ceiling" in stopped.summary["stop_detail"]


def test_a_batch_cost_ceiling_holds_with_priced_models(tmp_path) -> None:
    price = price_for("gpt-4o")
    assert price is not None
    ceiling = 0.005
    budget = BatchBudget(max_cost=ceiling)

    def honest(text: str) -> Any:  # the prompt counted as the gateway estimates it, as the per-run cap assumes too
        def reply(request: dict[str, Any]) -> Any:  # and never more written than max_tokens, as a real server
            allowed = request.get("max_tokens") or request.get("max_completion_tokens") or 100
            return completion(text, estimate_tokens(request["messages"]), min(100, allowed), model="gpt-4o")

        return reply

    def make() -> Any:
        answers = {"planner": "1. Step.", "worker": "A draft.", "critic": '{"approved": false, "feedback": "No."}'}
        return FakeClient(**{role: [honest(text)] * 9 for role, text in answers.items()})

    settings_ = mas.Settings(default_model="gpt-4o", log_dir=tmp_path, max_plans=3)
    outcomes = run_batch(["a", "b", "c", "d"], settings_, make, concurrency=2, budget=budget)
    assert budget.spent_usd <= ceiling
    assert "cost_budget" in {o.summary["stop_reason"] for o in outcomes}


# -- the shared rate limit -----------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def test_requests_per_minute_make_the_next_call_wait_for_the_window() -> None:
    t = FakeTime()
    limit = RateLimit(rpm=2, clock=t.clock, wait=t.wait)
    limit.acquire(10)
    limit.acquire(10)
    assert t.waits == []
    limit.acquire(10)  # the third call in a minute waits for the first to leave the window
    assert t.now == pytest.approx(RATE_WINDOW_S)


def test_tokens_per_minute_pace_calls_and_a_429_pauses_everyone() -> None:
    t = FakeTime()
    limit = RateLimit(tpm=1_000, clock=t.clock, wait=t.wait)
    limit.acquire(600)
    limit.acquire(600)  # 1,200 > 1,000 in one window: waits for the first to age out
    assert t.now == pytest.approx(RATE_WINDOW_S)
    limit.back_off(5.0)
    before = t.now
    limit.acquire(1)
    assert t.now - before == pytest.approx(5.0)


def test_a_stopped_batch_stops_a_waiting_call() -> None:
    limit = RateLimit(rpm=1)
    limit.acquire(1)
    limit.stop()
    with pytest.raises(mas.StopRun) as stopped:
        limit.acquire(1)
    assert stopped.value.stop_reason == "interrupted"


def test_a_cohort_on_one_key_slows_down_on_429s_instead_of_failing(monkeypatch, tmp_path) -> None:
    """Over real HTTP: the SDK's own retries run out, then the batch pauses everyone and tries again."""
    fast = {"retry-after-ms": "5"}
    too_many = (429, error_body("Rate limit reached for requests", "rate_limit_error"), fast)
    with LoopbackServer() as server:
        server.answers = [too_many] * (SDK_MAX_RETRIES + 2) + [(200, chat_body("1. Step."), {})]
        settings_ = settings_from_env({"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-x"}, log_dir=tmp_path)
        limit = RateLimit()
        gate = GatedClient(openai_client(settings_), BatchBudget(), limit)
        reply = gate.chat.completions.create(
            model="gpt-4o-mini", messages=[mas.user("hi")], max_tokens=100, extra_headers={ROLE_HEADER: "planner"}
        )
    assert reply.choices[0].message.content == "1. Step."
    assert len(server.requests) == SDK_MAX_RETRIES + 3  # two rounds of the SDK's tries, then success


def test_an_exhausted_quota_is_not_waited_out(tmp_path) -> None:
    quota = (429, error_body("You exceeded your current quota", "insufficient_quota"), {"retry-after-ms": "5"})
    with LoopbackServer() as server:
        server.answers = [quota] * (SDK_MAX_RETRIES + 1)
        settings_ = settings_from_env({"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-x"}, log_dir=tmp_path)
        gate = GatedClient(openai_client(settings_), BatchBudget(), RateLimit())
        with pytest.raises(Exception, match="quota"):
            gate.chat.completions.create(model="gpt-4o-mini", messages=[mas.user("hi")], max_tokens=100)
    assert len(server.requests) == SDK_MAX_RETRIES + 1


# -- the command line ------------------------------------------------------------


def test_batch_cli_json_prints_one_object_per_task_and_writes_results(tmp_path, console) -> None:
    path = write(tmp_path, "one\ntwo\nthree\n")
    out = tmp_path / "results.jsonl"
    code = main(["--batch", str(path), "--json", "--output", str(out), "--demo-scenario", "approve"], console=console)
    assert code == mas.EXIT_APPROVED
    lines = [json.loads(line) for line in output(console).splitlines()]
    assert sorted(d["task"] for d in lines) == ["one", "three", "two"]
    assert all(d["approved"] and d["demo"] for d in lines)
    assert len(out.read_text().splitlines()) == 3


def test_batch_cli_shows_progress_and_a_summary_table(tmp_path, console) -> None:
    path = write(tmp_path, "one\ntwo\n")
    code = main(["--batch", str(path), "--demo-scenario", "exhaust", "--concurrency", "2"], console=console)
    shown = output(console)
    assert code == mas.EXIT_NOT_APPROVED
    assert "scripted demo model (offline), not a real LLM" in shown
    assert "2/2 tasks done · 0 approved" in shown and "Batch results" in shown
    assert shown.count("escalation_exhausted") >= 2


def test_default_concurrency_is_the_documented_constant() -> None:
    args = build_parser().parse_args(["--batch", "f"])
    assert args.concurrency == BATCH_CONCURRENCY


def test_a_batch_task_shares_the_per_task_limits(tmp_path) -> None:
    outcomes = run_batch(["a", "b"], demo_settings(tmp_path, max_iterations=1), demo_clients("exhaust"), concurrency=2)
    assert [o.summary["stop_reason"] for o in outcomes] == ["max_iterations"] * 2


@settings(max_examples=40, deadline=None)
@given(
    rpm=st.integers(1, 10),
    tpm=st.integers(100, 2_000),
    calls=st.lists(st.tuples(st.integers(1, 800), st.floats(0, 30)), min_size=1, max_size=30),
)
def test_no_window_of_a_minute_holds_more_than_the_limits_allow(rpm, tpm, calls) -> None:
    t = FakeTime()
    limit = RateLimit(rpm=rpm, tpm=tpm, clock=t.clock, wait=t.wait)
    sent: list[tuple[float, int]] = []
    for tokens, pause in calls:
        t.now += pause
        limit.acquire(tokens)
        sent.append((t.now, tokens))
        window = [n for when, n in sent if when + RATE_WINDOW_S > t.now]
        assert len(window) <= rpm
        assert sum(window) <= tpm or len(window) == 1  # a call bigger than the limit runs, alone


def test_a_call_settles_the_window_on_the_tokens_the_server_counted() -> None:
    t = FakeTime()
    limit = RateLimit(tpm=1_000, clock=t.clock, wait=t.wait)
    entry = limit.acquire(900)  # admitted at its worst case
    limit.settle(entry, 200)  # the server counted far fewer
    limit.acquire(700)
    assert t.waits == []  # 200 + 700 fit: no wait


def test_a_real_ctrl_c_stops_a_batch_process_and_keeps_its_finished_work(tmp_path) -> None:
    """SIGINT to a real process in the middle of a batch over HTTP: exit 130, finished results and traces kept."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from bench.server import BenchServer

    root = Path(__file__).resolve().parent.parent
    tasks = write(tmp_path, "".join(f"Explain topic {n}\n" for n in range(1, 7)))
    results, logs = tmp_path / "results.jsonl", tmp_path / "logs"
    with BenchServer("approve", latency=0.15) as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-loopback", "PYTHONPATH": str(root)}
        command = [sys.executable, str(root / "multi_agent_system.py"), "--batch", str(tasks), "--concurrency", "1"]
        command += ["--quiet", "--output", str(results), "--log-dir", str(logs)]
        process = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=interruptible
        )
        deadline = time.monotonic() + 30
        while not (results.exists() and results.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == mas.EXIT_INTERRUPTED, stderr
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(lines) == 6 and lines[0]["approved"]  # every task is accounted for, the finished one first
    assert {d["stop_reason"] for d in lines[1:]} <= {"approved", "interrupted"}
    for trace in logs.glob("*.jsonl"):
        assert json.loads(trace.read_text().splitlines()[-1])["event"] == "end"  # every started run closed its trace
    assert b"Traceback" not in stderr


def test_a_batch_cost_ceiling_needs_known_prices(tmp_path, console, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    path = write(tmp_path, "one\n")
    code = main(["--batch", str(path), "--model", "llama3.2", "--batch-max-cost", "1"], console=console)
    assert code == mas.EXIT_USAGE and "--batch-max-cost needs a price" in output(console)
