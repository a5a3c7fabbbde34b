"""The loop's promises: escalation, budgets, history, stop reasons. All against the real agents.

Replies are queued per role, and call counts are asserted per role, so an agent a
student adds (it gets a labelled default reply) changes none of these tests. The
expected numbers come from the chapter's constants: a plan is rejected
REJECTIONS_BEFORE_REPLAN times before a re-plan, an "always rejected" run lasts
max_iterations rounds. Where a test passes limits of its own, its expectations are
derived from them.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

import multi_agent_system as mas
from conftest import LOOP_ROLES, FakeClient, completion, ladder, per_role, verdict
from machinery.cli import exit_code_for
from machinery.demo import DEMO_SCENARIOS, ScriptedClient, demo_script
from machinery.gateway import LLM, estimate_tokens, request_role
from machinery.prices import PRICES_PER_MILLION, format_cost, price_for
from machinery.text import times
from machinery.verdicts import verdict_schema

R = mas.REJECTIONS_BEFORE_REPLAN  # rejections of one plan before the planner is asked again
HAIKU_4_LINES = "one\ntwo\nthree\nfour"
HAIKU_3_LINES = "one\ntwo\nthree"
POEM = "Write a short poem about agents"  # states no requirement code could check: the critic's verdicts decide


def events(llm: LLM, kind: str) -> list[dict[str, Any]]:
    assert llm.trace.path is not None
    return [e for e in map(json.loads, llm.trace.path.read_text().splitlines()) if e["event"] == kind]


def reviews(state: mas.SharedState) -> list[mas.HistoryItem]:
    return [item for item in state["history"] if item["kind"] == "review"]


# -- the escalation ladder, one test per path ----------------------------------


def counts(client: FakeClient) -> list[int]:
    """Calls made by the planner, the worker and the critic."""
    return [client.roles().count(role) for role in LOOP_ROLES]


def ladder_actions(plans: int, last: str) -> list[str]:
    """The escalation events of ``plans`` plans each rejected R times: revise, ..., replan, ..., then ``last``."""
    return (["revise"] * (R - 1) + ["replan"]) * (plans - 1) + ["revise"] * (R - 1) + [last]


def test_approval_on_the_first_try_takes_three_calls(make_llm) -> None:
    client = FakeClient(
        planner=[completion("1. Write it.")], worker=[completion(HAIKU_3_LINES)], critic=[verdict(True, "Good.")]
    )
    llm = make_llm(client)
    state = mas.orchestrate("Write a haiku", llm)
    assert client.roles(*LOOP_ROLES) == ["planner", "worker", "critic"]
    assert (state["stop_reason"], state["status"], state["iteration"]) == ("approved", "approved", 1)
    assert state["result"] == HAIKU_3_LINES
    spent = {
        role: (llm.ledger.roles[role].prompt_tokens, llm.ledger.roles[role].completion_tokens) for role in LOOP_ROLES
    }
    assert spent == dict.fromkeys(LOOP_ROLES, (100, 20))  # each reply's usage, counted once
    ledger = llm.ledger  # the state mirrors the ledger, every agent's calls included
    assert state["total_tokens"] == {
        "prompt": ledger.prompt_tokens,
        "completion": ledger.completion_tokens,
        "total": ledger.prompt_tokens + ledger.completion_tokens,
    }
    assert exit_code_for(state["stop_reason"]) == 0


def test_first_rejection_means_the_worker_revises_with_the_feedback(make_llm) -> None:
    client = FakeClient(
        planner=[completion("1. Write it.")],
        worker=[completion(HAIKU_4_LINES), completion(HAIKU_3_LINES)],
        critic=[verdict(False, "Cut the fourth line."), verdict(True)],
    )
    state = mas.orchestrate(POEM, make_llm(client))
    assert client.roles(*LOOP_ROLES) == ["planner", "worker", "critic", "worker", "critic"]
    assert state["stop_reason"] == "approved" and state["plan_version"] == 1
    revision = client.calls_of("worker")[1]["messages"]
    assert revision[2] == {"role": "assistant", "content": HAIKU_4_LINES}  # its own rejected draft
    assert "Cut the fourth line." in revision[3]["content"]


def test_second_rejection_escalates_to_a_new_plan_told_why(make_llm) -> None:
    """Plan 1 is rejected REJECTIONS_BEFORE_REPLAN times (twice by default); plan 2 is told why; its first draft passes."""
    client = FakeClient(**per_role([False] * R + [True], plans=2))
    llm = make_llm(client, max_plans=2, max_iterations=R + 1)  # exactly the room this path needs
    state = mas.orchestrate(POEM, llm)
    assert client.roles(*LOOP_ROLES) == ["planner"] + ["worker", "critic"] * R + ["planner", "worker", "critic"]
    first_plan, replan = (call["messages"][1]["content"] for call in client.calls_of("planner"))
    assert f"feedback {R}" in replan and f"feedback {R}" not in first_plan  # told why plan 1 failed
    assert (state["plan"], state["plan_version"], state["worker_attempts"]) == ("1. Step one of plan 2.", 2, 1)
    assert [e["action"] for e in events(llm, "escalation")] == ["revise"] * (R - 1) + ["replan"]
    assert state["stop_reason"] == "approved"


def test_escalation_exhausted_after_max_plans_each_rejected_twice(make_llm) -> None:
    """max_plans plans, each rejected REJECTIONS_BEFORE_REPLAN times (twice by default): a human is needed."""
    plans = 3
    client = FakeClient(**per_role([False] * (plans * R), plans=plans))  # one call more of any agent would run dry
    llm = make_llm(client, max_plans=plans, max_iterations=plans * R + 1)  # the iteration limit is not what stops it
    state = mas.orchestrate("task", llm)
    assert counts(client) == [plans, plans * R, plans * R]
    assert (state["stop_reason"], state["iteration"], state["plan_version"]) == (
        "escalation_exhausted",
        plans * R,
        plans,
    )
    assert [e["action"] for e in events(llm, "escalation")] == ladder_actions(plans, "give_up")
    assert times(R) in state["stop_detail"]  # the message is built from the constant
    assert exit_code_for(state["stop_reason"]) == 1


@pytest.mark.parametrize("limit", [None, 2 * R], ids=["MAX_ITERATIONS", "2 x REJECTIONS_BEFORE_REPLAN"])
def test_always_rejected_stops_at_max_iterations_without_a_wasted_planner_call(make_llm, limit: int | None) -> None:
    """Never approved, plans to spare: the run stops at the iteration limit, with a new plan every
    REJECTIONS_BEFORE_REPLAN rounds and none after the last round (a limit that is a multiple of it
    ends on a re-plan decision: that plan is never paid for)."""
    rounds = mas.MAX_ITERATIONS if limit is None else limit
    plans = math.ceil(rounds / R)
    client = FakeClient(**per_role([False] * rounds, plans=plans))  # one planner call more would run dry
    limits = {} if limit is None else {"max_iterations": limit}
    state = mas.orchestrate("task", make_llm(client, max_plans=plans + 1, **limits))
    assert counts(client) == [plans, rounds, rounds]
    assert client.roles(*LOOP_ROLES)[-1] == "critic"
    assert (state["stop_reason"], state["iteration"]) == ("max_iterations", rounds)
    assert exit_code_for(state["stop_reason"]) == 1


def test_an_odd_iteration_limit_still_never_pays_for_an_unused_plan(make_llm) -> None:
    """A limit one round past a re-plan: the second plan is used for that round, then the run stops."""
    limit = R + 1
    client = FakeClient(**per_role([False] * limit, plans=2))
    state = mas.orchestrate("task", make_llm(client, max_iterations=limit, max_plans=limit + 1))
    assert counts(client) == [2, limit, limit] and state["stop_reason"] == "max_iterations"


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


@pytest.mark.parametrize("scenario", sorted(DEMO_SCENARIOS))
def test_demo_scenarios(make_llm, scenario: str) -> None:
    """Each scenario's verdicts walk the ladder the rules predict (see conftest.ladder), with the default limits."""
    client = ScriptedClient(demo_script(scenario))
    llm = make_llm(client, demo=True)
    state = mas.orchestrate("Write a haiku about agents", llm)
    expected = ladder(DEMO_SCENARIOS[scenario], llm.settings.max_plans, llm.settings.max_iterations)
    roles = [request_role(request) for request in client.requests]
    judged = reviews(state)  # one a round, whether code or the critic decided
    assert [roles.count("planner"), roles.count("worker"), len(judged)] == [
        expected.plans,
        expected.rounds,
        expected.rounds,
    ]
    assert (state["stop_reason"], state["iteration"], state["plan_version"]) == (
        expected.stop_reason,
        expected.rounds,
        expected.plans,
    )
    if expected.stop_reason == "approved":
        assert mas.measure_draft(state["result"])["lines"] == 3


