"""stages/variants/model_driven.py: a model chooses the next step; code checks the choice."""

from __future__ import annotations

import ast
import difflib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import multi_agent_system as mas
from conftest import FakeClient, completion, output, per_role
from machinery.cli import exit_code_for
from machinery.demo import DEMO_SCENARIOS
from stages.variants import model_driven as md

R = mas.REJECTIONS_BEFORE_REPLAN
ROOT = Path(__file__).resolve().parent.parent


def decision(choice: str, reason: str = "because") -> Any:
    return completion(json.dumps({"choice": choice, "reason": reason}))


def decisions_in(path: Path) -> list[dict[str, Any]]:
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == "decision"]


def test_the_directors_choice_is_followed_when_it_is_valid(make_llm, tmp_path) -> None:
    """A re-plan after the first rejection, where the ladder would revise."""
    client = FakeClient(**per_role([False, True], plans=2), director=[decision("replan", "the plan is wrong")])
    state = md.orchestrate("task", make_llm(client))
    assert state["stop_reason"] == "approved" and state["plan_version"] == 2
    (d,) = decisions_in(tmp_path / "trace.jsonl")
    assert (d["choice"], d["reason"], d["ladder"], d["used"], d["overridden"]) == (
        "replan",
        "the plan is wrong",
        "revise",
        "replan",
        False,
    )


def test_an_unreadable_choice_falls_back_to_the_ladder_and_says_so(make_llm, console, tmp_path) -> None:
    client = FakeClient(**per_role([False, True], plans=1), director=[completion("Maybe. Hard to say.")])
    state = md.orchestrate("task", make_llm(client))
    assert state["stop_reason"] == "approved" and state["plan_version"] == 1  # the ladder said revise
    (d,) = decisions_in(tmp_path / "trace.jsonl")
    assert d["overridden"] and d["used"] == mas.decide_next_step(1, 1, mas.Settings()) == "revise"
    assert "falling back to decide_next_step()" in " ".join(output(console).split())


def test_the_same_failing_choice_again_is_a_loop_and_is_overridden(make_llm, tmp_path) -> None:
    n = md.SAME_CHOICE_LIMIT
    client = FakeClient(**per_role([False] * (n + 1) + [True], plans=2), director=[decision("revise")] * (n + 1))
    state = md.orchestrate("task", make_llm(client))
    used = [(d["used"], d["overridden"]) for d in decisions_in(tmp_path / "trace.jsonl")]
    assert used == [("revise", False)] * n + [("replan", True)]  # the ladder's step at that point
    assert state["stop_reason"] == "approved" and state["plan_version"] == 2


def test_a_replan_past_max_plans_is_refused(make_llm, tmp_path) -> None:
    director = [decision("revise")] * (R - 1) + [decision("replan")]  # revise until the plan is spent, then re-plan
    client = FakeClient(**per_role([False] * R, plans=1), director=director)
    state = md.orchestrate("task", make_llm(client, max_plans=1))
    assert state["stop_reason"] == "escalation_exhausted"  # the ladder's give_up
    assert [d["overridden"] for d in decisions_in(tmp_path / "trace.jsonl")] == [False] * (R - 1) + [True]


def test_giving_up_stops_the_run(make_llm) -> None:
    client = FakeClient(**per_role([False], plans=1), director=[decision("give_up")])
    state = md.orchestrate("task", make_llm(client))
    assert state["stop_reason"] == "escalation_exhausted" and "director gave up" in (state["stop_detail"] or "")


def test_the_hard_gates_still_hold(make_llm) -> None:
    client = FakeClient(**per_role([False] * 2, plans=1), director=[decision("revise")] * 2)
    state = md.orchestrate("task", make_llm(client, max_iterations=2))
    assert state["stop_reason"] == "max_iterations" and state["iteration"] == 2


def test_the_summary_compares_the_path_with_the_ladders(make_llm, console) -> None:
    client = FakeClient(**per_role([False, True], plans=2), director=[decision("replan")])
    md.orchestrate("task", make_llm(client))
    shown = output(console)
    assert "The director's path beside the ladder's" in shown
    assert "agreed with the ladder 0 of 1 time(s)" in shown


@pytest.mark.parametrize("scenario", sorted(DEMO_SCENARIOS))
def test_it_runs_offline_on_the_demo_model(console, tmp_path, scenario: str) -> None:
    code = md.main(["Write a haiku about agents", "--demo-scenario", scenario], console=console)
    (trace,) = (tmp_path / "logs").glob("*.jsonl")
    shown = output(console)
    assert code in (mas.EXIT_APPROVED, mas.EXIT_NOT_APPROVED)
    assert "Scripted demo model, not a real LLM" in shown
    assert "no script for this role" not in shown  # the demo model was taught the director's replies
    rejections = [
        e for e in map(json.loads, trace.read_text().splitlines()) if e["event"] == "verdict" and not e["approved"]
    ]
    assert len(decisions_in(trace)) == len(rejections)  # one decision after each critique that rejects


