"""Code cuts a draft that is over a count, and moves paragraph breaks; it never writes a word.

Live, the 1.5B worker wrote three sentences for "exactly two", four times in a row, and one block of text for
"two paragraphs" in nine drafts out of twelve. These tests hold what ``machinery/repairs.py`` may do (cut the
surplus, re-space; keep every check that passed) and what the chapter does with it (the critic still judges,
the trace says what code cut, a draft cut off at its limit is left alone).
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import multi_agent_system as mas
from conftest import FakeClient, completion, tool, verdict
from machinery.checks import ABOUT_TOLERANCE, EVERY_DRAFT, SENTENCE_END, Requirement, measure
from machinery.repairs import FIXERS, MENDED, MIN_SENTENCE_WORDS, Repair, repaired

TWO = Requirement("sentences", 2, "exactly two sentences")
IDEAS = [
    "The first idea is stated here.",
    "A second idea follows it now.",
    "A third idea adds to them.",
    "The fourth idea ends it all.",
]
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
    draft = "\n\n".join(IDEAS)
    fix = repaired(draft, [Requirement("paragraphs", 2, "two paragraphs")])
    assert fix is not None and fix.draft.count("\n\n") == 1 and fix.draft.split() == draft.split()


def test_list_items_past_the_count_are_dropped_with_the_lines_under_them() -> None:
    draft = "Benefits:\n1. Speed\n2. Safety\n3. Focus\n4. Regression checks\n5. Docs\n   - kept current\n6. Design"
    fix = repaired(draft, [Requirement("numbered", 4, "4 benefits as a numbered list")])
    assert fix is not None and fix.draft == "Benefits:\n1. Speed\n2. Safety\n3. Focus\n4. Regression checks"


def test_items_are_not_dropped_when_prose_follows_them() -> None:
    """Seen live (ac8413a): five items, then a stray line "regression" that alone met "mention 'regression'"."""
    draft = "1. Speed\n2. Safety\n3. Focus\n4. Fewer regressions\n5. Docs\nregression"
    checks = [Requirement("numbered", 4, "4 benefits"), Requirement("include", "regression", "mention 'regression'")]
    assert FIXERS["numbered"](draft, checks[0]) is None and repaired(draft, checks) is None


def test_a_word_limit_is_met_by_ending_at_a_sentence() -> None:
    draft = "Short first sentence here. " * 5
    fix = repaired(draft, [Requirement("max_words", 9, "under 10 words")])
    assert fix is not None and fix.draft == "Short first sentence here. Short first sentence here."


def test_about_n_words_is_cut_into_the_band_the_check_allows() -> None:
    sentence = "One two three four five six seven eight nine ten. "
    about = Requirement("about_words", 50, "about 50 words")
    low, high = math.floor(50 * (1 - ABOUT_TOLERANCE)), math.ceil(50 * (1 + ABOUT_TOLERANCE))
    fix = FIXERS["about_words"](sentence * ((high + 10) // 10), about)
    assert fix is not None and low <= len(fix.draft.split()) <= high and measure(fix.draft, about)[0]


def test_no_cut_after_an_abbreviation_or_a_bare_list_marker() -> None:
    """Seen live (ac8413a): a draft cut after "2." on a line of its own, which code then rejected as an empty item;
    and the review's fragments, each of which the sentence count would have passed."""
    one = Requirement("sentences", 1, "in one sentence")
    for draft in (
        "Eat fruit, e.g. apples. Eat greens daily. Sleep well at night.",
        "Prof. Lee teaches math well. She is kind to all. Third one here.",
        "The U.S. Army is very big. It has many soldiers. A third sentence.",
        "Martin Luther King Jr. Day is in January. It honours him. Third sentence here.",
        "On Jan. 5 we met again. It was cold that day. We left early.",
        "J. K. Rowling wrote the books. They sold well. Many read them.",
        'She said, "Go. Now. Please." and then she left. It was late.',
        "A. First option here. B. Second option here. C. Third option here.",
        "Steps: 1. Boil the water. 2. Add the tea. 3. Wait a while.",
        "It was big. and it was old. It fell down last year.",  # a lower-case word: the sentence goes on
    ):
        assert FIXERS["sentences"](draft, one) is None and FIXERS["sentences"](draft, TWO) is None, draft
    assert repaired("An API links programs.\n\n2. It defines calls.\n\n3. It hides details.", [TWO]) is None
    assert FIXERS["sentences"]("It runs fast now. It is 3.5 times faster. It is cheap.", TWO) is not None