def test_the_demo_scenarios_are_named_for_their_paths() -> None:
    """approve, revise and escalate approve after 0, 1 and REJECTIONS_BEFORE_REPLAN rejections; exhaust never does."""
    verdicts = DEMO_SCENARIOS
    assert (verdicts["approve"], verdicts["revise"]) == ([True], [False, True])
    assert verdicts["escalate"] == [False] * R + [True] and True not in verdicts["exhaust"]


# -- budget gates --------------------------------------------------------------


def test_token_cap_is_never_exceeded_and_completions_are_clamped(make_llm) -> None:
    client = ScriptedClient(demo_script("exhaust"))
    llm = make_llm(client, demo=True, max_tokens=2_500, max_plans=99, max_iterations=99)  # only the budget can stop it
    state = mas.orchestrate("Write a haiku about agents", llm)
    assert state["stop_reason"] == "token_budget"
    assert 0 < state["total_tokens"]["total"] <= 2_500
    limits = [r["max_tokens"] for r in client.requests]
    assert min(limits) < mas.ROLES["worker"].max_tokens  # the last calls were clamped to fit
    spent = 0
    for call in events(llm, "call"):  # each call was allowed only what remained
        assert estimate_tokens(call["prompt"]) + call["max_tokens"] <= 2_500 - spent
        spent += call["prompt_tokens"] + call["completion_tokens"]