def test_the_exhaust_demo_shows_both_fallbacks(console, tmp_path) -> None:
    md.main(["Write a haiku about agents", "--demo-scenario", "exhaust"], console=console)
    (trace,) = (tmp_path / "logs").glob("*.jsonl")
    why = [d["why"] for d in decisions_in(trace) if d["overridden"]]
    assert any("in a row" in w for w in why) and any("names none" in w for w in why)


def test_the_variants_recorded_runs_show_replay_and_draw(console, tmp_path) -> None:
    md.main(["Write a haiku about agents", "--demo-scenario", "exhaust", "--quiet"], console=console)
    (trace,) = (tmp_path / "logs").glob("*.jsonl")
    assert md.main(["--show", str(trace)], console=console) == 0
    assert "Director · " in output(console)
    assert md.main(["--diagram", str(trace)], console=console) == 0
    assert "participant D as director" in output(console)
    assert md.main(["--replay", str(trace), "Write a haiku about agents", "--quiet"], console=console) == 1


@given(st.text())
def test_read_decision_never_raises_and_never_guesses(text: str) -> None:
    choice, reason = md.read_decision(text)
    assert choice in (*md.CHOICES, None)
    assert isinstance(reason, str)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"choice": "give up", "reason": "x"}', "give_up"),
        ('```json\n{"decision": "Re-plan"}\n```', "replan"),
        ("REVISE. The feedback is specific.", "revise"),
        ("I think a new plan is needed.", "replan"),
        ("revise or replan, either works", None),
        ('{"choice": "escalate"}', None),
    ],
)
def test_read_decision_is_tolerant_of_format(reply: str, expected: str | None) -> None:
    assert md.read_decision(reply)[0] == expected


def code_lines(function: Any) -> list[str]:
    """A function's lines without its docstring and comment-only lines."""
    source = inspect.getsource(function)
    body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
    first = body[1].lineno if isinstance(body[0], ast.Expr) else body[0].lineno
    lines = source.splitlines()[first - 1 :]
    return [line for line in lines if line.strip() and not line.strip().startswith("#")]


def test_the_loop_differs_from_the_chapters_in_a_few_lines() -> None:
    """Short enough to diff: the lesson is the difference, so it must stay small."""
    ours, theirs = code_lines(md.orchestrate), code_lines(mas.orchestrate)
    diff = difflib.unified_diff(theirs, ours, lineterm="", n=0)
    changed = [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert len(changed) <= 10, "\n".join(changed)
    assert any("choose_next_step(state, llm, decisions)" in line for line in changed)


VARIANT_EXAMPLES = [p for p in sorted((ROOT / "examples").glob("*.jsonl")) if '"event": "decision"' in p.read_text()]


@pytest.mark.docs  # a recording quotes the prompts as shipped: reword one and record again
@pytest.mark.parametrize("example", VARIANT_EXAMPLES, ids=lambda p: p.name)
def test_the_recorded_real_model_runs_replay(console, tmp_path, example: Path) -> None:
    """Runs of this variant on a real model replay through it: the same requests, decisions and end."""
    events = [json.loads(line) for line in example.read_text().splitlines()]
    start, end = events[0], events[-1]
    code = md.main(["--replay", str(example), start["task"], "--json"], console=console)
    text = output(console)
    summary = json.loads(text[text.index("{") :])
    assert code == exit_code_for(end["stop_reason"])
    assert (summary["stop_reason"], summary["calls"], summary["tokens"]) == (
        end["stop_reason"],
        end["calls"],
        end["total_tokens"],
    )
    (trace,) = (tmp_path / "logs").glob("*.jsonl")
    assert [(d["choice"], d["used"]) for d in decisions_in(trace)] == [
        (d["choice"], d["used"]) for d in decisions_in(example)
    ]


def test_a_variant_run_on_a_real_model_is_shipped() -> None:
    assert VARIANT_EXAMPLES and all(md.DIRECTOR in p.read_text() for p in VARIANT_EXAMPLES)


def test_step_pauses_before_the_directors_calls_too(console, tmp_path, monkeypatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("\n" * 50))
    assert md.main(["Write a haiku about agents", "--demo-scenario", "escalate", "--step"], console=console) == 0
    (trace,) = (tmp_path / "logs").glob("*.jsonl")
    calls = [e["role"] for e in map(json.loads, trace.read_text().splitlines()) if e["event"] == "call"]
    assert re.findall(r"next call: (\w+)", output(console)) == calls and md.DIRECTOR in calls


def test_a_human_still_stands_above_the_director(make_llm) -> None:
    from test_classroom import human_llm

    client = FakeClient(**per_role([False, True], plans=2), director=[decision("give_up", "hopeless")])
    state = md.orchestrate("task", human_llm(make_llm, client, "p\n"))
    assert state["stop_reason"] == "approved" and state["plan_version"] == 2  # the person asked for a new plan
