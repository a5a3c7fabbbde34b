"""What code can check, code checks: requirements found in a task, and measured in a draft."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import multi_agent_system as mas
from conftest import FakeClient, completion, verdict
from machinery.checks import ABOUT_TOLERANCE, KINDS, REPEAT_LIMIT, Requirement, measure
from machinery.finder import requirements_from_task
from machinery.plans import fallback_plan

R = Requirement


def _hashable(value: object) -> object:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):  # a table: its fields, in order, as pairs
        return tuple((k, _hashable(v)) for k, v in sorted(value.items()))
    return value


def found(task: str) -> set[tuple[str, object]]:
    return {(r.kind, _hashable(r.value)) for r in requirements_from_task(task)}


@pytest.mark.parametrize(
    "task, expected",
    [
        ("Summarise the report in no more than 60 words.", {("max_words", 60)}),
        # missed on the held-out tasks (bench/heldout_task_set.py), written by a helper who had not seen the finder
        (
            "Describe a market in five sentences, without ever using the word 'vegetable'.",
            {("sentences", 5), ("exclude", "vegetable")},
        ),
        ("Summarize Cinderella, and make sure the phrase 'glass slipper' shows up.", {("include", "glass slipper")}),
        ("Make me a packing checklist: a numbered list with six items.", {("numbered", 6)}),
        ("Write a blog intro. Split it into two paragraphs.", {("paragraphs", 2)}),
        ("Explain tea in 2 to 3 sentences.", set()),  # "to" still bounds a range
        ("Describe a sunset in under twenty words", {("max_words", 19)}),
        ("An essay of at least 200 words on bees", {("min_words", 200)}),
        ("Write roughly 150 words about trains", {("about_words", 150)}),
        ("Draft a 250-word cover letter", {("about_words", 250)}),
        ("Between 40 and 60 words, explain DNS", {("min_words", 40), ("max_words", 60)}),
        ("Give me exactly seven bullet points on sleep", {("bullets", 7)}),
        ("List four rivers in Europe", {("items", 4)}),
        ("Write 6 numbered steps to plant a tree", {("numbered", 6)}),
        ("A limerick in 5 lines", {("lines", 5)}),
        ("Explain gravity in three sentences.", {("sentences", 3)}),
        (
            "Output a JSON array of 4 objects with keys city and country",
            {("json_array", 4), ("json_keys", ("city", "country"))},
        ),
        ("Implement a Python function called merge_sorted(a, b)", {("function", "merge_sorted")}),
        ("Write a class named Stack in Python code", {("class", "Stack")}),
        (
            'A tweet that mentions the word "launch" but never uses the word "cheap"',
            {("include", "launch"), ("exclude", "cheap")},
        ),
        ("Write a haiku about winter", {("lines", 3)}),
        ("Tell me about your day.", set()),
        ("Explain what JSON is, and what Python is used for.", set()),  # a mention is not a format
        ("Write 2 paragraphs about cats", {("paragraphs", 2)}),  # paragraphs, not list items
        ("Give me five tips for sleep, each under 10 words", {("items", 5), ("item_max_words", 9)}),
        ("3 bullet points of at most 10 words each", {("bullets", 3), ("item_max_words", 10)}),
        ("Write 3 haiku about rain", set()),  # three poems, not three lines
        ("A 300-word essay with a two-word title", {("about_words", 300)}),
        ("Suggest 3 titles for a 500-word blog post", {("items", 3)}),  # the post's length is not the answer's
        ("Return JSON with keys name, age and email for a user", {("json_keys", ("name", "age", "email"))}),
        ("A name for a bottle: one line, without quotation marks", {("lines", 1), ("no_quotes", True)}),
        ("Answer in a single line, no quotes.", {("lines", 1), ("no_quotes", True)}),
        ("List 3 tips, each on one line.", {("items", 3)}),  # one line for each item, not one in all
        # found by the review: one line of a part is not one line in all; quotes of a source are not marks
        ("List five fruits, each fruit on one line", {("items", 5)}),
        ("Write a Python function; keep the return statement on one line", {("returns", True)}),
        ("Write a poem where one line mentions the sea", set()),
        ("Write a story in which at least one line is dialogue", set()),
        ("Summarize in a single line, then explain in detail", set()),
        ("Describe Python in one line", {("lines", 1)}),
        ("Describe cats and dogs in one line.", {("lines", 1)}),  # the review: "and" before it is no part
        ("Tell me a joke that fits on one line.", {("lines", 1)}),
        ("Name five colors, comma-separated, on a single line.", {("items", 5), ("lines", 1)}),
        ("Write a tweet. Avoid quotes from famous people", set()),
        ("Give me a JSON object with key name, no quotes around numbers", {("json", True)}),  # JSON needs its marks
        # from a fourth set of phrasings written without sight of the patterns (bench/data/finder_heldout.jsonl)
        ('Return JSON with the keys "name", "age", and "city".', {("json_keys", ("name", "age", "city"))}),
        (
            "A Markdown table with the columns Country, Capital, and Population, listing 5 countries (one per row).",
            {("table", (("columns", ("Country", "Capital", "Population")), ("rows", 5)))},
        ),
        ("What's the capital of Australia? Answer in one word.", {("exact_words", 1)}),
        (  # live task t29 (the finder missed its rows and an empty table was approved, 03a08d2)
            "Create a markdown table of 3 programming languages with columns Language, Year and Creator.",
            {("table", (("columns", ("Language", "Year", "Creator")), ("rows", 3)))},
        ),
        (
            "Make a table with 3 columns: Name, Age, City.",
            {("table", (("columns", ("Name", "Age", "City")), ("rows", None)))},
        ),
        # from the third review: a count of the table's parts, or of things per row, is no count of rows
        (
            "Make a table of 3 headings: Name, Age, City.",
            {("table", (("columns", ("Name", "Age", "City")), ("rows", None)))},
        ),
        ("Make a table of 4 attributes for each planet.", {("table", (("columns", None), ("rows", None)))}),
        ("Make a table comparing 2 laptops across 5 features.", {("table", (("columns", None), ("rows", None)))}),
        ("Make a table of 5 countries or more.", {("table", (("columns", None), ("rows", None)))}),
        ("Make a table of 3 facts about each of the 8 planets.", {("table", (("columns", None), ("rows", None)))}),
        ("Write a table-of-contents for a book on rivers.", set()),
        ("Make a table of contents for a report on rivers.", set()),
        ("Draft a thank-you note. Limit it to 80 words.", {("max_words", 80)}),
        (
            'Explain tides. Finish your response with this exact phrase "Any other questions?".',
            {("ends_with", "Any other questions?")},
        ),
        ("Write a letter. The first word of your response must be 'Dear'.", {("starts_with", "Dear")}),
        ("Show a bash one-liner. Do not wrap it in code fences.", {("no_code_fence", True)}),
        ("A motto, and don't put it in quotation marks.", {("no_quotes", True)}),
        ("Write a poem whose lines' first letters spell out CODE.", {("acrostic", "CODE")}),
        ("Write a sentence that uses the word 'serendipity'.", {("sentences", 1), ("include", "serendipity")}),
        (
            "Write a function named to_f in Python. It should return the result rather than print it.",
            {("function", "to_f"), ("returns", "to_f")},
        ),
        # from the fifth set, measured blind after the fourth's fixes
        (
            'Four steps to reset a router. Never mention "customer support".',
            {("items", 4), ("exclude", "customer support")},
        ),
        ('A poem about rain; make sure the word "silver" appears in it.', {("include", "silver")}),
        ('A tweet. The word "cheap" must not appear.', {("exclude", "cheap")}),
        ("A recipe. Refrain from using any bullet points.", {("no_bullets", True)}),
        ("A poem; the first letters of the lines should spell NIGHTOWL.", {("acrostic", "NIGHTOWL")}),
        # from the second review: a part of the answer is not the whole of it
        ("Keep the title to five words, and write a 200-word blurb.", {("about_words", 200)}),
        ("Limit the discussion to 100 words per section.", set()),
        ("List 5 fruits with one line of description.", {("items", 5)}),
        ("List 3 rivers and give one line on each.", {("items", 3)}),
        ("Write a sentence, a haiku, and a limerick about spring.", {("lines", 3)}),
        ("Write a sentence about cats, then a paragraph about dogs.", set()),
        ("Write a sentence-by-sentence analysis of the poem.", set()),
        ("Write a function named greet that prints a greeting. It should return nothing.", {("function", "greet")}),
        ("Describe each planet in one word.", set()),
        ("Describe Paris in one word or a short phrase.", set()),
        ("Reply in one word, then show your working.", set()),
        ('A story; the phrase "once upon a time" should not appear at the start.', set()),
        ('A post. The word "clutter" should appear in the response.', {("include", "clutter")}),
        ("Refrain from using bulleted lists, but numbered steps are fine.", set()),
    ],
)
def test_requirements_are_found_in_common_phrasings(task: str, expected: set[tuple[str, object]]) -> None:
    assert found(task) == expected


@pytest.mark.parametrize(
    "task",
    [
        "Make a markdown table with the columns Planet, Diameter and Moons, with exactly 4 rows of data.",
        "Make a markdown table with columns Planet, Diameter and Moons and 4 rows.",
        "A table (columns: Planet, Diameter, Moons) of 4 rows",
    ],
)
def test_a_tables_columns_end_where_the_sentence_turns(task: str) -> None:
    (table,) = requirements_from_task(task)
    assert table.value == {"columns": ["Planet", "Diameter", "Moons"], "rows": 4}


def test_every_requirement_quotes_the_task() -> None:
    task = "In at most 30 words, list 3 colours, each item under 4 words, without the word 'red'."
    requirements = requirements_from_task(task)
    assert requirements and all(r.quote.lower() in task.lower() for r in requirements)


@pytest.mark.parametrize(
    "draft, requirement, passes",
    [
        ("one two three", R("max_words", 3, ""), True),
        ("one two three four", R("max_words", 3, ""), False),
        (" ".join(["w"] * int(120 * (1 - ABOUT_TOLERANCE))), R("about_words", 120, ""), True),
        (" ".join(["w"] * (int(120 * (1 + ABOUT_TOLERANCE)) + 1)), R("about_words", 120, ""), False),
        ("- a\n- b\n- c", R("bullets", 3, ""), True),
        ("- a\n- b", R("bullets", 3, ""), False),
        ("1. a\n2. b\n3. c\n4. d", R("numbered", 3, ""), False),
        ("APPLE\nPEAR\nPLUM", R("items", 3, ""), True),
        ("APPLE\nPEAR\nPlum", R("uppercase", True, ""), False),
        ("It rains. It pours.", R("sentences", 2, ""), True),
        ('```json\n[{"a": 1}, {"a": 2}]\n```', R("json_array", 2, ""), True),
        ('[{"a": 1}, {"b": 2}]', R("json_keys", ["a"], ""), False),
        ("not json at all", R("json", True, ""), False),
        ("```python\ndef is_even(n):\n    return n % 2 == 0\n```", R("function", "is_even", ""), True),
        ("```python\ndef is_odd(n):\n    return n % 2\n```", R("function", "is_even", ""), False),
        ("```python\ndef is_even(n:\n```", R("function", "is_even", ""), False),
        ("Push on. Keep going!", R("ends_with", "Keep going.", ""), False),  # the sentence asked for ends with '.'
        ('Push on. "Keep going."', R("ends_with", "Keep going.", ""), True),
        ("Push on. Keep going!", R("ends_with", "Keep going", ""), True),  # no mark asked for: any will do
        ("The deep blue sea.", R("include", "deep blue", ""), True),
        ("The waters are calm.", R("exclude", "water", ""), False),  # a forbidden word in any form (858650a, t26)
        ("The lake is calm.", R("exclude", "water", ""), True),
        ("Water everywhere.", R("exclude", "water", ""), False),
        ("Cats\ncome\nclose", R("line_start", "C", ""), True),
        ("Cats\nsit", R("line_start", "C", ""), False),
        ('"Aqua Mate"', R("no_quotes", True, ""), False),
        ("'Aqua Mate'", R("no_quotes", True, ""), False),
        ("Don't stop: the students' bottle", R("no_quotes", True, ""), True),  # apostrophes are not quotation marks
        ("- -\n- -\n- -", R("no_empty_items", 0, ""), False),
        ("1. Tea\n2.\n3. Milk", R("no_empty_items", 0, ""), False),
        ('```json\n[\n  {\n    "a": 1\n  }\n]\n```', R("no_empty_items", 0, ""), True),  # JSON braces are not items
        ("[\n  {\n  }\n]", R("no_empty_items", 0, ""), True),
        ("- one - two\n- three", R("no_empty_items", 0, ""), True),
        ("France, Spain and Italy.", R("items", 3, ""), True),  # a list on one line
        ("```python\nprint(1)\nprint(2)\n```", R("lines", 2, ""), True),  # fences are not lines
        ("```python\n" + "for x in xs:\n    pass\n" * 3 + "```", R("no_repeats", REPEAT_LIMIT, ""), True),
        (  # a refrain sung three times among ten other lines is a song, not a loop
            "\n".join(["sing the long refrain now"] * 3 + [f"verse line number {n} here" for n in range(10)]),
            R("no_repeats", REPEAT_LIMIT, ""),
            True,
        ),
    ],
)
def test_each_kind_is_measured(draft: str, requirement: Requirement, passes: bool) -> None:
    passed, measured = measure(draft, requirement)
    assert passed is passes and measured


def test_a_failed_word_check_says_what_was_measured_and_what_is_required() -> None:
    passed, measured = measure(" ".join(["w"] * 212), R("about_words", 120, "about 120 words"))
    assert not passed and measured.startswith("212 words") and "about 120" in measured


def test_a_draft_that_repeats_itself_fails_every_time() -> None:
    looping = "\n".join(["The loop turns once more and again."] * REPEAT_LIMIT)
    checks = mas.measure_draft(looping)["checks"]
    assert [c["passed"] for c in checks if c["kind"] == "no_repeats"] == [False]


def test_every_phrasing_names_a_kind_of_the_one_table() -> None:
    """The finder's phrasings name kinds of checks.KINDS (or shorthands read into them): one table of kinds."""
    from machinery import finder

    shorthands = {"item_below_words", "word_range", "open_range", "below_words", "above_words", "form"}
    shorthands |= {"one_sentence", "one_paragraph", "one_line", "one_word", "whole_sentence"}
    for _pattern, kind in finder._PHRASINGS:
        assert kind in KINDS or kind in shorthands, kind
    for kind in shorthands:
        for r in finder._read_requirement(kind, ["3", "5"] if kind != "form" else ["haiku"], "q"):
            assert r.kind in KINDS


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_finding_requirements_never_raises_and_always_quotes(task: str) -> None:
    for r in requirements_from_task(task):
        assert r.quote.lower() in task.lower()


