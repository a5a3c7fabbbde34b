"""The loop's promises: escalation, budgets, history, stop reasons. All against the real agents."""

from __future__ import annotations

import json
from typing import Any

import pytest

import multi_agent_system as mas
from conftest import FakeClient, completion, verdict

HAIKU_4_LINES = "one\ntwo\nthree\nfour"
HAIKU_3_LINES = "one\ntwo\nthree"


def events(llm: mas.LLM, kind: str) -> list[dict[str, Any]]:
    assert llm.trace.path is not None
    return [e for e in map(json.loads, llm.trace.path.read_text().splitlines()) if e["event"] == kind]


# -- the escalation ladder, one test per path ----------------------------------


def test_approval_on_the_first_try_takes_three_calls(make_llm) -> None:
    client = FakeClient(completion("1. Write it."), completion(HAIKU_3_LINES), verdict(True, "Good."))
    llm = make_llm(client)
    state = mas.orchestrate("Write a haiku", llm)
    assert client.roles() == ["planner", "worker", "critic"]
    assert (state["stop_reason"], state["status"], state["iteration"]) == ("approved", "approved", 1)
    assert state["result"] == HAIKU_3_LINES
    assert state["total_tokens"] == {"prompt": 300, "completion": 60, "total": 360}
    assert mas.exit_code_for(state["stop_reason"]) == 0


def test_first_rejection_means_the_worker_revises_with_the_feedback(make_llm) -> None:
    client = FakeClient(
        completion("1. Write it."),
        completion(HAIKU_4_LINES),
        verdict(False, "Cut the fourth line."),
        completion(HAIKU_3_LINES),
        verdict(True),
    )
    state = mas.orchestrate("Write a haiku", make_llm(client))
    assert client.roles() == ["planner", "worker", "critic", "worker", "critic"]
    assert state["stop_reason"] == "approved" and state["plan_version"] == 1
    revision = client.calls[3]["messages"]
    assert revision[2] == {"role": "assistant", "content": HAIKU_4_LINES}  # its own rejected draft
    assert "Cut the fourth line." in revision[3]["content"]


def test_second_rejection_escalates_to_a_new_plan_told_why(make_llm) -> None:
    client = FakeClient(
        completion("1. Plan A."),
        completion("draft 1"),
        verdict(False, "Wrong form."),
        completion("draft 2"),
        verdict(False, "Still the wrong form."),
        completion("1. Plan B."),
        completion("draft 3"),
        verdict(True),
    )
    llm = make_llm(client)
    state = mas.orchestrate("Write a haiku", llm)
    assert client.roles() == [
        "planner",
        "worker",
        "critic",
        "worker",
        "critic",
        "planner",
        "worker",
        "critic",
    ]
    replan = client.calls[5]["messages"][1]["content"]
    assert "Plan A." in replan and "Still the wrong form." in replan
    assert (state["plan"], state["plan_version"], state["worker_attempts"]) == ("1. Plan B.", 2, 1)
    assert [e["action"] for e in events(llm, "escalation")] == ["revise", "replan"]


def test_escalation_exhausted_after_max_plans_each_rejected_twice(make_llm) -> None:
    replies = []
    for n in range(3):
        replies += [completion(f"plan {n}"), completion("d"), verdict(False), completion("d"), verdict(False)]
    client = FakeClient(*replies)
    llm = make_llm(client, max_plans=3)
    state = mas.orchestrate("task", llm)
    assert len(client.calls) == 15 and client.roles().count("planner") == 3
    assert (state["stop_reason"], state["iteration"], state["plan_version"]) == ("escalation_exhausted", 6, 3)
    assert events(llm, "escalation")[-1]["action"] == "give_up"
    assert mas.exit_code_for(state["stop_reason"]) == 1


