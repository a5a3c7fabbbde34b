"""The loop earns its calls: it never returns worse than its best draft, and code outranks the critic both ways.

- the best draft is kept in the state and returned (with why) by a run that stops without approval;
- a revision that fails a check the best draft passed is not revised again: the best draft is;
- a rejection that disputes what code measured is asked again once, and what it still claims is set aside;
- code rejects what it can see: a repeated draft, a note to the reviewer, the prompt or the plan copied out,
  a function that prints instead of returning, and plans that are the answer or name nothing of the task.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import multi_agent_system as mas
from conftest import FakeClient, completion, verdict
from machinery.checks import Requirement, distance, measure
from machinery.disputes import disputed
from machinery.plans import plan_problem

R = mas.REJECTIONS_BEFORE_REPLAN
HAIKU = "Write a haiku about autumn leaves"  # code checks three lines
GOOD = "Red leaves drift and fall\nthe maple lets go of gold\nwind carries them home"
TWO_LINES = "\n".join(GOOD.splitlines()[:2])  # fails the check the first passed (code never adds a line)
CLAIM = "The draft only has three lines; it is missing the last two lines."


def events(llm: Any, kind: str) -> list[dict[str, Any]]:
    return [e for e in map(json.loads, llm.trace.path.read_text().splitlines()) if e["event"] == kind]


def plans(n: int) -> list[Any]:
    return [completion(json.dumps({"steps": ["Pick one image of autumn leaves.", "Write it in three lines."]}))] * n


def test_a_run_without_approval_returns_its_best_draft_and_says_why(make_llm) -> None:
    rounds = mas.MAX_PLANS * R
    client = FakeClient(
        planner=plans(mas.MAX_PLANS),
        worker=[completion(GOOD)] + [completion(TWO_LINES + " " + "x" * n) for n in range(rounds - 1)],
        critic=[verdict(False, "The imagery is flat.")],  # the later drafts fail a check: the critic is not asked
    )
    llm = make_llm(client, max_iterations=rounds)
    state = mas.orchestrate(HAIKU, llm)
    assert state["stop_reason"] in ("escalation_exhausted", "max_iterations")
    assert state["result"] == GOOD and state["best"] is not None and state["best"]["iteration"] == 1
    assert "iteration 1" in state["best"]["why"]
    end = events(llm, "end")[-1]
    assert end["result"] == GOOD and end["best"]["draft"] == GOOD


def test_a_worse_revision_sends_the_worker_back_to_the_best_draft(make_llm) -> None:
    client = FakeClient(
        planner=plans(2),
        worker=[completion(GOOD), completion(TWO_LINES), completion(GOOD.replace("gold", "amber"))],
        critic=[verdict(False, "The imagery is flat."), verdict(True, "Good.")],
    )
    state = mas.orchestrate(HAIKU, make_llm(client, max_plans=2, max_iterations=3))
    assert len(client.calls_of("worker")) == 3
    third = client.calls_of("worker")[-1]["messages"]
    assert {"role": "assistant", "content": GOOD} in third and {"role": "assistant", "content": TWO_LINES} not in third
    assert "A later draft failed what this one passed" in third[-1]["content"]
    assert state["stop_reason"] == "approved"


def test_a_rejection_that_disputes_a_measurement_is_asked_again_with_it(make_llm) -> None:
    client = FakeClient(planner=plans(1), worker=[completion(GOOD)], critic=[verdict(False, CLAIM), verdict(True)])
    llm = make_llm(client)
    state = mas.orchestrate(HAIKU, llm)
    assert state["stop_reason"] == "approved" and client.roles("critic") == ["critic", "critic"]
    again = client.calls_of("critic")[1]["messages"][-1]["content"]
    assert "3 non-empty lines" in again and "only has three lines" in again
    (event,) = events(llm, "dispute")  # the claim code contradicted, and nothing claimed once asked again
    assert event["outcome"] == "asked again" and event["claims"] == []
    assert " ".join(claim for claim, _ in event["first"]) == CLAIM  # both its clauses dispute the count


def test_a_claim_made_again_is_set_aside_and_the_worker_hears_the_rest(make_llm, console) -> None:
    from conftest import output

    client = FakeClient(
        planner=plans(1),
        worker=[completion(GOOD), completion(GOOD.replace("gold", "amber"))],
        critic=[verdict(False, CLAIM + " Name the tree."), verdict(False, CLAIM + " Name the tree."), verdict(True)],
    )
    llm = make_llm(client)
    state = mas.orchestrate(HAIKU, llm)
    revision = client.calls_of("worker")[1]["messages"][-1]["content"]
    assert "Name the tree." in revision and "missing the last two lines" not in revision
    assert "the critic's claim" not in revision  # told of a claim, a small model acts on it
    shown = output(console)  # the screen says it
    assert "code measured 3 non-empty lines" in shown and f"the critic's claim '{CLAIM[:30]}" in shown
    assert "was set aside" in events(llm, "verdict")[0]["why"]
    assert state["stop_reason"] == "approved"


def test_with_no_room_to_ask_again_the_claim_is_set_aside(make_llm) -> None:
    def then_the_money_runs_out(request: dict[str, Any]) -> Any:
        llm.settings.max_tokens = llm.ledger.total_tokens + 100 + 20 + 10  # this reply fits; no call after it does
        return verdict(False, CLAIM + " Name the tree.")

    client = FakeClient(planner=plans(1), worker=[completion(GOOD)], critic=[then_the_money_runs_out])
    llm = make_llm(client)
    state = mas.orchestrate(HAIKU, llm)
    assert [d["outcome"] for d in events(llm, "dispute")] == ["no room to ask again"]
    assert client.roles("critic") == ["critic"] and state["stop_reason"] == "token_budget"
    assert state["critic_feedback"] == "Name the tree."
    assert "was set aside" in events(llm, "verdict")[0]["why"]


def test_code_rejects_a_repeated_draft_without_asking_the_critic(make_llm) -> None:
    client = FakeClient(
        planner=plans(2),
        worker=[completion(GOOD), completion(GOOD), completion(GOOD.replace("gold", "amber"))],
        critic=[verdict(False, "Name the tree."), verdict(True)],
    )
    state = mas.orchestrate(HAIKU, make_llm(client, max_plans=2, max_iterations=3))
    assert client.roles("critic") == ["critic", "critic"]  # the repeat was judged by code
    assert state["stop_reason"] == "approved"


def test_code_rejects_notes_to_the_reviewer_and_copies_of_the_prompt() -> None:
    def check(kind: str, value: Any, draft: str) -> bool:
        return measure(draft, Requirement(kind, value, "q"))[0]

    task = "Write a product description of a bamboo toothbrush."
    assert not check(
        "no_chatter", task, "Sure, I understand. I apologize for the previous drafts. Please provide more."
    )
    assert check("no_chatter", "Write an apology to a customer.", "I apologize for the delay.")
    assert check("no_chatter", task, "A bamboo toothbrush that lasts.")
    api = "Explain what an API is in exactly two sentences."  # a worker of the live run repeated its verdict back
    assert not check("no_chatter", api, "The draft was rejected. The code measured the draft: three sentences.")
    tweet = "Write a tweet announcing a school bake sale in fewer than 30 words."  # a refusal, seen live
    assert not check("no_chatter", tweet, "I'm sorry, but I can't assist with that request.")
    assert check("no_chatter", tweet, "I cannot wait to see you at the bake sale on Friday!")
    assert check("no_chatter", "Write a two-line poem about rain.", "I can't help but smile at the rain\nit sings")
    for refusal in ("I'm unable to help with that.", "I’m sorry, but I can’t assist with that request."):  # review
        assert not check("no_chatter", tweet, refusal)
    echoes = list(mas.ECHOES)
    assert not check("no_echo", echoes, f"The tea. {mas.PLAN_HEADING} (plan v2): - Read the task requirements")
    assert check("no_echo", echoes, "1. Boil the water\n2. Warm the pot")  # a list the plan also listed is fine
    assert check("new_draft", ["old draft"], "new draft") and not check("new_draft", ["old  draft "], "old draft")


def test_a_function_that_prints_is_not_one_that_returns() -> None:
    returns = Requirement("returns", "f", "a function f that returns the sum")
    assert not measure("```python\ndef f(a, b):\n    print(a + b)\n```", returns)[0]
    assert not measure("def f(a, b):\n    return None", returns)[0]
    assert measure("def f(a, b):\n    def g():\n        pass\n    return a + b", returns)[0]


def test_plans_that_are_the_answer_or_name_nothing_of_the_task_are_sent_back() -> None:
    answer = ["A closure is a function that keeps its scope.", "It remembers variables.", "This is useful."]
    generic = [
        "Read the task requirements carefully",
        "Identify the key elements needed",
        "Plan the process of writing",
    ]
    good = ["Pick one image of autumn leaves", "Write three lines", "Read it aloud"]
    assert "sentences of the answer" in (plan_problem(answer, "Define a Python closure", [], False) or "")
    assert "name nothing" in (plan_problem(generic, HAIKU, [], False) or "")
    assert plan_problem(good, HAIKU, [], False) is None
    about_planning = [  # a live re-plan: a plan of how to plan, naming nothing of the sea poem it was for
        "Create a new plan with 3 to 6 steps.",
        "Choose a specific task you want to complete.",
        "Divide the task into smaller, manageable steps.",
        "Review and refine the plan as needed.",
    ]
    sea = "Write a four-line poem about the sea, entirely in lowercase letters, with no title."
    assert "name nothing" in (plan_problem(about_planning, sea, [], False) or "")
    own = ["Picture waves at dusk", "Write four short lines in lower case", "End on the tide going out"]
    assert plan_problem(own, sea, [], False) is None
    eggs = ["Write step one: whisk eggs with salt", "Write step two: cook on low heat", "Write step three: add chives"]
    assert plan_problem(eggs, "Give a 3-step recipe for scrambled eggs.", [], False) is None  # the task's own words


# -- properties -------------------------------------------------------------------------------------

FACTS = {"words": 17, "lines": 3, "checks": [{"kind": "lines", "passed": True, "measured": "3 non-empty lines"}]}


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Zs")), max_size=200))
def test_a_sentence_with_no_count_in_it_is_never_disputed(text: str) -> None:
    words = set(text.lower().split())
    counting = {"lines", "words", "count", "length", "long", "short", "wordy", "brief"}
    if not words & counting and not words & {
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
    }:
        assert disputed(text, FACTS) == []


@settings(max_examples=200, deadline=None)
@given(
    draft=st.text(max_size=300),
    kind=st.sampled_from(["max_words", "min_words", "about_words", "lines", "sentences", "items"]),
    n=st.integers(1, 50),
)
def test_distance_is_zero_exactly_when_the_check_passes(draft: str, kind: str, n: int) -> None:
    r = Requirement(kind, n, "q")
    assert (distance(draft, r) == 0) == measure(draft, r)[0]


# -- issue 18: the worker's reserve is the critique's own estimate -----------------------------------


@settings(max_examples=120, deadline=None)
@given(
    budget=st.integers(600, 6_000),
    wanted=st.lists(st.integers(1, 1_500), min_size=12, max_size=12),
    bytes_per_token=st.floats(1.0, 8.0),
    counted=st.floats(0.5, 1.3),
)
def test_the_last_call_of_a_run_is_never_a_worker_whose_draft_went_unjudged(
    budget: int, wanted: list[int], bytes_per_token: float, counted: float
) -> None:
    """Whatever the budget, however long the drafts and however many bytes a token, and even when the server
    counts up to 30% more prompt tokens than the gate estimated, every draft written is judged: the run never
    stops with a worker's call last. Every draft is new and states nothing countable, so each one is the
    critic's to judge (a draft code rejects is judged by code)."""
    from io import StringIO

    from rich.console import Console

    from machinery.gateway import LLM, estimate_tokens
    from machinery.output import Display, Trace

    drafts, written = iter(wanted), iter(range(100))

    def honest(text: str, request: dict[str, Any]) -> Any:
        return completion(text, int(estimate_tokens(request["messages"]) * counted), None)

    def draft(request: dict[str, Any]) -> Any:
        n = min(next(drafts, 50), request["max_tokens"])
        text = f"d{next(written)} " + "".join(f"w{i} " for i in range(n))[: int(n * bytes_per_token)]  # never a repeat
        reply = completion(text, int(estimate_tokens(request["messages"]) * counted), n)
        reply.choices[0].finish_reason = "length" if n == request["max_tokens"] else "stop"
        return reply

    client = FakeClient(
        planner=[lambda r: honest("1. Say what a closure is.\n2. Give one example.", r)] * 20,
        worker=[draft] * 20,
        critic=[lambda r: honest('{"approved": false, "feedback": "Add an example."}', r)] * 20,
    )
    llm = LLM(
        mas.Settings(max_tokens=budget, max_iterations=12, max_plans=6),
        Display(Console(file=StringIO()), "quiet"),
        Trace(None, "prop"),
        client=client,
    )
    mas.orchestrate("Explain what a closure is", llm)
    roles = client.roles()
    assert not roles or roles[-1] != "worker", (roles, llm.ledger.total_tokens)  # no call at all fits in the smallest
    assert counted > 1 or llm.ledger.total_tokens <= budget  # a server counting more than estimated may overrun once


