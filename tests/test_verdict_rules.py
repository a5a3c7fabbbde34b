"""The verdict rule, held against tricky replies and generated text.

The rule (CONCEPTS.md, section 8): every verdict a reply states is found, and the
reply approves only when all of them are an unconditional yes and one is stated
outright. Property tests check the two promises that matter: text without an
unambiguous approval is never approved, and parsing never raises.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machinery.verdicts import _HEDGES, _YES, _words, parse_verdict

# Replies that must NOT approve: each one hides a no, a condition or a template.
NOT_APPROVALS = [
    "APPROVED: YES, though the ending is weak",
    "APPROVED: YES as long as the title stays",
    "APPROVED: mostly",
    "APPROVED: partially",
    "APPROVED: YES, mostly",
    "APPROVED: YES assuming the facts are right",
    "APPROVED: [YES/NO]",
    "APPROVED: <YES or NO>",
    "APPROVED: {YES|NO}",
    "APPROVED: YES or APPROVED: NO",
    '{"approved": false, "approved": true, "feedback": "x"}',
    "> APPROVED: YES\nAPPROVED: NO",
    'Example: {"approved": true, "feedback": "..."}\nAPPROVED: NO',
    "Not approved yet.\nAPPROVED: YES",
    '{"approved": true, "feedback": "fine"}\n{"approved": false, "feedback": "wait, no"}',
    "✅ APPROVED: NO",
    "<think>It is fine. APPROVED: YES</think>",  # only the scratchpad says yes
    "<think>still thinking, APPROVED: YES",  # a scratchpad cut off
    'I would reply {"approved": true} if it were shorter.',  # a yes that is only quoted
    "[" * 1500 + "]" * 1500,
    '{"approved": true, "feedback": "ok"} Wait, actually, no: the ending is wrong.',  # prose after the JSON
    '{"approved": true, "feedback": "The draft does not fully meet the task."}',
    '{"a":' * 1500 + '{"approved": true}' + "}" * 1500,
]

# Clear approvals, in the shapes small and reasoning models really write.
APPROVALS = [
    "APPROVED: YES. It works well when read aloud.",
    "{'approved': True, 'feedback': 'Good.'}",
    "1. APPROVED: YES",
    "✅ Approved",
    "APPROVED: ✅",
    '<think>Count the lines: three. Good.</think>\n{"approved": true, "feedback": "Three lines."}',
    '{"verdict": "approved"}',
    '{"approved": "Yes.", "feedback": "ok"}',
    "**APPROVED:** YES\n**FEEDBACK:** The haiku keeps the form.",
    'Sure! {"approved": true, "feedback": "Three lines, on topic."}',  # a preamble that ends a sentence
]


@pytest.mark.parametrize("reply", NOT_APPROVALS)
def test_ambiguous_replies_are_rejected(reply: str) -> None:
    verdict = parse_verdict(reply)
    assert verdict.approved is False, verdict.why
    assert verdict.why


@pytest.mark.parametrize("reply", APPROVALS)
def test_clear_approvals_are_accepted(reply: str) -> None:
    verdict = parse_verdict(reply)
    assert verdict.approved is True, verdict.why


YES_WORDS = ["YES", "Yes", "yes", "true", "Approved", "✅"]
NO_LINES = ["APPROVED: NO", "Not approved.", "REJECTED", '{"approved": false}', "❌", "Verdict: rejected"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_parsing_any_text_never_raises(text: str) -> None:
    verdict = parse_verdict(text)
    assert isinstance(verdict.approved, bool) and isinstance(verdict.feedback, str)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="✅✔☑👍"), max_size=300))
def test_text_without_any_yes_word_is_never_approved(text: str) -> None:
    words = set(_words(text))
    if not words & _YES and "true" not in text.lower():
        assert parse_verdict(text).approved is False


@settings(max_examples=300, deadline=None)
@given(
    before=st.text(max_size=120),
    after=st.text(max_size=120),
    yes=st.sampled_from(YES_WORDS),
    no=st.sampled_from(NO_LINES),
    no_first=st.booleans(),
)
def test_a_no_anywhere_beside_a_yes_is_never_an_approval(
    before: str, after: str, yes: str, no: str, no_first: bool
) -> None:
    lines = [f"APPROVED: {yes}", no]
    if no_first:
        lines.reverse()
    reply = "\n".join([before, *lines, after])
    assert parse_verdict(reply).approved is False


@settings(max_examples=200, deadline=None)
@given(
    yes=st.sampled_from(YES_WORDS),
    hedge=st.sampled_from(sorted(_HEDGES)),
    tail=st.text(alphabet="abcdefghij ", max_size=30),
)
def test_a_yes_with_a_hedge_on_its_line_is_never_an_approval(yes: str, hedge: str, tail: str) -> None:
    assert parse_verdict(f"APPROVED: {yes}, {hedge} {tail}").approved is False


@settings(max_examples=25, deadline=None)
@given(depth=st.integers(min_value=1, max_value=3000), approved=st.booleans())
def test_deeply_nested_json_never_raises(depth: int, approved: bool) -> None:
    reply = '{"x": ' * depth + json.dumps({"approved": approved}) + "}" * depth
    assert parse_verdict(reply).approved in (False, approved)


REAL_REPLIES = Path(__file__).parent / "data" / "critic_replies.jsonl"


def real_replies() -> list[dict[str, object]]:
    return [json.loads(line) for line in REAL_REPLIES.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_real_replies_from_the_local_model_are_read_as_a_person_reads_them() -> None:
    """Critic replies collected from Qwen2.5-Coder-1.5B runs, each labelled by reading it; see tests/data."""
    replies = real_replies()
    assert len(replies) >= 82  # 42 from the first collection, 109 from the second (tests/data/critic_replies.jsonl)
    wrong = [
        (r["should_approve"], r["reply"])
        for r in replies
        if parse_verdict(str(r["reply"])).approved != r["should_approve"]
    ]
    assert wrong == []


# -- a yes counts only when the reply as a whole says yes ------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "APPROVED: yes, with reservations",
        "APPROVED: Yes, contingent on fixing the JSON",
        "APPROVED: yes, on condition that the list has four items",
        "I can't approve this draft.\nAPPROVED: YES\nFEEDBACK: too long",
        "This is NOT approved.\n\nAPPROVED: YES",
        "I would not approve this as it stands.\nAPPROVED: YES",
        'For reference:\n{"approved": true, "feedback": "..."}\nMy actual verdict',
        "**Approved:** ~~Yes~~ No",
        '{"approved": true, "feedback": "Correct and on topic, but it lacks the fifth item."}',
    ],
)
def test_replies_a_person_would_not_call_an_approval_are_not_one(reply: str) -> None:
    assert parse_verdict(reply).approved is False


CLEAR_YES = [
    '{"approved": true, "feedback": "Good."}',
    "APPROVED: YES\nFEEDBACK: It reads well aloud.",
    '{"approved": true, "feedback": "The draft meets every requirement; nothing is missing."}',
    "Approved.",
    "**Approved:** Yes\n**Feedback:** Clear and complete.",
]
NEGATIONS = [
    f"{who} {neg} {verb} {what}."
    for who in ("I", "We", "Honestly, I")
    for neg in ("can't", "cannot", "would not", "won't", "do not", "don't")
    for verb in ("approve", "accept", "sign off on")
    for what in ("this draft", "it", "the draft as it stands")
] + ["This is NOT approved.", "It is not ready.", "Approval is withheld.", "Not approved yet."]


@settings(max_examples=300, deadline=None)
@given(approval=st.sampled_from(CLEAR_YES), negation=st.sampled_from(NEGATIONS), at=st.integers(0, 10))
def test_a_sentence_that_withholds_approval_added_anywhere_is_a_rejection(
    approval: str, negation: str, at: int
) -> None:
    assert parse_verdict(approval).approved is True
    lines = approval.splitlines()
    lines.insert(at % (len(lines) + 1), negation)
    assert parse_verdict("\n".join(lines)).approved is False


@settings(max_examples=300, deadline=None)
@given(
    reply=st.sampled_from([str(r["reply"]) for r in real_replies()] + CLEAR_YES),
    struck=st.text(alphabet=st.characters(blacklist_characters="~\n\r"), min_size=1, max_size=40)
    | st.sampled_from(["APPROVED: YES", "APPROVED: NO", '{"approved": true}', "Not approved", "✅"]),
    at=st.integers(0, 20),
)
def test_struck_through_text_never_counts(reply: str, struck: str, at: int) -> None:
    lines = reply.splitlines()
    lines.insert(at % (len(lines) + 1), f"~~{struck}~~")
    assert parse_verdict("\n".join(lines)).approved == parse_verdict(reply).approved


@pytest.mark.parametrize(
    ("reply", "approved"),
    [
        ('{"approved": true, "verdict": "rejected"}', False),  # every verdict key is read
        ("APPROVED: yes and no", False),  # a no inside the yes's own value
        ("APPROVED: YES (just kidding) NO", False),
        ("APPROVED: ✅ ❌", False),
        ("APPROVED: true-ish", False),
        ("Not yet.\nAPPROVED: YES", False),
        ("Approved: Yes\nHowever, change the title.", False),  # a reservation anywhere
        ('Check the format below:\n{"approved": false}\nAPPROVED: YES', False),
        ('For example:\n{"approved": false}\nAPPROVED: YES', False),  # an example's no still counts, its yes never
        ("APPROVED: Yes, no changes needed.", True),  # "no changes" is not a no
        ('Here is my verdict in the format you asked for:\n{"approved": true, "feedback": "Good."}', True),
        ("YES, no issues.", True),
        ('{"approved": true, "feedback": "Not quite: the title is missing."}', False),  # a denial stops at a colon
        ("APPROVED: YES\nFEEDBACK: Yes, but it has no ending.", False),  # a yes with a but
        ('{"approved": true, "feedback": "Nothing is missing."}', True),
        ('{"approved": true, "feedback": "Not just good but excellent."}', True),  # review: praise, not a "good, but"
        ('{"approved": true, "feedback": "Good, but the title is weak."}', False),
        ('{"approved": true, "feedback": "Good but the second line is weak."}', False),  # no comma needed
    ],
)
def test_what_a_reviewer_found_is_read_as_a_person_reads_it(reply: str, approved: bool) -> None:
    assert parse_verdict(reply).approved is approved
