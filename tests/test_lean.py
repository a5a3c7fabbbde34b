"""The token-lean loop and the cost preview: room for the critique, feedback said once, stable prompt
prefixes, cached tokens, latency without client building, and --estimate."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import multi_agent_system as mas
from conftest import FakeClient, completion, output, verdict
from machinery import gateway
from machinery.cli import main
from machinery.demo import DEMO_SCENARIOS, ScriptedClient, completion_body, demo_script
from machinery.estimate import preview_line, spend_preview
from machinery.gateway import LLM, estimate_tokens, request_role
from machinery.output import Display, Trace, run_summary
from machinery.text import times

TASK = "Explain what a budget gate is"


def honest(text: str, completion_tokens: int = 20) -> Any:
    """A reply whose prompt is counted as the gateway estimates it (no scaling is learnt)."""
    return lambda request: completion(text, estimate_tokens(request["messages"]), completion_tokens)


# -- room for the critique -------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(budget=st.integers(300, 4_000))
def test_under_any_token_budget_every_draft_written_is_judged(budget) -> None:
    """The worker never takes what the critic needs: a run may stop before a draft, never between it and its verdict."""
    client = ScriptedClient(demo_script("exhaust"))
    settings_ = mas.Settings(demo=True, max_tokens=budget)
    from io import StringIO

    from rich.console import Console

    llm = LLM(settings_, Display(Console(file=StringIO()), "quiet"), Trace(None, "t"), client=client)
    state = mas.orchestrate(TASK, llm)
    roles = [request_role(r) for r in client.requests]
    assert roles.count("worker") == roles.count("critic"), (roles, state["stop_detail"])
    assert llm.ledger.total_tokens <= budget


def test_the_worker_is_clamped_to_leave_the_critique_room(make_llm) -> None:
    def run(budget: int) -> FakeClient:
        client = FakeClient(
            planner=[honest("1. Write it.")],
            worker=[honest("A draft.")],
            critic=[honest('{"approved": true, "feedback": "ok"}')],
        )
        mas.orchestrate(TASK, make_llm(client, max_tokens=budget))
        return client

    # the tightest budget (in steps of 50) that lets the worker write at all: there it must be clamped
    budget = next(b for b in range(500, 20_000, 50) if run(b).calls_of("worker"))
    client = run(budget)
    (worker,) = client.calls_of("worker")
    spent_before = sum(estimate_tokens(c["messages"]) + 20 for c in client.calls[: client.calls.index(worker)])
    prompt = estimate_tokens(worker["messages"])
    assert worker["max_tokens"] < min(
        mas.ROLES["worker"].max_tokens, budget - spent_before - prompt
    )  # not all that was left
    assert worker["max_tokens"] >= mas.MIN_USEFUL_COMPLETION
    assert client.calls_of("critic")


# -- feedback said once ----------------------------------------------------------------


def test_feedback_repeated_word_for_word_is_shown_once_with_a_count(make_llm) -> None:
    same = "Add a concrete example."
    rounds = 10
    client = FakeClient(
        planner=[completion(f"1. Plan {n}.") for n in range(1, rounds + 1)],
        worker=[completion(f"draft {n}") for n in range(1, rounds + 1)],
        critic=[verdict(False, same) for _ in range(rounds)],
    )
    mas.orchestrate(TASK, make_llm(client, max_iterations=rounds, max_plans=rounds))
    last_worker = client.calls_of("worker")[-1]["messages"][1]["content"]
    last_critic = client.calls_of("critic")[-1]["messages"][1]["content"]
    last_planner = client.calls_of("planner")[-1]["messages"][1]["content"]
    for prompt in (last_worker, last_critic, last_planner):
        assert prompt.count(same) == 1, prompt
    assert f"{same} (said {times(min(mas.OWN_FEEDBACK_SHOWN, rounds - 1))})" in last_critic


# -- what never changes comes first ----------------------------------------------------------


def test_each_role_sends_the_same_prefix_every_call_for_prompt_caching(make_llm) -> None:
    client = FakeClient(
        **{
            "planner": [completion("1. p")] * 3,
            "worker": [completion(f"draft {n}") for n in range(6)],  # never a repeat: code would ask again at once
            "critic": [verdict(False)] * 6,
        }
    )
    mas.orchestrate(TASK, make_llm(client))
    for role, head in (("worker", TASK), ("critic", f"Task:\n{TASK}"), ("planner", f"Task:\n{TASK}")):
        calls = client.calls_of(role)
        assert len({c["messages"][0]["content"] for c in calls}) == 1  # the system prompt never changes
        assert all(c["messages"][1]["content"].startswith(head) for c in calls)


def test_the_reply_format_is_spelled_out_only_when_no_json_schema_enforces_it(make_llm) -> None:
    import openai

    class Refused(openai.BadRequestError):
        def __init__(self) -> None:
            Exception.__init__(self, "response_format json_schema is not supported")
            self.message, self.status_code, self.body = str(self), 400, None

    client = FakeClient(
        planner=[completion("1. p")],
        worker=[completion("d1"), completion("d2")],
        critic=[verdict(False), Refused(), verdict(True)],
    )
    mas.orchestrate(TASK, make_llm(client))
    systems = [c["messages"][0]["content"] for c in client.calls_of("critic")]
    assert mas.CRITIC_FORMAT not in systems[0]  # the schema says it
    assert mas.CRITIC_FORMAT in systems[-1]  # json_object: the shape must be spelled out


# -- cached tokens and latency ------------------------------------------------------------------


def test_cached_prompt_tokens_are_counted_and_shown(make_llm, console) -> None:
    def cached(text: str) -> Any:
        body = completion_body(text, model="gpt-4o-mini", usage=(120, 20))
        body["usage"]["prompt_tokens_details"] = {"cached_tokens": 64}
        from openai.types.chat import ChatCompletion

        return ChatCompletion.model_validate(body)

    client = FakeClient(
        planner=[cached("1. p")], worker=[cached("d")], critic=[cached('{"approved": true, "feedback": "ok"}')]
    )
    llm = make_llm(client)
    state = mas.orchestrate(TASK, llm)
    assert llm.ledger.cached_tokens == 3 * 64
    assert run_summary(state, llm)["cached_prompt_tokens"] == 3 * 64
    llm.display.spending(llm.ledger)
    assert "cached in" in output(console)


def test_a_calls_latency_excludes_building_the_client(monkeypatch, make_llm) -> None:
    now = [0.0]

    class SlowToBuild:
        def __init__(self, **_: Any) -> None:
            now[0] += 5.0  # importing and building the SDK client takes "5 seconds"
            self.chat = FakeClient(planner=[completion("1. p")], worker=[completion("d")], critic=[verdict(True)])

    monkeypatch.setattr(
        gateway, "openai_sdk", lambda: type("sdk", (), {"OpenAI": SlowToBuild, "OpenAIError": Exception})
    )
    llm = LLM(mas.Settings(), make_llm(None).display, Trace(None, "t"), clock=lambda: now[0])
    reply = mas.ask(llm, "planner", [mas.user("task")])
    assert reply.seconds < 5.0


# -- the cost preview ------------------------------------------------------------------------------


def test_estimate_prints_the_preview_without_a_key_or_any_call(console) -> None:
    client = FakeClient()  # any call fails the test
    assert main(["--estimate", TASK], console=console, client=client) == mas.EXIT_APPROVED
    shown = output(console)
    assert "What one run can spend" in shown and "planner" in shown and "critic" in shown
    assert client.calls == []


def test_estimate_json_agrees_with_the_ladder(console) -> None:
    assert main(["--estimate", "--json", "--max-plans", "2", "--max-iterations", "10"], console=console) == 0
    data = json.loads(output(console))["per_task"]
    rounds = 2 * mas.REJECTIONS_BEFORE_REPLAN
    assert data["worker"]["most"]["calls"] == 2 * rounds - 1  # a repeated draft is asked for once more
    assert data["critic"]["most"]["calls"] == 2 * rounds  # judge_again() may ask it twice a round
    assert data["total"]["fewest"]["calls"] == 3
    assert data["total"]["most"]["tokens"] <= mas.MAX_TOTAL_TOKENS


def test_the_run_banner_shows_the_same_preview(console) -> None:
    assert main([TASK, "--demo-scenario", "approve"], console=console) == 0
    settings_ = mas.Settings(demo=True, demo_scenario="approve")
    assert preview_line(spend_preview(settings_, TASK)) in output(console)


@settings(max_examples=25, deadline=None)
@given(
    max_iterations=st.integers(1, 12),
    max_plans=st.integers(1, 5),
    budget=st.integers(500, 20_000),
    scenario=st.sampled_from(sorted(DEMO_SCENARIOS)),
)
def test_no_run_spends_more_than_the_preview_says(max_iterations, max_plans, budget, scenario) -> None:
    settings_ = mas.Settings(demo=True, max_iterations=max_iterations, max_plans=max_plans, max_tokens=budget)
    preview = spend_preview(settings_, TASK)
    client = ScriptedClient(demo_script(scenario))
    from io import StringIO

    from rich.console import Console

    llm = LLM(settings_, Display(Console(file=StringIO()), "quiet"), Trace(None, "t"), client=client)
    mas.orchestrate(TASK, llm)
    for role, stats in llm.ledger.roles.items():
        _, high = preview[role]
        assert stats.calls <= high.calls
        assert stats.prompt_tokens + stats.completion_tokens <= high.tokens
    assert llm.ledger.total_tokens <= preview["total"][1].tokens
    if llm.ledger.calls >= 3 and scenario == "approve":
        assert llm.ledger.total_tokens >= preview["total"][0].tokens  # the floor is a floor


@given(max_iterations=st.integers(1, 8), max_plans=st.integers(1, 4), repeats=st.booleans())
@settings(max_examples=20, deadline=None)
def test_a_critic_asked_twice_and_a_worker_that_repeats_stay_within_the_preview(
    max_iterations, max_plans, repeats
) -> None:
    """judge_again() asks the critic twice in a round, and a repeated draft is asked for once more: the
    preview's most counts both, in calls and in tokens."""
    settings_ = mas.Settings(max_iterations=max_iterations, max_plans=max_plans, default_model="gpt-4o-mini")
    praise = verdict(False, "The draft is correct. It could benefit from more detail.")
    drafts = [completion("A lamp on the rock." if repeats else f"A lamp on the rock, turn {n}.") for n in range(20)]
    client = FakeClient(
        planner=[completion("1. Picture it.")] * max_plans, worker=drafts, critic=[praise] * (2 * max_iterations)
    )
    from io import StringIO

    from rich.console import Console

    llm = LLM(settings_, Display(Console(file=StringIO()), "quiet"), Trace(None, "t"), client=client)
    mas.orchestrate("Describe a lighthouse.", llm)
    preview = spend_preview(settings_, "Describe a lighthouse.")
    for role, stats in llm.ledger.roles.items():
        _, high = preview[role]
        assert stats.calls <= high.calls and stats.prompt_tokens + stats.completion_tokens <= high.tokens, role
    if not repeats:
        assert llm.ledger.roles["critic"].calls == 2 * llm.ledger.roles["worker"].calls


def test_the_trace_records_the_system_prompt_as_sent_after_a_format_fallback(make_llm, tmp_path) -> None:
    import openai

    class Refused(openai.BadRequestError):
        def __init__(self) -> None:
            Exception.__init__(self, "response_format json_schema is not supported")
            self.message, self.status_code, self.body = str(self), 400, None

    client = FakeClient(planner=[completion("1. p")], worker=[completion("d")], critic=[Refused(), verdict(True)])
    mas.orchestrate(TASK, make_llm(client))
    events = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    (critic,) = [e for e in events if e["event"] == "call" and e["role"] == "critic"]
    assert critic["prompt"][0]["content"] == client.calls_of("critic")[-1]["messages"][0]["content"]
    assert mas.CRITIC_FORMAT in critic["prompt"][0]["content"]