def test_a_call_that_cannot_fit_is_not_made(make_llm) -> None:
    budget = 2_000
    left = mas.MIN_USEFUL_COMPLETION // 2  # what the worker's reply leaves: no call can fit in it

    def draft_that_fills_the_budget(request: dict[str, Any]) -> Any:
        return completion("draft", 100, budget - llm.ledger.total_tokens - 100 - left)

    client = FakeClient(planner=[completion("plan")], worker=[draft_that_fills_the_budget], critic=[])
    llm = make_llm(client, max_tokens=budget)
    state = mas.orchestrate("task", llm)
    assert client.roles(*LOOP_ROLES) == ["planner", "worker"]  # the critic's call would not fit, so it never happened
    assert state["total_tokens"]["total"] == budget - left
    assert state["stop_reason"] == "token_budget" and "critic call skipped" in state["stop_detail"]
    assert state["result"] == "draft"  # the work already paid for is kept


def test_warns_once_at_80_percent_of_the_token_budget(make_llm, console) -> None:
    """The planner and worker spend just under TOKEN_WARNING_SHARE (80%) of the budget; a later call crosses it."""
    budget = max(10_000, math.ceil(2_000 / (1 - mas.TOKEN_WARNING_SHARE)))  # 2,000 left for the worker and critic
    threshold = mas.TOKEN_WARNING_SHARE * budget
    planner_tokens = math.floor(threshold) - 60 - 120  # the worker then spends 120: 60 short of the threshold
    client = FakeClient(
        planner=[completion("p", 100, planner_tokens - 100)], worker=[completion("d")], critic=[verdict(True)]
    )
    llm = make_llm(client, max_tokens=budget)
    mas.orchestrate("task", llm)
    trace = [json.loads(line) for line in llm.trace.path.read_text().splitlines()]
    spent, crossing = 0, None
    for i, event in enumerate(trace):
        if event["event"] == "call":
            spent += event["prompt_tokens"] + event["completion_tokens"]
            crossing = i if crossing is None and spent >= threshold else crossing
    warned = [i for i, e in enumerate(trace) if e["event"] == "warning" and "of the budget" in e["message"]]
    assert crossing is not None and warned == [crossing - 1]  # once, logged with the call that crossed the line
    assert "of the budget" in console.file.getvalue()


