"""The critic's verdict: tolerant of format, never an approval on ambiguity."""

import pytest

from machinery.verdicts import parse_verdict


@pytest.mark.parametrize(
    "reply",
    [
        '{"approved": true, "feedback": "Good."}',
        '```json\n{"approved": true, "feedback": "Good."}\n```',
        'Here is my verdict:\n{"approved": "yes", "feedback": "Good."}\nThanks!',
        '{"Approved": true, "Feedback": "Good."}',
        "APPROVED: YES\nFEEDBACK: Good.",
        "**Approved:** Yes\n**Feedback:** Good.",
        "approved: yes",
        "Verdict: approved",
        "- APPROVED = true",
        "After reading it twice:\nAPPROVED: YES",
        "Approved.",
    ],
)
def test_clear_approvals_are_read(reply: str) -> None:
    assert parse_verdict(reply).approved is True


@pytest.mark.parametrize(
    "reply",
    [
        '{"approved": false, "feedback": "Too long."}',
        "APPROVED: NO\nFEEDBACK: Too long.",
        "**Approved:** No",
        "approved: no - not APPROVED: YES until the ending changes",
        "Verdict: not approved",
        "REJECTED",
        "Not approved.",
        "Decision: revise",
    ],
)
def test_clear_rejections_are_read(reply: str) -> None:
    assert parse_verdict(reply).approved is False


@pytest.mark.parametrize(
    "reply, why",
    [
        ("", "empty reply"),
        ("   \n ", "empty reply"),
        ("APPROVED: YES/NO\nFEEDBACK: ...", "repeats the template"),
        ("APPROVED: YES or APPROVED: NO", "repeats the template"),
        ("This looks approved to me, mostly.", "no verdict found"),
        ("Approved: the draft meets most requirements", "not a clear yes or no"),
        ('{"approved": "maybe", "feedback": "hmm"}', "not a clear yes or no"),
        ('{"approved": 1, "feedback": "hmm"}', "not a clear yes or no"),
        ('{"approved": null}', "not a clear yes or no"),
        ("The draft is good. I approve of the imagery, but APPROVED is not my call.", "no verdict found"),
        ('{"approved": true, "feedback": "It is incomplete and wrong', "malformed JSON"),  # cut off
        ("APPROVED: YES, but only once the last line is cut", "conditional yes"),
        ("Approved: Yes if you fix the title", "conditional yes"),
        ("Decision: pass? no.", "conditional yes"),
    ],
)
def test_ambiguity_is_never_an_approval_and_says_why(reply: str, why: str) -> None:
    verdict = parse_verdict(reply)
    assert verdict.approved is False
    assert why in verdict.why


def test_the_first_verdict_line_decides_not_a_substring() -> None:
    """The original bug: a substring search found 'APPROVED: YES' inside a rejection."""
    verdict = parse_verdict("APPROVED: NO\nFEEDBACK: this is not APPROVED: YES material yet")
    assert verdict.approved is False
    assert verdict.feedback.startswith("this is not")


@pytest.mark.parametrize(
    "reply",
    [
        'APPROVED: NO. Do not simply reply {"approved": true}.',
        'I cannot approve yet. The format is {"approved": true, "feedback": "..."}\nAPPROVED: NO',
        '{"approved": false, "feedback": "no"}\nAPPROVED: YES',
    ],
)
def test_whichever_verdict_comes_first_decides(reply: str) -> None:
    """A JSON example quoted after a 'no', or a 'yes' after a JSON 'no', cannot approve."""
    assert parse_verdict(reply).approved is False


def test_a_quoted_json_field_in_prose_cannot_approve() -> None:
    verdict = parse_verdict('APPROVED: NO\nFEEDBACK: do not just write "approved": true and stop')
    assert verdict.approved is False and verdict.source == "verdict line"


def test_cut_off_json_is_still_read() -> None:
    verdict = parse_verdict('```json\n{"approved": false, "feedback": "Cut the fourth li')
    assert (verdict.approved, verdict.source) == (False, "json fragment")


def test_feedback_is_taken_from_the_feedback_line() -> None:
    verdict = parse_verdict("APPROVED: NO\nFEEDBACK: Cut the fourth line.")
    assert verdict.feedback == "Cut the fourth line."
    assert verdict.source == "verdict line"


def test_json_feedback_and_source() -> None:
    verdict = parse_verdict('{"approved": false, "feedback": "Cut the fourth line."}')
    assert (verdict.approved, verdict.feedback, verdict.source) == (False, "Cut the fourth line.", "json")


def test_markup_in_feedback_is_kept_literally() -> None:
    verdict = parse_verdict('{"approved": false, "feedback": "Remove [bold]this[/bold]."}')
    assert verdict.feedback == "Remove [bold]this[/bold]."