@settings(max_examples=200, deadline=None)
@given(draft=st.text(max_size=300), kind=st.sampled_from(sorted(KINDS)))
def test_measuring_never_raises(draft: str, kind: str) -> None:
    value = {"json_keys": ["a"], "include": "x", "exclude": "x", "function": "f", "class": "C", "line_start": "a"}
    value |= {
        "starts_with": "Dear",
        "ends_with": "Bye.",
        "acrostic": "RAIN",
        "returns": "f",
        "table": {"columns": ["A"], "rows": 2},
        "new_draft": ["an old draft"],
        "no_chatter": "the task",
        "no_echo": ["A heading", "Return a new version."],
    }
    passed, measured = measure(draft, R(kind, value.get(kind, 3), "q"))
    assert isinstance(passed, bool) and measured


# -- in the loop -------------------------------------------------------------------------------------


def test_a_failed_check_is_a_rejection_without_a_critic_call(make_llm) -> None:
    too_long = " ".join(["word"] * 60)
    client = FakeClient(
        planner=[completion(json.dumps({"steps": ["Say it briefly."], "checks": []}))],
        worker=[completion(too_long), completion("Short and sweet.")],
        critic=[verdict(True, "Good.")],
    )
    llm = make_llm(client)
    state = mas.orchestrate("Describe tea in at most 40 words.", llm)
    assert state["stop_reason"] == "approved" and state["result"] == "Short and sweet."
    assert client.roles().count("critic") == 1  # the too-long draft never reached the critic's model
    review = next(h for h in state["history"] if h["kind"] == "review")
    assert not review["approved"] and "60 words" in review["feedback"] and "at most 40" in review["feedback"]
    revision = client.calls_of("worker")[1]["messages"][-1]["content"]
    assert "60 words" in revision  # the worker is told what was measured