def test_cost_cap_stops_before_it_is_crossed_and_cost_is_real(make_llm) -> None:
    # gpt-4o-mini: 1000 in + 500 out = $0.00045 a call at the listed price
    per_million_in, per_million_out = PRICES_PER_MILLION["gpt-4o-mini"]
    per_call = (1000 * per_million_in + 500 * per_million_out) / 1_000_000
    left = mas.MIN_USEFUL_COMPLETION * per_million_out / 1_000_000 / 2  # less than the smallest useful reply
    client = FakeClient(planner=[completion("p", 1000, 500)], worker=[completion("d", 1000, 500)], critic=[])
    llm = make_llm(client, max_cost=2 * per_call + left)
    state = mas.orchestrate("task", llm)
    assert state["stop_reason"] == "cost_budget"
    # This server counts ten times the prompt tokens the gate estimated, so which call the gate refuses (the
    # worker's, or the critic's after it) depends on how its estimates learn; either way the cap holds.
    made = client.roles(*LOOP_ROLES)
    assert made in (["planner"], ["planner", "worker"])
    assert [llm.ledger.roles[role].cost_usd for role in made] == pytest.approx([per_call] * len(made))
    assert state["cost_usd"] <= 2 * per_call + left
    assert state["cost_usd"] == pytest.approx(sum(r.cost_usd for r in llm.ledger.roles.values()))
    assert exit_code_for(state["stop_reason"]) == 1


def test_cost_cap_clamps_a_call_to_what_the_money_left_can_buy(make_llm) -> None:
    max_cost = 0.00105
    price = price_for("gpt-4o-mini")
    left = 0.00015  # after the worker: the critic's prompt and some, not all, of its 400 tokens

    def draft_that_leaves_a_little(request: dict[str, Any]) -> Any:
        spendable = max_cost - llm.ledger.cost_usd - left - 100 * price.input_per_token
        n = min(request["max_tokens"], math.floor(spendable / price.output_per_token))
        return completion("word " * n, 100, n)  # a draft as long as its tokens say

    client = FakeClient(
        planner=[completion("p", 100, 740)], worker=[draft_that_leaves_a_little], critic=[verdict(True, "ok")]
    )
    llm = make_llm(client, max_cost=max_cost)
    mas.orchestrate("task", llm)
    calls = events(llm, "call")
    first_critic = next(i for i, call in enumerate(calls) if call["role"] == "critic")
    spent = sum(call["cost_usd"] for call in calls[:first_critic])
    critic = client.calls_of("critic")[0]
    prompt = estimate_tokens(critic["messages"], [verdict_schema()])
    worst_case = prompt * price.input_per_token + critic["max_tokens"] * price.output_per_token
    assert critic["max_tokens"] < mas.ROLES["critic"].max_tokens
    assert spent + worst_case <= max_cost


def test_unknown_price_is_reported_as_unknown(make_llm) -> None:
    client = FakeClient(planner=[completion("p", model="llama3.2")], worker=[completion("d")], critic=[verdict(True)])
    state = mas.orchestrate("task", make_llm(client, default_model="llama3.2"))
    assert state["cost_usd"] is None and format_cost(None) == "cost unknown"


def test_timeout_stops_before_the_next_call(make_llm) -> None:
    now = [0.0]

    class SlowClient(FakeClient):
        def create(self, **request: Any) -> Any:
            now[0] += 30  # every call takes 30 seconds
            return super().create(**request)

    client = SlowClient(planner=[completion("p")], worker=[completion("d")], critic=[])
    llm = make_llm(client, timeout=50)
    llm._clock, llm._started = (lambda: now[0]), 0.0
    state = mas.orchestrate("task", llm)
    assert len(client.calls) == 2 and state["stop_reason"] == "timeout"  # calls at 0 s and 30 s; none at 60 s
    assert client.calls[1]["timeout"] == pytest.approx(20)  # a call gets only the time left


def test_ctrl_c_keeps_the_draft_and_writes_the_end_event(make_llm) -> None:
    client = FakeClient(planner=[completion("p")], worker=[completion("draft")], critic=[KeyboardInterrupt()])
    llm = make_llm(client)
    state = mas.orchestrate("task", llm)
    assert state["stop_reason"] == "interrupted" and state["result"] == "draft"
    assert exit_code_for(state["stop_reason"]) == 130
    assert events(llm, "end")[0]["stop_reason"] == "interrupted"