def test_no_cut_inside_a_list_or_before_a_sign_off() -> None:
    """The review's t21: an email cut after "1. Checked the thermostat", dropping the rest and the sign-off."""
    under = Requirement("max_words", 30, "under 31 words")
    email = "Dear Sam,\nThe heater broke last night. It will not start at all. Please send someone soon.\nBest regards,\nAnn"
    assert FIXERS["max_words"](email, Requirement("max_words", 12, "under 13 words")) is None
    listed = "I tried three things today.\n1. Checked the thermostat settings twice.\n2. Reset the breaker.\n3. Waited."
    assert FIXERS["max_words"](listed * 2, under) is None and FIXERS["sentences"](listed, TWO) is None


def test_no_cut_of_a_nested_list_or_a_list_in_a_code_block() -> None:
    nested = "- Alpha item\n  - a detail\n  - another\n- Beta item\n  - b detail\n- Gamma item"
    assert FIXERS["bullets"](nested, Requirement("bullets", 2, "two bullet points")) is None
    fenced = "```\n- one\n- two\n- three\n```"
    for kind in ("bullets", "items", "lines", "sentences", "max_words", "paragraphs"):
        assert FIXERS[kind](fenced, Requirement(kind, 1, kind)) is None, kind


def test_a_poem_loses_its_title_or_its_last_whole_stanzas_never_half_of_one() -> None:
    four = Requirement("lines", 4, "a four-line poem")
    stanza = "Leaves of amber fall\nthe wind keeps them\nrain on the roof\nthe night is long"
    fix = FIXERS["lines"](f"Amber Leaves\n\n{stanza}", four)
    assert fix is not None and fix.draft == stanza and "title" in fix.how
    fix = FIXERS["lines"](f"{stanza}\n\nA second stanza\nof two lines", four)
    assert fix is not None and fix.draft == stanza
    assert FIXERS["lines"](stanza + "\nand a fifth line ends it", four) is None  # the punchline is not cut
    assert FIXERS["lines"]("one\ntwo\nthree", Requirement("lines", 0, "no lines")) is None
    spaced = "Autumn Leaves\n\nRed leaves fall down\n\nthe wind blows them\n\nwinter comes at last"
    assert FIXERS["lines"](spaced, Requirement("lines", 3, "three lines")) is None  # a blank line after every line
    assert FIXERS["lines"](spaced.split("\n\n", 1)[1], Requirement("lines", 2, "two lines")) is None


def test_paragraphs_of_anything_but_prose_are_left_alone() -> None:
    two = Requirement("paragraphs", 2, "two paragraphs")
    for draft in (
        "# Why sleep matters\n\nSleep restores the body and mind.\n\nIt also sorts the day's memories.",
        "**Sleep**\n\nSleep restores the body and mind.\n\nIt also sorts the day's memories.",
        "| a | b |\n\nSleep restores the body and mind.\n\nIt also sorts the day's memories.",
        "Hi Sam.\n\nThanks for the long note you sent.\n\nBest regards, Ann.",  # a greeting and a sign-off
        "Hello there my dear friend Sam.\n\nThanks for the long note you sent.\n\nIt made my whole week better.",
        "Thanks for the long note you sent.\n\nIt made my week.\n\nBest regards to you and your family.",
        "- Sleep restores the body.\n\n- It also sorts memories.\n\n- It saves energy.",  # a list ending in stops
        "Roses are red.\nViolets are blue.",  # one block, but lines of verse
    ):
        assert FIXERS["paragraphs"](draft, two) is None, draft