def test_no_model_can_approve_a_draft_that_fails_a_check(make_llm) -> None:
    """Even when the critic's model would say yes, a failing draft is never approved."""
    client = FakeClient(
        planner=[completion("1. Write it.")] * mas.MAX_PLANS,
        worker=[completion(f"- one\n- two ({n})") for n in range(2 * mas.MAX_ITERATIONS)],  # never a repeat
        critic=[verdict(True)] * mas.MAX_ITERATIONS,
    )
    state = mas.orchestrate("Give exactly 3 bullet points on rain.", make_llm(client))
    assert state["status"] != "approved" and client.roles().count("critic") == 0


def test_a_plan_that_is_really_the_answer_is_replaced_by_code(make_llm) -> None:
    essay = " ".join(f"Owls{i} hunt at night and see well in the dark." for i in range(8))  # 80 words
    owls = completion(" ".join(["owl"] * 100))
    client = FakeClient(planner=[completion(essay)], worker=[owls], critic=[verdict(True)])
    llm = make_llm(client)
    state = mas.orchestrate("Write about 100 words on owls.", llm)
    assert client.roles().count("planner") == 1  # not asked again: code writes the plan
    assert state["plan"] == "\n".join(
        f"{i}. {step}" for i, step in enumerate(fallback_plan(state["task"], state["requirements"]), 1)
    )
    assert "Owls0" not in client.calls_of("worker")[0]["messages"][-1]["content"]  # the essay never reaches it
    warnings = [json.loads(line) for line in llm.trace.path.read_text().splitlines()]
    assert any("as long as the answer" in e.get("message", "") for e in warnings)  # the user is told why