def test_usage_missing_from_the_server_is_estimated_and_marked(make_llm) -> None:
    client = FakeClient(planner=[completion("p", None, None)], worker=[completion("d")], critic=[verdict(True)])
    llm = make_llm(client)
    state = mas.orchestrate("task", llm)
    assert llm.ledger.roles["planner"].estimated and llm.ledger.estimated
    assert not llm.ledger.roles["worker"].estimated
    others = [call for call in events(llm, "call") if call["role"] != "planner"]
    reported = sum(call["prompt_tokens"] + call["completion_tokens"] for call in others)
    assert state["total_tokens"]["total"] > reported  # the planner's estimate is counted too
    assert [call["usage_estimated"] for call in events(llm, "call") if call["role"] == "planner"] == [True]


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


def test_critic_sees_the_task_measured_facts_and_its_earlier_feedback_but_not_the_plan(make_llm) -> None:
    client = FakeClient(
        planner=[completion("1. Three lines.")],
        worker=[completion(HAIKU_4_LINES), completion("```python\ndef f(:\n```")],
        critic=[verdict(False, "Cut line four."), verdict(True)],
    )
    mas.orchestrate(POEM, make_llm(client))
    first, second = (call["messages"][1]["content"] for call in client.calls_of("critic"))
    assert first.startswith(f"Task:\n{POEM}")  # what never changes comes first, for prompt caching
    assert "non-empty lines: 4" in first and "1. Three lines." not in first  # judged against the task, not the plan
    assert "does NOT parse" in second and "Cut line four." in second
    assert second.index("Cut line four.") < second.index("Measured by code") < second.index("Draft to judge")
    assert client.calls_of("critic")[0]["response_format"]["type"] == "json_schema"


def test_an_empty_draft_is_rejected_by_code_without_a_critic_call(make_llm) -> None:
    client = FakeClient(
        planner=[completion("p")], worker=[completion("  "), completion("real draft")], critic=[verdict(True)]
    )
    state = mas.orchestrate("task", make_llm(client))
    assert client.roles(*LOOP_ROLES) == ["planner", "worker", "worker", "critic"]
    assert state["stop_reason"] == "approved"
    assert reviews(state)[0]["feedback"].startswith("The draft was empty")


def test_history_records_plans_reviews_and_escalations(make_llm) -> None:
    client = FakeClient(
        planner=[completion("p")],
        worker=[completion("d1"), completion("d2")],
        critic=[verdict(False, "no"), verdict(True)],
    )
    state = mas.orchestrate("task", make_llm(client))
    assert [h["kind"] for h in state["history"]] == ["plan", "review", "escalation", "review"]
    assert state["history"][1]["draft"] == "d1" and state["history"][3]["approved"] is True


def test_prompt_size_stays_bounded_as_iterations_grow(make_llm) -> None:
    """Drafts and feedback far longer than any cap, for two plans' worth of rounds past a full
    history window: no prompt outgrows the bound, and the same step of the next plan costs the same."""
    long_draft, long_feedback = "word " * 4_000, "fix " * 2_000
    # a plan longer than PLAN_MAX_CHARS that is still a plan: six steps of 24 long words
    long_plan = "\n".join(
        f"{i}. Write " + " ".join(f"step{i}word{j}-{'x' * 18}" for j in range(24)) for i in range(1, 7)
    )
    assert len(long_plan) > mas.PLAN_MAX_CHARS
    plans = mas.HISTORY_MAX // R + 3
    rounds = plans * R
    client = FakeClient(
        planner=[completion(long_plan) for _ in range(plans)],
        worker=[completion(long_draft) for _ in range(rounds)],
        critic=[verdict(False, long_feedback) for _ in range(rounds)],
    )
    llm = make_llm(client, max_plans=plans + 1, max_iterations=rounds, max_tokens=10**9)
    mas.orchestrate("t" * mas.TASK_MAX_CHARS, llm)
    sizes = [sum(len(m["content"]) for m in call["messages"]) for call in client.calls]
    assert max(sizes) <= mas.PROMPT_MAX_CHARS
    worker_sizes = [size for size, role in zip(sizes, client.roles(), strict=True) if role == "worker"]
    assert len(worker_sizes) == rounds
    # the history window is full for both of the last two plans: step by step they cost the same (give or take digits)
    for step in range(1, R + 1):
        assert worker_sizes[-step] <= worker_sizes[-step - R] + 20, step
    system_prompts = {call["messages"][0]["content"] for call in client.calls}  # every agent's, added ones too
    assert max(len(p) for p in system_prompts) <= mas.SYSTEM_PROMPT_MAX_CHARS
    assert (
        max(len(p) for p in (mas.PLANNER_PROMPT, mas.WORKER_PROMPT, mas.CRITIC_PROMPT)) <= mas.SYSTEM_PROMPT_MAX_CHARS
    )