def test_a_split_keeps_whole_sentences_of_a_few_words() -> None:
    two = Requirement("paragraphs", 2, "two paragraphs")
    assert FIXERS["paragraphs"]("Prof. Lee teaches math at the school. She is kind to everyone there.", two) is None
    assert FIXERS["paragraphs"]("The whole class agreed on the plan today. Yes.", two) is None
    assert FIXERS["paragraphs"]("The whole class agreed on the plan. It starts on Monday.", two) is not None


def test_cuts_come_before_paragraph_breaks() -> None:
    text = "The sky is blue today. Clouds drift across it slowly. Birds fly under them. The sun sets in the west."
    checks = [Requirement("paragraphs", 2, "two paragraphs"), Requirement("sentences", 2, "two sentences")]
    fix = repaired(text, checks)
    assert fix is not None and fix.draft == "The sky is blue today.\n\nClouds drift across it slowly."


def test_a_cut_that_does_not_meet_its_own_count_is_not_made(monkeypatch) -> None:
    monkeypatch.setitem(FIXERS, "sentences", lambda d, r: Repair(d.rsplit(" ", 1)[0], "dropped a word"))
    assert repaired(FOUR_SENTENCES, [TWO]) is None


def test_joined_paragraphs_keep_their_lines() -> None:
    fix = repaired("\n\n".join(IDEAS), [Requirement("paragraphs", 2, "two paragraphs")])
    assert fix is not None and fix.draft == "\n".join(IDEAS[:2]) + "\n\n" + "\n".join(IDEAS[2:])


def test_joined_paragraphs_keep_a_loop_in_sight() -> None:
    looping = "\n\n".join(["I love the sea so much."] * 4)
    fix = repaired(looping, [Requirement("paragraphs", 2, "two paragraphs")])
    assert fix is not None and not measure(fix.draft, EVERY_DRAFT[0])[0]  # still read as the loop it is


def test_a_cut_that_hides_a_fault_instead_of_mending_it_is_not_made(monkeypatch) -> None:
    """A join onto one line would pass "no repeated lines" with the loop still there: only counts may pass by a cut."""
    looping = "\n\n".join(["I love the sea so much."] * 4)
    monkeypatch.setitem(FIXERS, "paragraphs", lambda d, r: Repair(" ".join(d.split()), "joined onto one line"))
    assert repaired(looping, [Requirement("paragraphs", 1, "one paragraph")]) is None


def test_two_counts_mended_and_a_phrase_kept_or_no_cut() -> None:
    draft = FOUR_SENTENCES
    words, sentences = Requirement("max_words", 10, "at most 10 words"), Requirement("sentences", 2, "two sentences")
    fix = repaired(draft, [sentences, words])
    assert (
        fix is not None
        and fix.draft == "Dogs bark at night. Cats purr on laps."
        and not failed(fix.draft, [sentences, words])
    )
    assert repaired(draft, [sentences, words, Requirement("include", "dawn", "say 'dawn'")]) is None


def test_nothing_is_mended_that_needs_words_added_or_taken_out_of_the_middle() -> None:
    assert repaired("One sentence only.", [TWO]) is None  # only a model can write the second
    assert repaired("A riddle. I am a candle.", [Requirement("exclude", "candle", "no 'candle'")]) is None
    assert repaired("Too short.", [Requirement("min_words", 40, "at least 40 words")]) is None
    assert "exclude" not in FIXERS and "min_words" not in FIXERS