def test_code_plan_names_a_range_once() -> None:  # "5 to 40 words" is two requirements with one quote
    task = "Describe a lighthouse in 5 to 40 words."
    steps = fallback_plan(task, requirements_from_task(task))
    assert len(requirements_from_task(task)) == 2 and sum("5 to 40 words" in step for step in steps[1:]) == 1


def test_a_plan_about_the_review_process_is_replaced_by_code(make_llm) -> None:
    process = "1. Read the Critic's feedback.\n2. Revise the draft.\n3. Submit it to the Critic for approval."
    client = FakeClient(planner=[completion(process)], worker=[completion("d")], critic=[verdict(True)])
    state = mas.orchestrate("Write a riddle about clocks.", make_llm(client))
    assert client.roles().count("planner") == 1
    assert state["plan"] and "Critic" not in state["plan"] and "riddle about clocks" in state["plan"]


@pytest.mark.parametrize(
    "task",
    [
        "Write a Python function under 10 lines.",  # a bound is not an exact count
        "Explain recursion in under 3 sentences.",
        "Explain recursion within 4 sentences.",
        "Write a poem in a maximum of 5 lines.",
        "Explain what a haiku is.",  # a form only mentioned is not asked for
        "Write a haiku for each of the four seasons.",
        "Explain the function print().",  # a function only mentioned is not one to define
        "A function that prints the list and returns nothing.",
        "Use uppercase letters and lowercase letters.",  # both at once: neither is meant
    ],
)
def test_what_a_task_only_mentions_or_bounds_is_not_required(task: str) -> None:
    kinds = {r.kind for r in requirements_from_task(task)}
    assert not kinds & {"lines", "sentences", "function", "returns", "uppercase", "lowercase"}, kinds


