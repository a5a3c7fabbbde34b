"""Sixteen held-out tasks, written by a helper who had not read the kit's requirement finder or its repairs.

They measure the loop on everyday writing tasks it was not tuned for. Each entry is
{"id", "task", "check", "constraints"}; check(text) -> (ok, reason), built only from bench.live_checks.
"""

from __future__ import annotations

from typing import Any

from bench.live_checks import (
    all_ok,
    c_bullets,
    c_ends,
    c_exclude,
    c_include,
    c_lines,
    c_numbered,
    c_paragraphs,
    c_sentences,
    c_starts,
    c_words_max,
)

TASKS: list[dict[str, Any]] = [
    {
        "id": "h01",
        "task": 'Explain why the sky looks blue in exactly three sentences, and use the word "scattering" somewhere.',
        "check": lambda t: all_ok(c_sentences(t, 3), c_include(t, "scattering")),
        "constraints": 2,
    },
    {
        "id": "h02",
        "task": "Using two sentences, tell my friend why she should give rock climbing a try.",
        "check": lambda t: c_sentences(t, 2),
        "constraints": 1,
    },
    {
        "id": "h03",
        "task": 'Describe a busy Saturday farmers\' market in five sentences, without ever using the word "vegetable".',
        "check": lambda t: all_ok(c_sentences(t, 5), c_exclude(t, "vegetable")),
        "constraints": 2,
    },
    {
        "id": "h04",
        "task": 'Write a thank-you note to my grandmother for the scarf she knitted me. Make it 4 sentences long and start it with "Dear Grandma".',
        "check": lambda t: all_ok(c_sentences(t, 4), c_starts(t, "Dear Grandma")),
        "constraints": 2,
    },
    {
        "id": "h05",
        "task": 'Summarize the story of Cinderella in under 50 words, and make sure the phrase "glass slipper" shows up.',
        "check": lambda t: all_ok(c_words_max(t, 49), c_include(t, "glass slipper")),
        "constraints": 2,
    },
    {
        "id": "h06",
        "task": "I have my driving test in an hour. Give me a quick pep talk, no more than 60 words.",
        "check": lambda t: c_words_max(t, 60),
        "constraints": 1,
    },
    {
        "id": "h07",
        "task": 'Write a product blurb for a solar-powered phone charger in 40 words or fewer. Finish it with "Charge anywhere."',
        "check": lambda t: all_ok(c_words_max(t, 40), c_ends(t, "Charge anywhere.")),
        "constraints": 2,
    },
    {
        "id": "h08",
        "task": "Suggest five healthy snacks I could pack for school, as a bulleted list.",
        "check": lambda t: c_bullets(t, 5),
        "constraints": 1,
    },
    {
        "id": "h09",
        "task": 'How do I repot a houseplant? Give me a numbered list of 4 steps, and mention "drainage" in one of them.',
        "check": lambda t: all_ok(c_numbered(t, 4), c_include(t, "drainage")),
        "constraints": 2,
    },
    {
        "id": "h10",
        "task": 'What are good habits for studying at home? Answer with exactly three bullet points and don\'t use the word "phone".',
        "check": lambda t: all_ok(c_bullets(t, 3), c_exclude(t, "phone")),
        "constraints": 2,
    },
    {
        "id": "h11",
        "task": "Make me a packing checklist for a weekend camping trip: a numbered list with six items.",
        "check": lambda t: c_numbered(t, 6),
        "constraints": 1,
    },
    {
        "id": "h12",
        "task": 'Write a short blog intro about learning to cook as a student. Split it into two paragraphs and mention "budget" at least once.',
        "check": lambda t: all_ok(c_paragraphs(t, 2), c_include(t, "budget")),
        "constraints": 2,
    },
    {
        "id": "h13",
        "task": "Explain how a bill becomes a law in the United States, in three paragraphs.",
        "check": lambda t: c_paragraphs(t, 3),
        "constraints": 1,
    },
    {
        "id": "h14",
        "task": 'Write a four-line poem about autumn leaves that includes the word "amber".',
        "check": lambda t: all_ok(c_lines(t, 4), c_include(t, "amber")),
        "constraints": 2,
    },
    {
        "id": "h15",
        "task": "Compose a short poem about the ocean at night. It should be exactly 6 lines long.",
        "check": lambda t: c_lines(t, 6),
        "constraints": 1,
    },
    {
        "id": "h16",
        "task": "In a single sentence, tell me what photosynthesis is.",
        "check": lambda t: c_sentences(t, 1),
        "constraints": 1,
    },
]