def test_always_rejected_stops_at_max_iterations_without_a_wasted_planner_call(make_llm) -> None:
    """10 iterations, re-plans after rounds 2, 4, 6 and 8; none after round 10."""
    replies = []
    for n in range(5):
        replies += [completion(f"plan {n}"), completion("d"), verdict(False), completion("d"), verdict(False)]
    client = FakeClient(*replies)  # a sixth planner call would find the queue empty and fail
    state = mas.orchestrate("task", make_llm(client, max_plans=99))
    assert len(client.calls) == 25
    assert client.roles().count("planner") == 5 and client.roles()[-1] == "critic"
    assert (state["stop_reason"], state["iteration"]) == ("max_iterations", 10)


def test_an_odd_iteration_limit_still_never_pays_for_an_unused_plan(make_llm) -> None:
    client = FakeClient(
        completion("p1"),
        completion("d"),
        verdict(False),
        completion("d"),
        verdict(False),
        completion("p2"),
        completion("d"),
        verdict(False),
    )
    state = mas.orchestrate("task", make_llm(client, max_iterations=3))
    assert len(client.calls) == 8 and state["stop_reason"] == "max_iterations"


@pytest.mark.parametrize(
    "attempts, plan, expected",
    [
        (1, 1, "revise"),
        (mas.REJECTIONS_BEFORE_REPLAN - 1, 1, "revise"),
        (mas.REJECTIONS_BEFORE_REPLAN, 1, "replan"),
        (mas.REJECTIONS_BEFORE_REPLAN, 2, "replan"),
        (mas.REJECTIONS_BEFORE_REPLAN, 3, "give_up"),
    ],
)
def test_decide_next_step_every_branch(attempts: int, plan: int, expected: str) -> None:
    settings = mas.Settings(max_plans=3)
    assert mas.decide_next_step(max(attempts, 1), plan, settings) == expected


# -- the scripted demo model walks the same paths -------------------------------


@pytest.mark.parametrize(
    "scenario, calls, reason",
    [
        ("approve", 3, "approved"),
        ("revise", 5, "approved"),
        ("escalate", 8, "approved"),
        ("exhaust", 15, "escalation_exhausted"),
    ],
)
def test_demo_scenarios(make_llm, scenario: str, calls: int, reason: str) -> None:
    client = mas.ScriptedClient(mas.demo_script(scenario))
    state = mas.orchestrate("Write a haiku about agents", make_llm(client, demo=True))
    assert (len(client.requests), state["stop_reason"]) == (calls, reason)
    if reason == "approved":
        assert mas.measure_draft(state["result"])["lines"] == 3


# -- budget gates --------------------------------------------------------------


def test_token_cap_is_never_exceeded_and_completions_are_clamped(make_llm) -> None:
    client = mas.ScriptedClient(mas.demo_script("exhaust"))
    llm = make_llm(client, demo=True, max_tokens=2_500, max_plans=99)
    state = mas.orchestrate("Write a haiku about agents", llm)
    assert state["stop_reason"] == "token_budget"
    assert 0 < state["total_tokens"]["total"] <= 2_500
    limits = [r["max_tokens"] for r in client.requests]
    assert min(limits) < mas.ROLES["worker"].max_tokens  # the last calls were clamped to fit
    spent = 0
    for call in events(llm, "call"):  # each call was allowed only what remained
        assert mas.estimate_tokens(call["prompt"]) + call["max_tokens"] <= 2_500 - spent
        spent += call["prompt_tokens"] + call["completion_tokens"]


def test_a_call_that_cannot_fit_is_not_made(make_llm) -> None:
    client = FakeClient(completion("plan", 400, 100), completion("draft", 400, 100))
    state = mas.orchestrate("task", make_llm(client, max_tokens=1_100))
    assert len(client.calls) == 2  # the critic's call would not fit, so it never happened
    assert state["stop_reason"] == "token_budget" and "critic call skipped" in state["stop_detail"]
    assert state["result"] == "draft"  # the work already paid for is kept