@settings(max_examples=60, deadline=None)
@given(
    word=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=26, max_size=60),
    lead=st.sampled_from(
        ["Write a class named Stack with ", "Write an essay with ", "each ", "list ", "a table with columns "]
    ),
)
def test_finding_requirements_is_quick_on_long_words(word: str, lead: str) -> None:
    """No phrasing backtracks catastrophically: a task's requirements are found before anyone waits."""
    import time

    started = time.perf_counter()
    requirements_from_task(f"Write a class named Stack. {lead}{word} as its theme.")
    assert time.perf_counter() - started < 0.5


def test_the_recall_benchmark_scores_what_it_finds_and_what_it_adds() -> None:
    """bench/finder_recall.py counts a labelled requirement found, one missed, and one nobody labelled."""
    from bench.finder_recall import HELD_OUT, score

    rows = [
        {"id": "a", "task": "Explain DNS in under 30 words.", "expect": [{"kind": "max_words", "value": 30}]},
        {"id": "b", "task": "Tell me a story, and keep it gentle.", "expect": [{"kind": "lines", "value": 4}]},
        {"id": "c", "task": "Write a haiku about rain.", "expect": []},
    ]
    result = score(rows)
    assert (result["labelled"], result["found"]) == (2, 1)
    assert result["misses"] == [("b", "lines", 4)]
    assert result["extras"] == [("c", "lines", 3)]  # a haiku's three lines: found, though nobody labelled it
    shipped = [json.loads(line) for line in HELD_OUT.read_text(encoding="utf-8").splitlines() if line.strip()]
    today = score(shipped)
    assert len(shipped) >= 60 and today["recall"] >= 0.9  # bench/README.md quotes today's figure
    by_design = {"lines", "function", "table"}  # a form's lines, a class's methods, a table missing its rows
    assert {kind for _, kind, _ in today["extras"]} <= by_design, today["extras"]