def test_a_plan_made_of_the_answers_lines_is_sent_back() -> None:
    lines = ["Write ", "Snowflakes dance on the window pane", "Cold morning light filters in"]
    assert plan_problem(lines, "Write a haiku about a cold winter morning", [], False)
    steps = ["Pick one image of the morning", "Write three lines of 5, 7 and 5 syllables", "Read it aloud"]
    assert plan_problem(steps, "Write a haiku about a cold winter morning", [], False) is None


def test_after_a_word_for_word_repeat_the_worker_writes_afresh(make_llm) -> None:
    client = FakeClient(
        planner=plans(2),
        worker=[completion(GOOD), completion(GOOD), completion(GOOD.replace("gold", "amber"))],
        critic=[verdict(False, "Name the tree."), verdict(True)],
    )
    mas.orchestrate(HAIKU, make_llm(client, max_plans=2, max_iterations=3))
    third = client.calls_of("worker")[2]["messages"]
    assert [m["role"] for m in third] == ["system", "user"]  # no rejected draft shown again
    assert mas.REPEATED in third[-1]["content"] and "Name the tree." in third[-1]["content"]


@pytest.mark.parametrize(
    ("task", "draft"),
    [
        ("Write a reply to a customer whose order arrived late", "Dear Ms Lee,\nI apologize for the delay.\nBest, Sam"),
        ("Write a short story about a robot", 'The lab was quiet.\n"I understand now," the robot whispered.\nThe end.'),
        ("Write a reply to a customer", "Thank you for your feedback! We will improve."),
        ("Write a history of Everest", "Earlier attempts had failed in 1921.\nIn 1953 they reached the top."),
        # from the review: a refusal's words in the work, and a draft that is approved in the story
        ("Write a poem about autumn", "I can't help loving autumn's fire,\nthe leaves let go."),
        ("Write a poem about leaves", "Leaves fall on the hill.\nI can't help feeling small."),
        ("Write a story about a robot", '"I can\'t help you," said the robot.\nIt rolled away.'),
        ("Explain how a bill becomes law", "Once the draft is approved by the committee, it goes to a floor vote."),
        ("Write a story about a writer", "She sent it again.\nBy dawn the draft was rejected again, and she smiled."),
    ],
)
def test_words_that_belong_to_the_work_are_not_chatter(task: str, draft: str) -> None:
    assert measure(draft, Requirement("no_chatter", task, "q"))[0]


