"""The command line: exit codes, output modes, the trace, the result file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

import multi_agent_system as mas
from conftest import LOOP_ROLES, FakeClient, completion, ladder, output, verdict
from machinery.cli import main
from machinery.demo import DEMO_SCENARIOS
from machinery.output import Display

SECRET = "sk-test-SECRET-do-not-log-4242"


def trace_events(tmp_path: Path) -> list[dict]:
    (path,) = (tmp_path / "logs").glob("*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_no_key_runs_the_scripted_demo_and_says_so(console) -> None:
    code = main(["Write a haiku about agents"], console=console)
    shown = output(console)
    assert code == 0
    assert "Scripted demo model, not a real LLM" in shown
    assert "stop reason: approved" in shown and "Spending by role" in shown


@pytest.mark.parametrize("scenario", sorted(DEMO_SCENARIOS))
def test_demo_scenarios_exit_codes(console, scenario: str) -> None:
    """0 when the scenario's verdicts reach an approval within the default limits, 1 when they do not."""
    approved = ladder(DEMO_SCENARIOS[scenario]).stop_reason == "approved"
    assert main(["Write a haiku", "--demo-scenario", scenario], console=console) == (0 if approved else 1)


def test_json_mode_prints_one_object(console, tmp_path: Path) -> None:
    code = main(["Write a haiku", "--json", "--demo-scenario", "exhaust"], console=console)
    data = json.loads(output(console))
    expected = ladder(DEMO_SCENARIOS["exhaust"])  # never approved: as far as the default limits allow
    events = trace_events(tmp_path)
    calls = [e["role"] for e in events if e["event"] == "call"]
    verdicts = [e for e in events if e["event"] == "verdict"]  # one a round, whether code or the critic decided
    assert code == 1
    assert data["approved"] is False and data["stop_reason"] == expected.stop_reason
    assert (data["iterations"], data["plans"], data["demo"]) == (expected.rounds, expected.plans, True)
    assert data["calls"] == len(calls)
    assert [calls.count("planner"), calls.count("worker"), len(verdicts)] == [
        expected.plans,
        expected.rounds,
        expected.rounds,
    ]
    assert data["total_tokens"] > 0 and data["cost_usd"] == 0
    assert Path(data["trace"]).exists()


def test_quiet_prints_only_the_result(console) -> None:
    assert main(["Write a haiku about agents", "--quiet"], console=console) == 0
    assert output(console).strip().count("\n") == 2  # three lines of haiku, nothing else


def test_output_file_is_written_only_on_approval(console, tmp_path: Path) -> None:
    assert main(["Write a haiku", "--output", "out/haiku.txt"], console=console) == 0
    assert len((tmp_path / "out/haiku.txt").read_text().splitlines()) == 3
    assert main(["Write a haiku", "--output", "never.txt", "--demo-scenario", "exhaust"], console=console) == 1
    assert not (tmp_path / "never.txt").exists()


