"""Code cuts a draft that is over a count, and moves paragraph breaks; it never writes a word.

Live, the 1.5B worker wrote three sentences for "exactly two", four times in a row, and one block of text for
"two paragraphs" in nine drafts out of twelve. These tests hold what ``machinery/repairs.py`` may do (cut the
surplus, re-space; keep every check that passed) and what the chapter does with it (the critic still judges,
the trace says what code cut, a draft cut off at its limit is left alone).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import multi_agent_system as mas
from conftest import FakeClient, completion, verdict
from machinery.checks import Requirement, measure
from machinery.repairs import FIXERS, repaired

TWO = Requirement("sentences", 2, "exactly two sentences")
FOUR_SENTENCES = "Dogs bark at night. Cats purr on laps. Birds sing at dawn. Fish swim all day."


def failed(draft: str, checks: list[Requirement]) -> set[int]:
    return {i for i, r in enumerate(checks) if not measure(draft, r)[0]}


def test_surplus_sentences_are_cut_from_the_end() -> None:
    fix = repaired(FOUR_SENTENCES, [TWO])
    assert fix is not None and fix.draft == "Dogs bark at night. Cats purr on laps."
    assert "2" in fix.how and "4" in fix.how


def test_a_cut_that_would_lose_a_required_phrase_is_not_made() -> None:
    phrase = Requirement("include", "dawn", "use the word 'dawn'")
    assert repaired(FOUR_SENTENCES, [TWO, phrase]) is None  # 'dawn' is in the third sentence
    assert failed(FOUR_SENTENCES, [TWO, phrase]) == {0}  # the draft as it was: only the count fails


def test_one_block_is_split_into_the_paragraphs_asked_for_without_changing_a_word() -> None:
    fix = repaired(FOUR_SENTENCES, [Requirement("paragraphs", 2, "two paragraphs")])
    assert fix is not None and fix.draft.count("\n\n") == 1
    assert fix.draft.split() == FOUR_SENTENCES.split()


def test_too_many_paragraphs_are_joined() -> None:
    draft = "One idea here.\n\nA second idea.\n\nA third idea.\n\nA fourth idea."
    fix = repaired(draft, [Requirement("paragraphs", 2, "two paragraphs")])
    assert fix is not None and fix.draft.count("\n\n") == 1 and fix.draft.split() == draft.split()


def test_list_items_past_the_count_are_dropped_and_other_lines_kept() -> None:
    draft = "Benefits:\n1. Speed\n2. Safety\n3. Focus\n4. Regression checks\n5. Docs\nThat is all."
    fix = repaired(draft, [Requirement("numbered", 4, "4 benefits as a numbered list")])
    assert (
        fix is not None and fix.draft == "Benefits:\n1. Speed\n2. Safety\n3. Focus\n4. Regression checks\nThat is all."
    )


def test_a_word_limit_is_met_by_ending_at_a_sentence() -> None:
    draft = "Short first sentence here. " * 5
    fix = repaired(draft, [Requirement("max_words", 9, "under 10 words")])
    assert fix is not None and fix.draft == "Short first sentence here. Short first sentence here."


def test_nothing_is_mended_that_needs_words_added_or_taken_out_of_the_middle() -> None:
    assert repaired("One sentence only.", [TWO]) is None  # only a model can write the second
    assert repaired("A riddle. I am a candle.", [Requirement("exclude", "candle", "no 'candle'")]) is None
    assert repaired("Too short.", [Requirement("min_words", 40, "at least 40 words")]) is None
    assert "exclude" not in FIXERS and "min_words" not in FIXERS


SENTENCE = st.from_regex(r"[A-Z][a-z]{1,8}( [a-z]{1,8}){0,6}[.!?]", fullmatch=True)
LIST_LINE = st.builds(lambda mark, s: f"{mark} {s}", st.sampled_from(["-", "*", "1.", "2)"]), SENTENCE)
BLOCK = st.lists(st.one_of(SENTENCE, LIST_LINE), min_size=1, max_size=6).map(
    lambda parts: "".join(p + st_sep for p, st_sep in zip(parts, [" ", "\n"] * 3, strict=False))
)
DRAFT = st.lists(BLOCK, min_size=1, max_size=4).map("\n\n".join)
REQUIREMENT = st.builds(
    lambda kind, n: Requirement(kind, n, f"{kind} {n}"), st.sampled_from(sorted(FIXERS)), st.integers(1, 12)
)
PHRASE = st.builds(lambda w: Requirement("include", w, f"use '{w}'"), st.from_regex(r"[a-z]{2,5}", fullmatch=True))


def is_in_order_within(words: list[str], original: list[str]) -> bool:
    rest = iter(original)
    return all(any(w == o for o in rest) for w in words)


@given(DRAFT, st.lists(st.one_of(REQUIREMENT, PHRASE), min_size=1, max_size=3))
def test_code_writes_no_word_breaks_no_check_and_always_fixes_one(draft: str, checks: list[Requirement]) -> None:
    fix = repaired(draft, checks)
    if fix is None:
        return
    assert is_in_order_within(fix.draft.split(), draft.split())  # cut or re-spaced, never written
    before, after = failed(draft, checks), failed(fix.draft, checks)
    assert after < before  # fewer failed, and none failed that passed before
    assert fix.how


# -- What the chapter does with a mended draft ------------------------------------------------------------

TASK = "Explain what an API is in exactly two sentences."
THREE = (
    "An API is a set of rules that lets programs talk to each other. It defines requests and replies. "
    "Many web services offer one."
)


def plan() -> Any:
    return completion(json.dumps({"steps": ["Define an API.", "Give one example of its use."]}))


def test_the_critic_judges_the_cut_draft_and_the_trace_says_what_code_cut(make_llm) -> None:
    client = FakeClient(planner=[plan()], worker=[completion(THREE)], critic=[verdict(True)])
    llm = make_llm(client)
    state = mas.orchestrate(TASK, llm)
    kept = THREE[: THREE.index("replies.") + len("replies.")]
    assert state["stop_reason"] == "approved" and state["result"] == kept
    assert kept in client.calls_of("critic")[0]["messages"][-1]["content"]
    assert "Many web services" not in client.calls_of("critic")[0]["messages"][-1]["content"]
    warnings = [
        e["message"] for e in map(json.loads, llm.trace.path.read_text().splitlines()) if e["event"] == "warning"
    ]
    assert any("code mended the draft" in w and "first 2 sentences" in w for w in warnings)


def test_a_draft_cut_off_at_its_token_limit_is_not_mended(make_llm) -> None:
    client = FakeClient(
        planner=[plan()],
        worker=[completion(THREE, finish_reason="length"), completion(THREE[: THREE.index(" Many")])],
        critic=[verdict(True)],
    )
    state = mas.orchestrate(TASK, make_llm(client))
    assert len(client.calls_of("worker")) == 2  # the first was rejected by code, as written
    assert mas.reviews(state)[0]["draft"] == THREE and state["stop_reason"] == "approved"


def test_the_replay_counts_the_drafts_code_would_have_mended(tmp_path) -> None:
    from bench.repair_replay import replay

    trace = tmp_path / "trace.jsonl"
    events = [
        {"event": "start", "requirements": [{"kind": "sentences", "value": 2, "quote": "exactly two sentences"}]},
        {"event": "step", "role": "worker", "body": THREE},  # three sentences: cut to two
        {"event": "step", "role": "worker", "body": "One sentence."},  # too few: nothing to cut
        {"event": "step", "role": "worker", "body": "One. Two."},  # passes as written
    ]
    trace.write_text("\n".join(map(json.dumps, events)))
    results = tmp_path / "results.jsonl"
    rows = [{"task": "t03", "mode": "loop", "trace": str(trace)}, {"task": "t03", "mode": "single"}]
    rows.append({"task": "t03", "mode": "loop", "trace": str(tmp_path / "gone.jsonl")})
    results.write_text("\n".join(map(json.dumps, rows)))
    counts = replay([results])
    assert counts["drafts"] == 3 and counts["drafts code rejected"] == 2 and counts["cut"] == 1
    assert counts["...and the task's own checker passed"] == 1 and counts["traces missing"] == 1