def test_markup_in_model_text_is_printed_literally(make_llm, console) -> None:
    client = FakeClient(
        planner=[completion("1. Keep [bold red]plan[/] literal")],
        worker=[completion("[link=x]draft[/link]")],
        critic=[verdict(True)],
    )
    mas.orchestrate("task", make_llm(client, default_model="odd[/]model"))
    shown = console.file.getvalue()
    assert "[bold red]plan[/]" in shown and "[link=x]draft[/link]" in shown
    assert "odd[/]model" in shown  # names from the environment are not markup either


def test_verbose_shows_full_prompts(make_llm, console) -> None:
    client = FakeClient(planner=[completion("p")], worker=[completion("d")], critic=[verdict(True)])
    mas.orchestrate("a very particular task", make_llm(client, mode="verbose"))
    assert "prompt → planner" in console.file.getvalue()
    shown = " ".join(console.file.getvalue().replace("│", " ").split())  # panels wrap long lines
    assert " ".join(mas.PLANNER_PROMPT.split()[:12]) in shown


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
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "OPENAI_API_KEY": "sk-x", "PATH": "/usr/bin:/bin"},
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert list(tmp_path.iterdir()) == []  # no logs/ folder, no trace


def test_critic_is_told_when_the_draft_was_cut_off(make_llm) -> None:
    client = FakeClient(
        planner=[completion("p")],
        worker=[completion("half a dra", finish_reason="length"), completion("whole draft")],
        critic=[verdict(False), verdict(True)],
    )
    mas.orchestrate("task", make_llm(client))
    first, second = (call["messages"][1]["content"] for call in client.calls_of("critic"))
    assert "cut off at its token limit" in first
    assert "cut off" not in second


def test_after_a_replan_old_drafts_are_lessons_not_turns(make_llm) -> None:
    queues = per_role([False] * R + [True], plans=2)
    queues["worker"] = [completion(f"text of draft A{n}") for n in range(1, R + 1)] + [completion("text of draft B1")]
    client = FakeClient(**queues)
    mas.orchestrate("task", make_llm(client, max_plans=2, max_iterations=R + 1))
    first_on_new_plan = client.calls_of("worker")[R]["messages"]
    assert [m["role"] for m in first_on_new_plan] == ["system", "user"]
    lessons = first_on_new_plan[1]["content"]
    assert [f"feedback {n}" in lessons for n in range(1, R + 1)] == [True] * R  # every rejection of plan 1
    assert "text of draft A" not in lessons


def test_a_verdict_cut_off_at_max_tokens_is_not_an_approval(make_llm) -> None:
    client = FakeClient(
        planner=[completion("p")],
        worker=[completion("d"), completion("d2")],
        critic=[completion('{"approved": true, "feedback": "Fine"}', finish_reason="length"), verdict(True)],
    )
    llm = make_llm(client)
    state = mas.orchestrate("task", llm)
    assert reviews(state)[0]["approved"] is False and state["iteration"] == 2
    assert events(llm, "verdict")[0]["why"] == "the verdict was cut off at max_tokens"


def test_a_cut_off_draft_is_never_approved_whatever_the_critic_says(make_llm) -> None:
    client = FakeClient(
        planner=[completion("p")],
        worker=[completion("half a dr", finish_reason="length"), completion("whole draft")],
        critic=[verdict(True), verdict(True)],
    )
    state = mas.orchestrate("task", make_llm(client))
    assert reviews(state)[0]["approved"] is False and state["result"] == "whole draft"
    assert state["stop_reason"] == "approved" and state["iteration"] == 2


def test_verbose_shows_the_critics_raw_reply(make_llm, console) -> None:
    client = FakeClient(
        planner=[completion("p")], worker=[completion("d")], critic=[completion("Thinking...\nAPPROVED: YES")]
    )
    mas.orchestrate("task", make_llm(client, mode="verbose"))
    assert "raw reply ← critic" in console.file.getvalue() and "Thinking..." in console.file.getvalue()