@settings(max_examples=60, deadline=None)
@given(max_cost=st.floats(0.0005, 0.02), wanted=st.lists(st.integers(1, 1_200), min_size=12, max_size=12))
def test_under_a_cost_budget_the_critique_is_reserved_at_the_critics_own_price(
    max_cost: float, wanted: list[int]
) -> None:
    """A dear critic (gpt-4o) judging a cheap worker (gpt-4o-mini): every draft written is still judged."""
    from io import StringIO

    from rich.console import Console

    from machinery.gateway import LLM, estimate_tokens
    from machinery.output import Display, Trace

    drafts, written = iter(wanted), iter(range(100))

    def honest(text: str, request: dict[str, Any]) -> Any:
        return completion(text, estimate_tokens(request["messages"]) // 2, None, model=request["model"])

    def draft(request: dict[str, Any]) -> Any:
        n = min(next(drafts, 50), request["max_tokens"])
        text = f"d{next(written)} " + "".join(f"w{i} " for i in range(n))[: int(n * 3.5)]
        return completion(text, estimate_tokens(request["messages"]) // 2, n, model=request["model"])

    client = FakeClient(
        planner=[lambda r: honest("1. Say what a closure is.\n2. Give one example.", r)] * 20,
        worker=[draft] * 20,
        critic=[lambda r: honest('{"approved": false, "feedback": "Add an example."}', r)] * 20,
    )
    settings = mas.Settings(max_cost=max_cost, max_iterations=12, max_plans=6)
    settings.models = {"planner": "gpt-4o-mini", "worker": "gpt-4o-mini", "critic": "gpt-4o"}
    llm = LLM(settings, Display(Console(file=StringIO()), "quiet"), Trace(None, "prop"), client=client)
    mas.orchestrate("Explain what a closure is", llm)
    roles = client.roles()
    assert not roles or roles[-1] != "worker", roles
    assert (llm.ledger.cost_usd or 0) <= max_cost


def test_a_long_draft_in_another_script_reaches_the_critic_whole(make_llm) -> None:
    russian = " ".join(["слово"] * 320)  # 320 words, 1,919 characters: well within the worker's cap
    client = FakeClient(planner=plans(1), worker=[completion(russian, 100, 700)], critic=[verdict(True)])
    mas.orchestrate("Напишите рассказ о море", make_llm(client))
    assert russian in client.calls_of("critic")[0]["messages"][-1]["content"]


@pytest.mark.parametrize("feedback", ["Cut it to about 50 words.", "It has 120 words but should be under 60 words."])
def test_a_target_the_critic_names_is_not_a_claim_about_the_draft(feedback: str) -> None:
    facts = {"words": 120, "lines": 3, "checks": [{"kind": "lines", "passed": True, "measured": "3 non-empty lines"}]}
    assert disputed(feedback, facts) == []


@pytest.mark.parametrize(
    ("feedback", "kind"),
    [  # reasons that only mention the thing: the review found each set aside before
        ("The blurb never names the book's title, Dune.", "no_title"),
        ("The code block subtracts instead of adding.", "no_code_fence"),
        ("The tweet quotes Mandela, which the task forbids.", "no_quotes"),
        ("It uses no quotes from the source.", "no_quotes"),
        ("Good, no title as asked, but the imagery is weak.", "no_title"),
        ("The title of the book should appear in the first line.", "no_title"),
    ],
)
def test_mentioning_what_the_task_forbids_is_not_a_dispute(feedback: str, kind: str) -> None:
    facts = {"words": 3, "lines": 3, "checks": [{"kind": kind, "passed": True, "measured": "none"}]}
    assert disputed(feedback, facts) == []


def test_a_reason_about_one_line_is_not_a_count_and_a_semicolon_keeps_the_rest() -> None:
    facts = {"words": 17, "lines": 3, "checks": [{"kind": "lines", "passed": True, "measured": "3 non-empty lines"}]}
    assert disputed("Only 3 lines is fine but line two has 8 syllables.", facts) == []
    feedback = "The haiku has no season word; it is missing the last two lines."
    assert disputed(feedback, facts) == [("it is missing the last two lines.", "3 non-empty lines")]


@pytest.mark.parametrize(
    ("feedback", "kind", "measured"),
    [  # each seen on the local model while recording examples/: the task forbade it, the draft had none
        ("The draft is missing the title, which is required.", "no_title", "no title"),
        ("The draft should not contain quotation marks.", "no_quotes", "no quotation marks"),
        ("Remove the code fence around the JSON.", "no_code_fence", "0 code fences (```); the task asks for none"),
        ("Give it a title.", "no_title", "no title"),
        ("The name is wrapped in quotes.", "no_quotes", "no quotation marks"),
        ("Use a bulleted list for the steps.", "no_bullets", "no bullets"),
    ],
)
def test_asking_for_what_the_task_forbids_and_code_found_absent_is_disputed(
    feedback: str, kind: str, measured: str
) -> None:
    facts = {"words": 3, "lines": 3, "checks": [{"kind": kind, "passed": True, "measured": measured}]}
    assert disputed(feedback, facts) == [(feedback, measured)]
    failed = {"words": 3, "lines": 3, "checks": [{"kind": kind, "passed": False, "measured": measured}]}
    assert disputed(feedback, failed) == []  # code saw it too: the critic is right
    assert disputed(feedback, {"words": 3, "lines": 3, "checks": []}) == []  # the task did not forbid it


def test_with_every_reason_set_aside_the_worker_is_told_what_to_do(make_llm) -> None:
    client = FakeClient(
        planner=plans(1),
        worker=[completion(GOOD), completion(GOOD.replace("gold", "amber"))],
        critic=[verdict(False, CLAIM), verdict(False, CLAIM), verdict(True)],
    )
    state = mas.orchestrate(HAIKU, make_llm(client))
    revision = client.calls_of("worker")[1]["messages"][-1]["content"]
    assert "meets every requirement code measured" in revision and "missing the last two lines" not in revision
    assert state["stop_reason"] == "approved"


def test_a_miscount_of_what_the_task_counts_and_a_forbidden_word_not_there_are_disputed() -> None:
    # both seen in the live run of the 32 tasks (bench/results): the critic miscounted fruits, and saw 'delicious'
    fruits = {
        "kind": "bullets",
        "requirement": "List exactly five fruits",
        "passed": True,
        "measured": "5 bullet points",
    }
    facts = {"words": 9, "lines": 5, "checks": [fruits]}
    assert disputed("The list only includes one fruit (Kiwi).", facts) == [
        ("The list only includes one fruit (Kiwi).", "5 bullet points")
    ]
    assert disputed("Kiwi is not rich enough in vitamin C.", facts) == []
    absent = {
        "kind": "exclude",
        "requirement": "no 'delicious'",
        "passed": True,
        "measured": "does not contain 'delicious'",
    }
    claim = "It should not contain the word 'delicious'."
    assert disputed(claim, {"words": 9, "lines": 1, "checks": [absent]}) == [(claim, absent["measured"])]
    agrees = "The draft does not contain the word 'delicious', which is required."  # true of the draft: not disputed
    assert disputed(agrees, {"words": 9, "lines": 1, "checks": [absent]}) == []
    present = absent | {"passed": False, "measured": "'delicious' appears; the task forbids it"}
    assert disputed(claim, {"words": 9, "lines": 1, "checks": [present]}) == []  # code saw it too


@pytest.mark.parametrize(
    ("feedback", "check"),
    [  # seen in the same live run: a required word code found, capitals code counted
        ("The draft does not include the word 'leak-proof'.", {"kind": "include", "measured": "contains 'leak-proof'"}),
        (
            "The draft does not include any capital letters.",
            {"kind": "uppercase", "measured": "0 lowercase letters; the task asks for capitals only"},
        ),
    ],
)
def test_a_required_word_or_case_said_missing_when_code_found_it_is_disputed(feedback: str, check: dict) -> None:
    facts = {"words": 9, "lines": 1, "checks": [check | {"requirement": "r", "passed": True}]}
    assert disputed(feedback, facts) == [(feedback, check["measured"])]
    assert disputed(feedback, {"words": 9, "lines": 1, "checks": [check | {"requirement": "r", "passed": False}]}) == []


@pytest.mark.parametrize(
    ("feedback", "check"),
    [  # from the review: a reason that only names the word, or holds it inside another word, is a reason
        ("The ocean imagery is not vivid enough.", {"kind": "include", "measured": "contains 'ocean'"}),
        (
            "The draft has weak imagery and should be reduced.",
            {"kind": "exclude", "measured": "does not contain 'red'"},
        ),
        ("It uses sweeteners language.", {"kind": "exclude", "measured": "does not contain 'sweet'"}),
        (
            "The slogan is not memorable enough and the capital letters feel shouty.",
            {"kind": "uppercase", "measured": "0 lowercase letters; the task asks for capitals only"},
        ),
        ("The first two reasons say the same thing.", {"kind": "numbered", "measured": "3 numbered items"}),
        ("Two fruits are the same (Apple is listed twice).", {"kind": "bullets", "measured": "5 bullet points"}),
    ],
)
def test_a_reason_that_names_what_code_measured_without_contradicting_it_stands(feedback: str, check: dict) -> None:
    requirement = {"numbered": "Give exactly three reasons", "bullets": "List exactly five fruits"}.get(
        check["kind"], "r"
    )
    facts = {"words": 30, "lines": 5, "checks": [check | {"requirement": requirement, "passed": True}]}
    assert disputed(feedback, facts) == []


def test_a_miscount_of_a_noun_ending_in_e_is_disputed_and_doesnt_is_a_denial() -> None:
    languages = {"kind": "items", "requirement": "List three programming languages", "passed": True}
    facts = {"words": 3, "lines": 3, "checks": [languages | {"measured": "3 items"}]}
    assert disputed("The list has only one language.", facts) == [("The list has only one language.", "3 items")]
    capitals = {"kind": "uppercase", "requirement": "r", "passed": True, "measured": "0 lowercase letters"}
    said = "It doesn't use capital letters."
    assert disputed(said, {"words": 3, "lines": 1, "checks": [capitals]}) == [(said, "0 lowercase letters")]


def test_a_sentence_of_the_task_copied_into_the_draft_is_not_counted_as_the_work(make_llm) -> None:
    """Seen live (21feb82): a limerick headed by the task's own "Just the five lines, no title." passed the
    five-line count with four lines of verse. The copied sentence is taken off before code measures."""
    task = "Write a limerick about a forgetful wizard. Just the five lines, no title."
    four = "A wizard who often forgot\nwould lose every spell that he got\nhe searched high and low\nfor the words he should know"
    client = FakeClient(
        planner=plans(1), worker=[completion(f"Just the five lines, no title.\n\n{four}")], critic=[verdict(True)]
    )
    state = mas.orchestrate(task, make_llm(client, max_iterations=1))
    assert state["result"] == four  # the draft as code measured it, returned as the best there was
    lines = next(c for c in state["draft_facts"]["checks"] if c["kind"] == "lines")
    assert not lines["passed"] and lines["measured"].startswith("4 non-empty lines")
    assert client.roles("critic") == []  # code's count rejected it: the critic was not asked


@pytest.mark.parametrize(
    ("feedback", "check"),
    [  # from the second review: contradictions worded with an adjective, or in a clause of their own
        ("The draft contains the forbidden word 'sweet'.", {"kind": "exclude", "measured": "does not contain 'sweet'"}),
        ("It still uses the banned word 'sweet'.", {"kind": "exclude", "measured": "does not contain 'sweet'"}),
        ("The word 'ocean' does not appear anywhere.", {"kind": "include", "measured": "contains 'ocean'"}),
        ("It never uses the required word 'ocean'.", {"kind": "include", "measured": "contains 'ocean'"}),
        ("It has only two lines and repeats the same image.", {"kind": "lines", "measured": "3 non-empty lines"}),
    ],
)
def test_a_contradiction_in_a_clause_of_its_own_or_with_an_adjective_is_disputed(feedback: str, check: dict) -> None:
    facts = {"words": 12, "lines": 3, "checks": [check | {"requirement": "r", "passed": True}]}
    assert disputed(feedback, facts) == [(feedback, check["measured"])]


@pytest.mark.parametrize(
    "draft", ["Rain on the roof.\nI can't do this anymore.", "I cannot write the words I feel,\nso the rain speaks."]
)
def test_a_line_of_work_in_the_first_person_is_not_a_refusal(draft: str) -> None:
    assert measure(draft, Requirement("no_chatter", "Write a poem about rain", "q"))[0]


def test_a_fence_around_the_whole_draft_is_taken_off_only_when_the_task_forbids_fences(make_llm) -> None:
    """Seen in four live runs: told "without ``` code fences", the model fenced right code every time."""
    code = "def reverse_words(sentence):\n    return ' '.join(reversed(sentence.split()))"
    fenced = f"```python\n{code}\n```"
    bare = "Write a Python function `reverse_words(sentence)` that returns the sentence with its word order reversed."
    for task, expected in ((f"{bare} Give plain code only, without ``` code fences.", code), (bare, fenced)):
        client = FakeClient(planner=plans(1), worker=[completion(fenced)], critic=[verdict(True)])
        state = mas.orchestrate(task, make_llm(client, max_iterations=1))
        assert state["result"] == expected and state["stop_reason"] == "approved"
    kept = "Here it is, with a note:\n" + fenced + "\nIt splits on spaces."  # words outside: the check still sees it
    client = FakeClient(planner=plans(1), worker=[completion(kept)])
    state = mas.orchestrate(
        f"{bare} Give plain code only, without ``` code fences.", make_llm(client, max_iterations=1)
    )
    assert "```" in (state["result"] or "") and state["stop_reason"] != "approved"


def test_a_draft_code_rejected_is_not_shown_again_the_worker_writes_afresh_told_why(make_llm) -> None:
    """Measured on 40 revision prompts from live runs of a 1.5B model: shown its code-rejected draft as its
    own turn, it passed code's checks 0 times (it sent the draft back, or echoed the feedback); writing
    afresh with the feedback listed, 9 times. (A draft the critic rejected after code passed it comes back:
    tests/test_orchestrator.py.)"""
    client = FakeClient(
        planner=plans(1), worker=[completion(TWO_LINES), completion(GOOD)], critic=[verdict(True, "Good.")]
    )
    state = mas.orchestrate(HAIKU, make_llm(client, max_iterations=2))
    assert state["stop_reason"] == "approved"
    second = client.calls_of("worker")[1]["messages"]
    assert [m["role"] for m in second] == ["system", "user"] and TWO_LINES not in second[1]["content"]
    feedback = second[1]["content"].split(mas.LESSONS_HEADING, 1)[1]
    assert "2 non-empty lines" in feedback and client.roles("critic") == ["critic"]  # code rejected the first


def test_every_block_a_python_answer_fences_must_parse() -> None:
    """Seen live (03a08d2): count_vowels, then a usage example, then an untagged "Output:" block of plain
    text, was approved; a reader running the fenced code fails on the third block."""
    function = "```python\ndef count_vowels(text):\n    return sum(c in 'aeiou' for c in text)\n```"
    usage = "\n\n```python\nprint(count_vowels('hello'))\n```"
    output = "\n\nOutput:\n```\nThe number of vowels is: 2\n```"
    for kind, value in (("function", "count_vowels"), ("python", True)):
        assert measure(function + usage, Requirement(kind, value, "q"))[0]
        ok, measured = measure(function + usage + output, Requirement(kind, value, "q"))
        assert not ok and measured.startswith("fenced block 3 of 3 does not parse as Python (line 1)")
    assert measure(function + usage, Requirement("returns", "count_vowels", "q"))[0]
    assert not measure(function + usage + output, Requirement("returns", "count_vowels", "q"))[0]


def test_an_empty_draft_is_not_shown_again_and_the_best_draft_is_not_listed_twice() -> None:
    """From the third review: an empty draft fails no check, yet came back as an empty assistant turn; and the
    best draft's own feedback was listed as well as shown."""
    state = mas.new_state(HAIKU)
    state["plan"], state["plan_version"] = "1. Write it.", 1
    empty = mas.HistoryItem(kind="review", iteration=1, plan_version=1, attempt=1, draft="", approved=False)
    state["history"] = [empty | {"feedback": "The draft was empty. Produce the complete work.", "judge": "code"}]
    state["draft_facts"] = {"checks": []}
    messages = mas.worker_messages(state)
    assert [m["role"] for m in messages] == ["system", "user"] and "The draft was empty" in messages[1]["content"]
    good = mas.HistoryItem(kind="review", iteration=2, plan_version=1, attempt=2, draft=GOOD, approved=False)
    state["history"] = [good | {"feedback": "The imagery is flat.", "judge": "critic"}]
    facts = {"requirement": "three lines", "kind": "lines", "passed": False, "measured": "6 non-empty lines"}
    state["draft_facts"] = {"checks": [facts]}
    best = {"draft": GOOD, "approved": False, "passed": 1, "checks": 1, "distance": 0.0, "failed": []}
    state["best"] = mas.Best(**best, feedback="The imagery is flat.", iteration=2, plan_version=1, attempt=2, why="")
    messages = mas.worker_messages(state)
    assert messages[2] == {"role": "assistant", "content": GOOD}
    assert sum(m["content"].count("The imagery is flat.") for m in messages) == 1


def test_the_same_long_feedback_said_again_is_listed_once_with_a_count() -> None:
    long = "Fix the meter. " * (mas.CLIP_CHARS // 10)  # longer than CLIP_CHARS
    listed = mas.lessons([{"feedback": long}] * 3, newest_whole=True)
    assert listed.count("\n") == 0 and listed.endswith("(said 3 times)")


def test_an_interpreter_session_in_a_fence_is_python_and_a_parse_error_is_said_once(make_llm) -> None:
    function = "```python\ndef add(a, b):\n    return a + b\n```"
    session = "\n\n```python\n>>> add(2, 3)\n5\n```"
    assert all(measure(function + session, Requirement(k, "add", "q"))[0] for k in ("function", "returns"))
    broken = function + "\n\n```\nThe sum is 5\n```"
    task = "Write a Python function named `add(a, b)` that returns the sum."
    client = FakeClient(planner=plans(1), worker=[completion(broken)])
    state = mas.orchestrate(task, make_llm(client, max_iterations=1))
    feedback = mas.reviews(state)[-1]["feedback"]
    assert feedback.count("does not parse as Python") == 1 and client.roles("critic") == []


def test_the_critic_is_reminded_of_its_own_verdicts_not_of_codes_feedback_on_earlier_drafts(make_llm) -> None:
    """Seen live (717927c): told of code's "a JSON array of 2; the task asks for 3", the critic said of the next
    draft, three objects long, that it "lacks one more object"; the claim is disputed too."""
    client = FakeClient(
        planner=plans(1),
        worker=[completion(TWO_LINES), completion(GOOD)],
        critic=[verdict(True)],
    )
    mas.orchestrate(HAIKU, make_llm(client, max_iterations=2))
    [critic] = client.calls_of("critic")
    assert "2 non-empty lines" not in critic["messages"][-1]["content"]
    facts = {"words": 30, "lines": 12, "checks": [{"kind": "json_array", "passed": True, "measured": "an array of 3"}]}
    claim = "The current JSON array only has 3 objects, which is less than the required 3."
    assert disputed(claim, facts) == [(claim, "an array of 3")]


@pytest.mark.parametrize(
    ("feedback", "kind"),
    [
        (
            "It uses lowercase letters which is not allowed.",
            "uppercase",
        ),  # live at 717927c, t17, of a slogan in capitals
        ("The draft contains lowercase letters.", "uppercase"),
        ("It has capital letters at the start of each line.", "lowercase"),
    ],
)
def test_letters_of_the_case_code_found_none_of_said_present_are_disputed(feedback: str, kind: str) -> None:
    facts = {"words": 5, "lines": 1, "checks": [{"kind": kind, "passed": True, "measured": "0 of the other case"}]}
    assert disputed(feedback, facts) == [(feedback, "0 of the other case")]
    assert disputed("The slogan is too generic.", facts) == []


@pytest.mark.parametrize(
    "feedback",
    [  # from the fourth review: what is inside the objects, or some of them, is no count of them
        "One object is missing the director field.",
        "All 3 objects are missing the year field.",
        "Only 2 of the 3 records have a rating.",
        "The array has 3 records of each film.",
        "Each object should have 2 strings for the actors.",
    ],
)
def test_a_reason_about_what_is_inside_the_json_objects_stands(feedback: str) -> None:
    facts = {"words": 30, "lines": 12, "checks": [{"kind": "json_array", "passed": True, "measured": "an array of 3"}]}
    assert disputed(feedback, facts) == []


def test_an_empty_draft_never_ranks_above_one_with_words(make_llm) -> None:
    """From the fourth review: an empty draft passed every check it had and became the result."""
    task = "Explain what a budget gate is."
    client = FakeClient(planner=plans(1), worker=[completion(""), completion("- A gate\n-\n- that stops spending")])
    state = mas.orchestrate(task, make_llm(client, max_iterations=2))
    assert state["result"] and state["best"] is not None and state["best"]["draft"].strip()


def test_an_interpreter_session_after_the_code_or_printing_an_ellipsis_is_python() -> None:
    code = "```python\ndef add(a, b):\n    return a + b\n\n>>> add(2, 3)\n5\n>>> list(range(100))\n[0, 1,\n... 98, 99]\n```"
    assert measure(code, Requirement("function", "add", "q"))[0]
    assert measure(code, Requirement("python", True, "q"))[0]