WORD = st.from_regex(r"[a-z]{1,8}", fullmatch=True)
SENTENCE = st.one_of(
    st.from_regex(r"[A-Z][a-z]{1,8}( [a-z]{1,8}){0,6}[.!?]", fullmatch=True),
    st.sampled_from(
        [
            *("Eat fruit, e.g. apples.", "It is 3.5 km.", "Dr. Lee agrees.", "Wait...", "Sam", "The U.S. Army is big."),
            *('She said, "Go. Now." and left.', "J. K. Rowling wrote it.", "Best regards,", "A. First option here."),
        ]
    ),
)
LINE = st.one_of(
    SENTENCE,
    st.builds(lambda mark, s: f"{mark} {s}", st.sampled_from(["-", "*", "1.", "2)", "  -"]), SENTENCE),
    st.sampled_from(["# Title", "**Bold**", "2.", "| a | b |", "```", "Love,"]),
)
BLOCK = st.lists(st.tuples(LINE, st.sampled_from([" ", "\n", "\r\n"])), min_size=1, max_size=6).map(
    lambda parts: "".join(line + sep for line, sep in parts)
)
MIXED = st.lists(BLOCK, min_size=1, max_size=4).map("\n\n".join)
ITEM = st.builds(
    lambda mark, s, sub: f"{mark} {s}" + sub,
    st.sampled_from(["-", "*", "1.", "2)"]),
    SENTENCE,
    st.sampled_from(["", "\n   - a detail"]),
)
LIST = st.lists(ITEM, min_size=1, max_size=9).map("\n".join)
PROSE = st.lists(st.lists(SENTENCE, min_size=1, max_size=5).map(" ".join), min_size=1, max_size=5).map("\n\n".join)
DRAFT = st.one_of(MIXED, LIST, PROSE, st.builds(lambda a, b: f"{a}\n\n{b}", PROSE, LIST))
REQUIREMENT = st.builds(
    lambda kind, n: Requirement(kind, n, f"{kind} {n}"), st.sampled_from(sorted(FIXERS)), st.integers(0, 12)
)
PHRASE = st.builds(lambda w: Requirement("include", w, f"use '{w}'"), WORD)


def is_in_order_within(words: list[str], original: list[str]) -> bool:
    rest = iter(original)
    return all(any(w == o for o in rest) for w in words)


@given(DRAFT, st.lists(st.one_of(REQUIREMENT, PHRASE), min_size=1, max_size=3))
def test_code_writes_no_word_breaks_no_check_and_always_fixes_one(draft: str, checks: list[Requirement]) -> None:
    fix = repaired(draft, checks)
    if fix is None:
        return
    assert is_in_order_within(fix.draft.split(), draft.split())  # cut or re-spaced, never written
    everything = [*checks, *EVERY_DRAFT]
    before, after = failed(draft, everything), failed(fix.draft, everything)
    assert after < before  # fewer failed, and none failed that passed before, the checks every draft gets included
    assert all(everything[i].kind in FIXERS for i in before - after)  # only counts pass because of a cut
    assert fix.how and fix.draft.strip()


@given(DRAFT, REQUIREMENT)
def test_each_fixer_cuts_only_from_the_end_or_only_re_spaces(draft: str, r: Requirement) -> None:
    fix = FIXERS[r.kind](draft, r)
    if fix is None:
        return
    words, original = fix.draft.split(), draft.split()
    if r.kind == "paragraphs":
        assert words == original  # the same words; only the breaks moved
    elif "title" in fix.how:
        assert words == original[len(words) - len(original) :] or original[-len(words) :] == words
    else:
        assert words == original[: len(words)] and len(words) < len(original)  # a prefix: nothing from the middle
    if r.kind in ("sentences", "max_words", "about_words"):  # whole sentences of a few words each, no fragments
        ends = [0, *(m.end() for m in SENTENCE_END.finditer(fix.draft))]
        assert all(len(fix.draft[a:b].split()) >= MIN_SENTENCE_WORDS for a, b in itertools.pairwise(ends))


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
    assert any(w.startswith(MENDED) and "first 2 sentences" in w for w in warnings)
    assert "code mended the draft" in client.calls_of("critic")[0]["messages"][-1]["content"]  # it judges what is left