def test_warns_once_at_80_percent_of_the_token_budget(make_llm, console) -> None:
    # 850 + 1050 = 76%, then the critic's 120 tokens cross 80%
    client = FakeClient(completion("p", 100, 750), completion("d", 100, 950), verdict(True))
    llm = make_llm(client, max_tokens=2_500)
    mas.orchestrate("task", llm)
    warnings = [e["message"] for e in events(llm, "warning")]
    assert len([w for w in warnings if "of the budget" in w]) == 1
    assert "of the budget" in console.file.getvalue()


def test_cost_cap_stops_before_it_is_crossed_and_cost_is_real(make_llm) -> None:
    # gpt-4o-mini: 1000 in + 500 out = $0.00045 a call
    client = FakeClient(completion("p", 1000, 500), completion("d", 1000, 500))
    state = mas.orchestrate("task", make_llm(client, max_cost=0.00092))
    assert state["stop_reason"] == "cost_budget"
    assert len(client.calls) == 2  # $0.00002 left cannot pay for the critic's prompt
    assert state["cost_usd"] == pytest.approx(0.0009)
    assert mas.format_cost(state["cost_usd"]) == "$0.000900"


def test_cost_cap_clamps_a_call_to_what_the_money_left_can_buy(make_llm) -> None:
    # gpt-4o-mini: 100 in + 740 out = $0.000459 a call
    client = FakeClient(completion("p", 100, 740), completion("d", 100, 740), verdict(True, "ok"))
    mas.orchestrate("task", make_llm(client, max_cost=0.00105))
    critic = client.calls[2]
    price = mas.price_for("gpt-4o-mini")
    prompt = mas.estimate_tokens(critic["messages"], [mas.verdict_schema()])
    worst_case = prompt * price.input_per_token + critic["max_tokens"] * price.output_per_token
    assert critic["max_tokens"] < mas.ROLES["critic"].max_tokens
    assert 2 * 0.000459 + worst_case <= 0.00105


def test_unknown_price_is_reported_as_unknown(make_llm) -> None:
    client = FakeClient(completion("p", model="llama3.2"), completion("d"), verdict(True))
    state = mas.orchestrate("task", make_llm(client, default_model="llama3.2"))
    assert state["cost_usd"] is None and mas.format_cost(None) == "cost unknown"


def test_timeout_stops_before_the_next_call(make_llm) -> None:
    now = [0.0]

    class SlowClient(FakeClient):
        def create(self, **request: Any) -> Any:
            now[0] += 30  # every call takes 30 seconds
            return super().create(**request)

    client = SlowClient(completion("p"), completion("d"))
    llm = make_llm(client, timeout=50)
    llm._clock, llm._started = (lambda: now[0]), 0.0
    state = mas.orchestrate("task", llm)
    assert len(client.calls) == 2 and state["stop_reason"] == "timeout"
    assert client.calls[1]["timeout"] == pytest.approx(20)  # a call gets only the time left


def test_ctrl_c_keeps_the_draft_and_writes_the_end_event(make_llm) -> None:
    client = FakeClient(completion("p"), completion("draft"), KeyboardInterrupt())
    llm = make_llm(client)
    state = mas.orchestrate("task", llm)
    assert state["stop_reason"] == "interrupted" and state["result"] == "draft"
    assert mas.exit_code_for(state["stop_reason"]) == 130
    assert events(llm, "end")[0]["stop_reason"] == "interrupted"


def test_usage_missing_from_the_server_is_estimated_and_marked(make_llm) -> None:
    client = FakeClient(completion("p", None, None), completion("d"), verdict(True))
    llm = make_llm(client)
    state = mas.orchestrate("task", llm)
    assert llm.ledger.roles["planner"].estimated and llm.ledger.estimated
    assert state["total_tokens"]["total"] > 240
    assert events(llm, "call")[0]["usage_estimated"] is True


# -- agents, history and grounded critique --------------------------------------