def test_a_missed_acrostic_or_paragraph_count_says_how_to_meet_it() -> None:
    """Live, the small worker told only "the task asks for RAIN" or "add 1 paragraph" missed again and again."""
    passed, said = measure("Rain falls\nWhispers\nRain again\nPeace", R("acrostic", "RAIN", "q"))
    assert not passed and "line 1 with R" in said and "line 4 with N" in said
    passed, said = measure("One block of text. Another sentence.", R("paragraphs", 2, "q"))
    assert not passed and "separated by one blank line" in said
    assert measure("One.\n\nTwo.", R("paragraphs", 2, "q")) == (True, "2 paragraphs; the task asks for exactly 2")


def test_a_table_with_a_header_and_no_rows_is_no_table() -> None:
    """Seen live (03a08d2): a header and its |---| row alone were approved for "a table of 3 languages"."""
    frame = "| Language | Year | Creator |\n|----------|------|----------|"
    passed, said = measure(frame, R("table", {"columns": ["Language", "Year", "Creator"], "rows": None}, "q"))
    assert not passed and "no rows" in said
    assert measure(frame + "\n| C | 1972 | Ritchie |", R("table", {"columns": None, "rows": None}, "q"))[0]


def test_a_forbidden_word_counts_in_any_form() -> None:
    """Seen live (858650a, t26): "...than regular candles." was approved for "do not use the word 'candle'"."""
    assert not measure("A light that outlasts regular candles.", R("exclude", "candle", "q"))[0]
    assert not measure("Candlelight on the wall.", R("exclude", "candle", "q"))[0]
    assert measure("What has a wick and weeps wax?", R("exclude", "candle", "q"))[0]
    assert not measure("Two cats", R("exclude", "cat", "q"))[0] and measure("A category", R("exclude", "cat", "q"))[0]
    assert not measure("Unit tests catch regressions.", R("include", "regression", "q"))[0]  # asked for: whole
