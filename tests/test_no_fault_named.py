"""A rejection that praises the draft and names no fault in it is asked again, once; its second verdict stands.

Live, a 1.5B critic rejected a correct 71-word paragraph with "The draft is correct in terms of the task
requirements ... However, it could benefit from more specific details". The worker's longer rewrites broke the
word limit, and the run spent nine more calls to return the first draft. These tests hold the reading (real
rejections from the live bench's traces, both ways) and what the chapter does with it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import multi_agent_system as mas
from conftest import FakeClient, completion, tool, verdict
from machinery.disputes import no_fault_named

PARAGRAPH = "Describe a lighthouse at night in a single paragraph of 5 to 40 words."
GOOD = "The lighthouse stands alone on the black rock, its beam sweeping slowly over a restless sea."
PRAISE = "The draft is correct in terms of the task requirements."
SUGGESTION = "However, it could benefit from more specific details about the lighthouse's design."
# Rejections of drafts that passed every check, from the live bench's traces: none names a fault.
NO_FAULT = [
    f"{PRAISE} {SUGGESTION} Additionally, it would be helpful to add more information about its history.",
    "The draft has exactly 5 bullet points, which is correct according to the task requirements. There is no need "
    "to add or remove any bullet points.",
    "The draft is correct but could be expanded with additional details about the design and features to make it "
    "more comprehensive and engaging. For example, it's a good idea to mention the bottle's dimensions.",
    "The draft is correct. No changes are needed.",  # ...and the review's: saying no fault is not naming one
    "The draft meets the requirements. There are no errors.",
]
# ...and rejections that name one (or may: "but the original instruction requested" is read as a fault).
FAULT = [
    "The draft is on topic but does not fully explain what an API is in exactly two sentences. It is missing the "
    "definition of 'Application Programming Interface' and could be improved by providing more examples.",
    "The draft meets the requirements of the task. It does not contain the word 'candle' which is forbidden by the "
    "task instructions. The answer given is not a candle, and it does not meet the form of a riddle.",
    "The draft is correct in that it contains 'base case', but the original instruction requested exactly three "
    "sentences, and the draft has three sentences with the phrase 'base case'.",
    "The draft is incomplete.",
    "The answer given does not meet the requirements of the task.",
    "The draft is good, but the second tip repeats the first.",
    "The draft is well written. Change 'big' to 'large' in line two.",
    "The draft looks fine. The imagery is vague.",
    "The tips are about sleep.",  # names no fault, but praises nothing either: nothing to quote back
    # the review's cases: hedged praise, negative words, a curly apostrophe, orders anywhere, faults in plain words
    "The draft is mostly correct.",
    "None of the facts are accurate.",
    "The draft is good. It doesn\u2019t mention the keeper.",
    "The draft is good. Additionally, add a date.",
    "The draft is good.\n- Remove the title.",
    "The draft is good, remove the title.",
    "The draft is correct. Ensure the date is included.",
    "The draft is correct. It is off topic.",
    "The draft is good, but it might crash on empty input.",
]


@pytest.mark.parametrize("feedback", NO_FAULT)
def test_a_rejection_that_only_praises_and_suggests_is_found(feedback: str) -> None:
    praise = no_fault_named(feedback)
    assert praise is not None and feedback.startswith(praise)


@pytest.mark.parametrize("feedback", FAULT)
def test_a_rejection_that_may_name_a_fault_is_taken_as_it_stands(feedback: str) -> None:
    assert no_fault_named(feedback) is None


@given(st.sampled_from(NO_FAULT), st.sampled_from(["It is missing a title.", "The rhyme is wrong.", "Add a date."]))
def test_one_sentence_naming_a_fault_is_enough_to_take_it_as_it_stands(feedback: str, fault: str) -> None:
    assert no_fault_named(f"{feedback} {fault}") is None
    assert no_fault_named(f"{fault} {feedback}") is None


def plan() -> Any:
    return completion(json.dumps({"steps": ["Picture the tower at night.", "Write one paragraph about it."]}))


def test_the_critic_is_asked_again_quoting_its_praise_and_may_approve(make_llm) -> None:
    client = FakeClient(
        planner=[plan()], worker=[completion(GOOD)], critic=[verdict(False, f"{PRAISE} {SUGGESTION}"), verdict(True)]
    )
    llm = make_llm(client)
    state = mas.orchestrate(PARAGRAPH, llm)
    assert state["stop_reason"] == "approved" and client.roles("critic") == ["critic", "critic"]
    again = client.calls_of("critic")[1]["messages"][-1]["content"]
    assert f"'{PRAISE.rstrip('.')}'" in again and mas.AGAIN in again
    trace = [json.loads(line) for line in llm.trace.path.read_text().splitlines()]
    (event,) = [e for e in trace if e["event"] == "dispute"]
    assert event["outcome"] == "asked again" and event["first"] == [[PRAISE, "no fault named"]]


def test_a_second_rejection_stands_and_the_worker_hears_it(make_llm) -> None:
    second = f"{PRAISE} It could mention the keeper."  # praise-only again: not asked a third time, not set aside
    client = FakeClient(
        planner=[plan()],
        worker=[completion(GOOD), completion(GOOD + " A keeper climbs the stairs.")],
        critic=[verdict(False, f"{PRAISE} {SUGGESTION}"), verdict(False, second), verdict(True)],
    )
    state = mas.orchestrate(PARAGRAPH, make_llm(client))
    assert client.roles("critic") == ["critic", "critic", "critic"]  # once more for the first draft, once for the next
    assert second in client.calls_of("worker")[1]["messages"][-1]["content"]
    assert state["stop_reason"] == "approved"


ORDER = "The draft is well written. Change 'big' to 'large' in line two."


def test_a_rejection_that_names_a_fault_is_not_asked_again(make_llm) -> None:
    client = FakeClient(
        planner=[plan()],
        worker=[completion(GOOD), completion(GOOD + " Waves break below.")],
        critic=[verdict(False, ORDER), verdict(True)],
    )
    llm = make_llm(client)
    mas.orchestrate(PARAGRAPH, llm)
    assert len(client.calls_of("worker")) == 2  # asked again, the critic's yes would have approved the first
    assert not [e for e in map(json.loads, llm.trace.path.read_text().splitlines()) if e["event"] == "dispute"]


# From tests/data/critic_replies.jsonl: the model said yes, with a reservation; the reader does not take it.
RESERVED_YES = {"approved": True, "feedback": "The draft is correct and on topic, but it could be expanded."}


def test_a_yes_the_reader_does_not_take_is_not_asked_again(make_llm) -> None:
    """Only a no the model itself said is asked again: a yes with a reservation, pressed with "approve it",
    would approve a draft the critic had doubts about (in the dataset, one that left out Italy)."""
    client = FakeClient(
        planner=[plan()],
        worker=[completion(GOOD), completion(GOOD + " Waves break below.")],
        critic=[completion(json.dumps(RESERVED_YES)), verdict(True)],
    )
    assert no_fault_named(RESERVED_YES["feedback"])  # the words alone would be asked again
    mas.orchestrate(PARAGRAPH, make_llm(client))
    assert len(client.calls_of("worker")) == 2 and client.roles("critic") == ["critic", "critic"]


def test_the_walkthrough_says_the_critic_was_asked_again_about_its_praise(make_llm) -> None:
    client = FakeClient(
        planner=[plan()], worker=[completion(GOOD)], critic=[verdict(False, f"{PRAISE} {SUGGESTION}"), verdict(True)]
    )
    llm = make_llm(client)
    mas.orchestrate(PARAGRAPH, llm)
    trace_walkthrough = tool("trace_walkthrough")
    text = trace_walkthrough.render(trace_walkthrough.read_events(llm.trace.path))
    assert "rejects, naming no fault" in text and "asks the critic once more, quoting its praise" in text


def test_with_no_room_to_ask_again_a_rejection_naming_no_fault_stands(make_llm) -> None:
    def then_the_money_runs_out(request: dict[str, Any]) -> Any:
        llm.settings.max_tokens = llm.ledger.total_tokens + 100 + 20 + 10  # this reply fits; no call after it does
        return verdict(False, f"{PRAISE} {SUGGESTION}")

    client = FakeClient(planner=[plan()], worker=[completion(GOOD)], critic=[then_the_money_runs_out])
    llm = make_llm(client)
    state = mas.orchestrate(PARAGRAPH, llm)
    assert client.roles("critic") == ["critic"] and state["stop_reason"] == "token_budget"
    trace = [json.loads(line) for line in llm.trace.path.read_text().splitlines()]
    assert [e["outcome"] for e in trace if e["event"] == "dispute"] == ["no room to ask again"]
    assert [e["feedback"] for e in trace if e["event"] == "verdict"] == [f"{PRAISE} {SUGGESTION}"]  # it stands
    trace_walkthrough = tool("trace_walkthrough")
    assert "naming no fault, with no room in the budget" in trace_walkthrough.render(trace)


@pytest.mark.parametrize(
    ("reply", "said_no"),
    [
        ('{"approved": false, "feedback": "Fine."}', True),
        ("APPROVED: NO\nFEEDBACK: Fine.", True),
        ('APPROVED: YES\n{"approved": false}', True),  # a yes and a no: the model did say no
        ('{"approved": "maybe"}\nAPPROVED: NO', True),  # an unclear value first, then a no
        ('{"approved": "maybe", "feedback": "Fine."}', False),  # unclear: no one said no
        ('{"approved": true, "feedback": "Correct, but it could be expanded."}', False),  # a yes not taken
        ("", False),
    ],
)
def test_said_no_is_true_only_when_the_model_itself_said_no(reply: str, said_no: bool) -> None:
    from machinery.verdicts import parse_verdict

    verdict = parse_verdict(reply)
    assert not verdict.approved and verdict.said_no is said_no


def test_a_verdict_cut_off_at_its_limit_is_not_asked_again(make_llm) -> None:
    cut = completion(json.dumps({"approved": False, "feedback": PRAISE}), finish_reason="length")
    client = FakeClient(
        planner=[plan()],
        worker=[completion(GOOD), completion(GOOD + " Waves break below.")],
        critic=[cut, verdict(True)],
    )
    mas.orchestrate(PARAGRAPH, make_llm(client))
    assert len(client.calls_of("worker")) == 2  # asked again, the critic's yes would have approved the first


def test_a_draft_cut_off_at_its_limit_is_not_asked_again(make_llm) -> None:
    client = FakeClient(
        planner=[plan()],
        worker=[completion(GOOD, finish_reason="length"), completion(GOOD + " Waves break below.")],
        critic=[verdict(False, f"{PRAISE} {SUGGESTION}"), verdict(True)],
    )
    mas.orchestrate(PARAGRAPH, make_llm(client))
    assert len(client.calls_of("worker")) == 2 and client.roles("critic") == ["critic", "critic"]