def test_agents_called_out_of_order_fail_fast_without_a_call(make_llm) -> None:
    client = FakeClient()
    llm = make_llm(client)
    state = mas.new_state("task")
    with pytest.raises(mas.OutOfOrderError, match="run planner_agent first"):
        mas.worker_agent(state, llm)
    with pytest.raises(mas.OutOfOrderError, match="worker_agent first"):
        mas.critic_agent(state, llm)
    assert client.calls == []


def test_critic_sees_measured_facts_plan_and_its_earlier_feedback(make_llm) -> None:
    client = FakeClient(
        completion("1. Three lines."),
        completion(HAIKU_4_LINES),
        verdict(False, "Cut line four."),
        completion("```python\ndef f(:\n```"),
        verdict(True),
    )
    mas.orchestrate("Write a haiku", make_llm(client))
    first, second = client.calls[2]["messages"][1]["content"], client.calls[4]["messages"][1]["content"]
    assert "non-empty lines: 4" in first and "1. Three lines." in first
    assert "does NOT parse" in second and "Cut line four." in second
    assert client.calls[2]["response_format"]["type"] == "json_schema"


def test_an_empty_draft_is_rejected_by_code_without_a_critic_call(make_llm) -> None:
    client = FakeClient(completion("p"), completion("  "), completion("real draft"), verdict(True))
    state = mas.orchestrate("task", make_llm(client))
    assert client.roles() == ["planner", "worker", "worker", "critic"]
    assert state["stop_reason"] == "approved"
    assert state["history"][1]["feedback"].startswith("The draft was empty")


def test_history_records_plans_reviews_and_escalations(make_llm) -> None:
    client = FakeClient(
        completion("p"), completion("d1"), verdict(False, "no"), completion("d2"), verdict(True)
    )
    state = mas.orchestrate("task", make_llm(client))
    assert [h["kind"] for h in state["history"]] == ["plan", "review", "escalation", "review"]
    assert state["history"][1]["draft"] == "d1" and state["history"][3]["approved"] is True


def test_prompt_size_stays_bounded_as_iterations_grow(make_llm) -> None:
    """Drafts and feedback far longer than any cap, for ten rounds: no prompt outgrows the bound."""
    long_draft, long_feedback = "word " * 4_000, "fix " * 2_000
    replies = []
    for _ in range(5):
        replies += [
            completion("step " * 1_000),
            completion(long_draft),
            verdict(False, long_feedback),
            completion(long_draft),
            verdict(False, long_feedback),
        ]
    client = FakeClient(*replies)
    mas.orchestrate("t" * mas.TASK_MAX_CHARS, make_llm(client, max_plans=99, max_tokens=10**9))
    sizes = [sum(len(m["content"]) for m in call["messages"]) for call in client.calls]
    assert max(sizes) <= mas.PROMPT_MAX_CHARS
    worker_sizes = [s for s, role in zip(sizes, client.roles(), strict=True) if role == "worker"]
    # once the history window is full, the same step of the next plan costs the same (give or take digits)
    assert worker_sizes[-1] <= worker_sizes[-3] + 20 and worker_sizes[-2] <= worker_sizes[-4] + 20
    assert (
        max(len(p) for p in (mas.PLANNER_PROMPT, mas.WORKER_PROMPT, mas.CRITIC_PROMPT))
        <= mas.SYSTEM_PROMPT_MAX_CHARS
    )


def test_markup_in_model_text_is_printed_literally(make_llm, console) -> None:
    client = FakeClient(completion("[bold red]plan[/]"), completion("[link=x]draft[/link]"), verdict(True))
    mas.orchestrate("task", make_llm(client, default_model="odd[/]model"))
    shown = console.file.getvalue()
    assert "[bold red]plan[/]" in shown and "[link=x]draft[/link]" in shown
    assert "odd[/]model" in shown  # names from the environment are not markup either


def test_verbose_shows_full_prompts(make_llm, console) -> None:
    client = FakeClient(completion("p"), completion("d"), verdict(True))
    mas.orchestrate("a very particular task", make_llm(client, mode="verbose"))
    assert "prompt → planner" in console.file.getvalue()
    assert mas.PLANNER_PROMPT.splitlines()[0] in console.file.getvalue()