@pytest.mark.parametrize("counted", [10, 1], ids=["counted 10x the estimate", "counted as estimated"])
def test_estimates_learn_when_a_server_counts_more_prompt_tokens(make_llm, counted: int) -> None:
    """A server that counts 10 times the estimated prompt tokens makes later estimates larger too: a call
    that fits on the plain estimate is refused. With honest counts, and the same spending, it is made."""
    messages = [mas.user("x" * 300)]
    guess = estimate_tokens(messages)
    spent = 20 * guess  # the first call's prompt + completion, the same in both cases
    client = FakeClient(
        planner=[completion("first", counted * guess, spent - counted * guess)], worker=[completion("second")]
    )
    llm = make_llm(client, max_tokens=spent + guess + mas.MIN_USEFUL_COMPLETION + 50)  # room on the plain estimate
    mas.ask(llm, "planner", messages)
    if counted == 1:
        assert mas.ask(llm, "worker", messages).content == "second"
    else:
        with pytest.raises(mas.BudgetExhausted, match="worker call skipped"):
            mas.ask(llm, "worker", messages)
        assert client.roles() == ["planner"]


def test_tool_schemas_count_towards_the_estimate() -> None:
    messages = [{"role": "user", "content": "hi"}]
    tools = [{"type": "function", "function": {"name": "lookup", "description": "x" * 500}}]
    assert estimate_tokens(messages, [tools]) >= estimate_tokens(messages) + 200


def test_every_shape_of_the_workers_prompt_stays_within_the_bound() -> None:
    """Each part at its cap: a checklist, notes, a full window of long feedback, and the best draft shown again."""
    state = mas.new_state("t" * mas.TASK_MAX_CHARS)
    state["plan"], state["plan_version"] = "\n".join(f"{i}. " + "x" * 900 for i in range(6)), 2
    state["requirements"] = [mas.Requirement("include", "w" * 200, "q" * 200)] * 10
    state["notes"] = {"researcher": "n" * (2 * mas.NOTES_MAX_CHARS)}
    for i in range(mas.HISTORY_MAX + 2):
        review = mas.HistoryItem(kind="review", iteration=i, plan_version=2, attempt=i, draft="d" * 9_000)
        state["history"].append(review | {"approved": False, "feedback": f"{i} " + "f" * 3_000, "judge": "critic"})
    state["draft_facts"] = {"checks": [{"requirement": "r", "kind": "lines", "passed": False, "measured": "m"}]}
    best = {"draft": "b" * 9_000, "approved": False, "passed": 3, "checks": 3, "distance": 0.0, "failed": []}
    state["best"] = mas.Best(**best, feedback="g" * 3_000, iteration=1, plan_version=1, attempt=1, why="w")
    state["history"][-1]["judge"] = "code"  # code rejected the newest: the best draft is the one shown
    shapes = {
        "the best draft again": mas.worker_messages(state),
        "afresh": mas.worker_messages(state, afresh=True),
    }
    assert shapes["the best draft again"][2]["content"].startswith("b")
    state["history"][-1]["judge"] = "critic"
    state["best"] = None
    shapes["the critic rejected the newest"] = mas.worker_messages(state)
    state["history"][-1]["judge"] = "code"
    shapes["code rejected the newest"] = mas.worker_messages(state)
    for name, messages in shapes.items():
        assert sum(len(m["content"]) for m in messages) <= mas.PROMPT_MAX_CHARS, name
    assert [m["role"] for m in shapes["the best draft again"]][2:] == ["assistant", "user"]
    assert [m["role"] for m in shapes["code rejected the newest"]] == ["system", "user"]
    assert [m["role"] for m in shapes["the critic rejected the newest"]][2:] == ["assistant", "user"]


def test_the_worker_reads_a_range_once_in_the_checklist(make_llm) -> None:
    task = "Describe a lighthouse in 5 to 40 words."  # one quote, two requirements: at least 5, at most 40
    client = FakeClient(
        planner=[completion("1. Picture the tower.")],
        worker=[completion("A tall light guards the rocks.")],
        critic=[verdict(True)],
    )
    mas.orchestrate(task, make_llm(client))
    first = client.calls_of("worker")[0]["messages"][-1]["content"]
    (checklist,) = [line for line in first.splitlines() if line.startswith(mas.CHECKS_HEADING)]
    assert checklist.count("5 to 40 words") == 1, checklist