def test_a_cut_onto_a_rejected_draft_is_not_made_and_the_worker_hears_the_count(make_llm) -> None:
    """The review's case: the worker answers "name an example" by adding one past the count. Cut, it would be
    the rejected draft again, the example gone: code says "cut 1 sentence" instead, so the worker learns where."""
    kept = THREE[: THREE.index(" Many")]
    added = kept + " For example, Stripe offers one."
    other = "An API is a contract between programs. Stripe's, for example, lets a shop take payments."
    client = FakeClient(
        planner=[plan(), plan()],
        worker=[completion(THREE), completion(added), completion(other)],
        critic=[verdict(False, "Name one real API as an example."), verdict(True)],
    )
    state = mas.orchestrate(TASK, make_llm(client))
    first, second = mas.reviews(state)[:2]
    assert first["draft"] == kept and second["draft"] == added and second["judge"] == "code"
    assert "cut 1 sentence" in second["feedback"] and state["result"] == other
    assert mas.REPEATED not in client.calls_of("worker")[2]["messages"][-1]["content"]  # not told it repeated


def test_the_walkthrough_replays_a_run_where_code_cut_a_draft(make_llm) -> None:
    client = FakeClient(planner=[plan()], worker=[completion(THREE)], critic=[verdict(True)])
    llm = make_llm(client)
    mas.orchestrate(TASK, llm)
    trace_walkthrough = tool("trace_walkthrough")
    text = trace_walkthrough.render(trace_walkthrough.read_events(llm.trace.path))  # raises if the replay disagrees
    assert "kept the first 2 sentences of 3" in text


def test_a_draft_cut_off_at_its_token_limit_is_not_mended(make_llm) -> None:
    client = FakeClient(
        planner=[plan()],
        worker=[completion(THREE, finish_reason="length"), completion(THREE[: THREE.index(" Many")])],
        critic=[verdict(True)],
    )
    state = mas.orchestrate(TASK, make_llm(client))
    assert len(client.calls_of("worker")) == 2  # the first was rejected by code, as written
    assert mas.reviews(state)[0]["draft"] == THREE and state["stop_reason"] == "approved"


def test_the_walkthrough_reads_a_cut_from_the_trace_and_knows_an_afresh_re_ask(make_llm) -> None:
    kept = THREE[: THREE.index(" Many")]
    other = "An API is a contract between programs. It says what each may ask of the other."
    client = FakeClient(
        planner=[plan()],
        worker=[completion(THREE), completion(kept), completion(other)],  # the second repeats the rejected draft
        critic=[verdict(False, "Name one real API as an example."), verdict(True)],
    )
    llm = make_llm(client)
    state = mas.orchestrate(TASK, llm)
    assert state["result"] == other and len(client.calls_of("worker")) == 3 and state["iteration"] == 2
    text = tool("trace_walkthrough").render(tool("trace_walkthrough").read_events(llm.trace.path))
    assert "kept the first 2 sentences of 3" in text and "writes draft 2 afresh in iteration 2" in text


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
    cut = tmp_path / "cut.jsonl"  # a trace whose drafts code cut already: its step bodies are not what was written
    cut.write_text("\n".join(map(json.dumps, [*events, {"event": "warning", "message": f"{MENDED}: kept two"}])))
    rows.append({"task": "t03", "mode": "loop", "trace": str(cut)})
    results.write_text("\n".join(map(json.dumps, rows)))
    counts = replay([results])
    assert counts["traces skipped: code cut drafts in them already"] == 1
    assert counts["drafts"] == 3 and counts["drafts code rejected"] == 2 and counts["cut"] == 1
    assert counts["...and the task's own checker passed"] == 1 and counts["traces missing"] == 1