def test_task_from_stdin(console, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Write a haiku about agents\n"))
    assert main(["-", "--json"], console=console) == 0
    assert json.loads(output(console))["approved"] is True


@pytest.mark.parametrize("argv", [[], [""], ["   "], ["x" * (mas.TASK_MAX_CHARS + 1)]])
def test_empty_or_oversized_task_is_one_line_and_exit_2(console, argv) -> None:
    assert main(argv, console=console) == 2
    assert output(console).count("\n") == 1 and output(console).startswith("error:")


@pytest.mark.parametrize(
    "argv", [["t", "--max-iterations", "0"], ["t", "--max-tokens", "lots"], ["t", "--quiet", "--json"]]
)
def test_bad_flags_exit_2(capsys, argv) -> None:
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err


def test_max_cost_with_an_unpriced_model_is_refused(console, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert main(["t", "--model", "llama3.2", "--max-cost", "0.01"], console=console) == 2
    assert "none is known for llama3.2" in output(console)


def test_help_reads_as_a_quickstart(capsys) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for needle in ("quickstart", "OPENAI_BASE_URL", "exit codes", "--max-tokens", "--demo-scenario"):
        assert needle in text


def test_trace_records_the_run_and_never_the_key(console, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    client = FakeClient(
        planner=[completion("1. plan")],
        worker=[completion("draft"), completion("draft 2")],
        critic=[verdict(False, "more"), verdict(True, "good")],
    )
    assert main(["task"], console=console, client=client) == 0
    events = trace_events(tmp_path)
    # each event by kind, a call by its role; the calls and panels of an agent a student added are left out
    ours = [e for e in events if e.get("role") not in mas.ROLES or e.get("role") in LOOP_ROLES]
    story = [e["role"] if e["event"] == "call" else e["event"] for e in ours]
    assert story == [
        "start",
        "planner",
        "step",  # each panel, as drawn: what --show draws again
        "worker",
        "step",
        "critic",
        "verdict",
        "step",
        "escalation",
        "worker",
        "step",
        "critic",
        "verdict",
        "step",
        "end",
    ]
    call = next(e for e in events if e["event"] == "call")
    for key in (
        "role",
        "model",
        "prompt",
        "reply",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "latency_s",
    ):
        assert key in call
    assert call["role"] == "planner" and call["cost_usd"] > 0
    assert events[-1]["stop_reason"] == "approved" and events[-1]["result"] == "draft 2"
    assert len({e["run_id"] for e in events}) == 1
    assert SECRET not in (tmp_path / "logs").joinpath(f"{events[0]['run_id']}.jsonl").read_text()
    assert SECRET not in output(console)


def test_per_role_models_from_flags_and_environment(console, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("CRITIC_MODEL", "gpt-4o")
    client = FakeClient(planner=[completion("p")], worker=[completion("d")], critic=[verdict(True)])
    assert main(["task", "--planner-model", "gpt-4.1-mini"], console=console, client=client) == 0
    models = {role: {c["model"] for c in client.calls_of(role)} for role in LOOP_ROLES}
    assert models == {"planner": {"gpt-4.1-mini"}, "worker": {mas.DEFAULT_MODEL}, "critic": {"gpt-4o"}}


def test_ctrl_c_exits_130_with_an_end_event(console, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    client = FakeClient(planner=[completion("p")], worker=[KeyboardInterrupt()])
    assert main(["task"], console=console, client=client) == 130
    assert trace_events(tmp_path)[-1]["stop_reason"] == "interrupted"


def test_unwritable_log_dir_is_a_usage_error(console, tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file, not a folder")
    assert main(["task", "--log-dir", "blocked"], console=console) == 2
    assert "cannot write the trace" in output(console)


def test_quiet_failure_is_exactly_one_error_line(console) -> None:
    assert main(["Write a haiku", "--quiet", "--demo-scenario", "exhaust"], console=console) == 1
    stop_reason = ladder(DEMO_SCENARIOS["exhaust"]).stop_reason
    assert output(console).count("\n") == 1 and stop_reason in output(console)


def test_a_model_name_without_a_key_warns_that_the_demo_runs(console) -> None:
    assert main(["Write a haiku", "--model", "llama3.2"], console=console) == 0
    assert "model names are ignored" in output(console) and "no OPENAI_API_KEY" in output(console)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_non_finite_or_non_positive_limits_are_refused(capsys, value: str) -> None:
    assert main(["t", "--max-cost", value]) == 2
    assert "greater than 0" in capsys.readouterr().err


def test_an_unwritable_output_path_is_refused_before_any_call(console, tmp_path: Path) -> None:
    client = FakeClient()  # any model call would fail the test
    assert main(["Write a haiku", "--output", str(tmp_path)], console=console, client=client) == 2
    assert "it is a folder" in output(console) and client.calls == []


def test_ctrl_c_while_reading_the_task_from_stdin_exits_130(console, monkeypatch) -> None:
    class Interrupted(io.StringIO):
        def read(self, *args: object) -> str:
            raise KeyboardInterrupt

    monkeypatch.setattr("sys.stdin", Interrupted())
    assert main(["-"], console=console) == 130


def test_a_long_error_is_still_one_line(console, monkeypatch) -> None:
    narrow = Display(Console(file=io.StringIO(), width=40))
    narrow.error("x " * 60)
    assert narrow.errors.file.getvalue().count("\n") == 1


def test_the_demo_critic_speaks_to_the_task(console) -> None:
    assert main(["Explain recursion", "--demo-scenario", "exhaust", "--json"], console=console) == 1
    (trace,) = Path("logs").glob("*.jsonl")
    assert "haiku" not in trace.read_text().lower()