def test_importing_the_module_does_no_work(tmp_path) -> None:
    """No client, no files, no output at import: a fresh interpreter where making a client is an error."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import openai\n"
        "def refuse(*a, **k): raise AssertionError('an openai client was made at import')\n"
        "openai.OpenAI = refuse\n"
        "import multi_agent_system\n"
    )
    root = Path(mas.__file__).parent
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "OPENAI_API_KEY": "sk-x", "PATH": "/usr/bin:/bin"})
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert list(tmp_path.iterdir()) == []  # no logs/ folder, no trace


def test_critic_is_told_when_the_draft_was_cut_off(make_llm) -> None:
    client = FakeClient(
        completion("p"),
        completion("half a dra", finish_reason="length"),
        verdict(False),
        completion("whole draft"),
        verdict(True),
    )
    mas.orchestrate("task", make_llm(client))
    assert "cut off at its token limit" in client.calls[2]["messages"][1]["content"]
    assert "cut off" not in client.calls[4]["messages"][1]["content"]


def test_after_a_replan_old_drafts_are_lessons_not_turns(make_llm) -> None:
    client = FakeClient(
        completion("plan A"), completion("draft A1"), verdict(False, "fb A1"),
        completion("draft A2"), verdict(False, "fb A2"),
        completion("plan B"), completion("draft B1"), verdict(True),
    )  # fmt: skip
    mas.orchestrate("task", make_llm(client))
    first_on_new_plan = client.calls[6]["messages"]
    assert [m["role"] for m in first_on_new_plan] == ["system", "user"]
    assert "fb A1" in first_on_new_plan[1]["content"] and "fb A2" in first_on_new_plan[1]["content"]
    assert "draft A2" not in first_on_new_plan[1]["content"]


def test_a_verdict_cut_off_at_max_tokens_is_not_an_approval(make_llm) -> None:
    client = FakeClient(
        completion("p"), completion("d"), completion('{"approved": true, "feedback": "Fine"}', finish_reason="length"),
        completion("d2"), verdict(True),
    )  # fmt: skip
    llm = make_llm(client)
    state = mas.orchestrate("task", llm)
    assert state["history"][1]["approved"] is False and state["iteration"] == 2
    assert events(llm, "verdict")[0]["why"] == "the verdict was cut off at max_tokens"


def test_a_cut_off_draft_is_never_approved_whatever_the_critic_says(make_llm) -> None:
    client = FakeClient(completion("p"), completion("half a dr", finish_reason="length"), verdict(True),
                        completion("whole draft"), verdict(True))
    state = mas.orchestrate("task", make_llm(client))
    assert state["history"][1]["approved"] is False and state["result"] == "whole draft"
    assert state["stop_reason"] == "approved" and state["iteration"] == 2


def test_verbose_shows_the_critics_raw_reply(make_llm, console) -> None:
    client = FakeClient(completion("p"), completion("d"), completion("Thinking...\nAPPROVED: YES"))
    mas.orchestrate("task", make_llm(client, mode="verbose"))
    assert "raw reply ← critic" in console.file.getvalue() and "Thinking..." in console.file.getvalue()


def test_estimates_learn_when_a_server_counts_more_prompt_tokens(make_llm) -> None:
    """The planner's ~100-token prompt is counted as 900: the worker's estimate is scaled, and no longer fits."""
    client = FakeClient(completion("plan", 900, 100), completion("never sent"))
    state = mas.orchestrate("task", make_llm(client, max_tokens=2_000))
    assert len(client.calls) == 1 and state["stop_reason"] == "token_budget"


def test_tool_schemas_count_towards_the_estimate() -> None:
    messages = [{"role": "user", "content": "hi"}]
    tools = [{"type": "function", "function": {"name": "lookup", "description": "x" * 500}}]
    assert mas.estimate_tokens(messages, [tools]) >= mas.estimate_tokens(messages) + 200
