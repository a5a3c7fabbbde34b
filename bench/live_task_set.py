"""The live benchmark's 32 tasks: each one's words, how many constraints it states, and its own checker.

Written, with bench/live_checks.py, by a helper who had not seen the kit's patterns or checks.
"""

from __future__ import annotations

from bench.live_checks import (
    all_ok,
    bullet_items,
    c_acrostic,
    c_bullets,
    c_ends,
    c_exclude,
    c_include,
    c_line_start,
    c_lines,
    c_lower,
    c_no_bullets,
    c_no_fence,
    c_numbered,
    c_paragraphs,
    c_python_func,
    c_sentences,
    c_starts,
    c_table,
    c_upper,
    c_words_about,
    c_words_max,
    c_words_min,
    c_words_range,
    find_class,
    find_def,
    load_json,
    parse_python,
    word_list,
)

# ------------------------------------------------------------ task checks


def check_t01(t):
    return c_lines(t, 3)


def check_t02(t):
    return c_bullets(t, 5)


def check_t03(t):
    return c_sentences(t, 2)


def check_t04(t):
    return all_ok(c_words_max(t, 39), c_include(t, "leak-proof"))


def check_t05(t):
    return c_python_func(t, "is_leap", nparams=1)


def check_t06(t):
    ok, v = load_json(t)
    if not ok:
        return False, v
    if not isinstance(v, dict):
        return False, f"JSON is a {type(v).__name__}, want object"
    want = {"name", "price", "in_stock"}
    if set(v) != want:
        return False, f"JSON keys {sorted(v)} (want exactly {sorted(want)})"
    return True, "JSON object with exactly keys name, price, in_stock"


def check_t07(t):
    return c_table(t, ["Planet", "Diameter", "Moons"], 4)


def check_t08(t):
    return all_ok(c_lines(t, 4), c_acrostic(t, "RAIN"))


def check_t09(t):
    return all_ok(c_words_max(t, 29), c_exclude(t, "delicious"))


def check_t10(t):
    return c_numbered(t, 6)


def check_t11(t):
    return c_lines(t, 5)


def check_t12(t):
    ok, v = load_json(t)
    if not ok:
        return False, v
    if not isinstance(v, list):
        return False, f"JSON is a {type(v).__name__}, want array"
    if len(v) != 4:
        return False, f"JSON array has {len(v)} elements (want 4)"
    if not all(isinstance(x, str) for x in v):
        return False, "not every element is a string"
    return True, "JSON array of 4 strings"


def check_t13(t):
    return all_ok(c_starts(t, "Welcome to"), c_ends(t, "Happy coding!"))


def check_t14(t):
    return c_python_func(t, "count_vowels", nparams=1, no_print=True)


def check_t15(t):
    return all_ok(c_paragraphs(t, 1), c_words_range(t, 50, 80))


def check_t16(t):
    return all_ok(c_lines(t, 4), c_lower(t))


def check_t17(t):
    return all_ok(c_upper(t), c_words_max(t, 8))


def check_t18(t):
    items = bullet_items(t)
    if len(items) != 3:
        return False, f"{len(items)} bullets (want 3)"
    long = [len(word_list(i)) for i in items if len(word_list(i)) > 10]
    if long:
        return False, f"bullet(s) with {long} words (max 10)"
    return True, "3 bullets, each <= 10 words"


def check_t19(t):
    ok, tree = parse_python(t)
    if not ok:
        return False, tree
    if find_class(tree, "Counter") is None:
        return False, "class Counter not defined"
    if find_def(tree, "increment", "Counter") is None:
        return False, "Counter.increment not defined"
    return c_python_func(t, "value", cls="Counter")


def check_t20(t):
    return all_ok(c_sentences(t, 3), c_include(t, "base case"))


def check_t21(t):
    return all_ok(c_starts(t, "Dear"), c_words_max(t, 79))


def check_t22(t):
    ok, v = load_json(t)
    if not ok:
        return False, v
    if not isinstance(v, list):
        return False, f"JSON is a {type(v).__name__}, want array"
    if len(v) != 3:
        return False, f"JSON array has {len(v)} elements (want 3)"
    for i, x in enumerate(v):
        if not isinstance(x, dict) or not {"title", "year"} <= set(x):
            return False, f"element {i} lacks keys title/year"
    return True, "JSON array of 3 objects with title and year"


def check_t23(t):
    return all_ok(c_paragraphs(t, 2), c_no_bullets(t))


def check_t24(t):
    return all_ok(c_no_fence(t), c_python_func(t, "reverse_words", nparams=1))


def check_t25(t):
    return all_ok(c_lines(t, 7), c_no_bullets(t))


def check_t26(t):
    return c_exclude(t, "candle")


def check_t27(t):
    return c_words_about(t, 60)


def check_t28(t):
    return all_ok(c_words_min(t, 40), c_ends(t, "Keep going."))


def check_t29(t):
    return c_table(t, ["Language", "Year", "Creator"], 3)


def check_t30(t):
    return all_ok(c_lines(t, 5), c_line_start(t, "C"))


def check_t31(t):
    return all_ok(c_sentences(t, 1), c_words_max(t, 25))


def check_t32(t):
    return all_ok(c_numbered(t, 4), c_include(t, "regression"))


TASKS: list[dict] = [
    {
        "id": "t01",
        "task": "Write a haiku about a cold winter morning. Output only the three lines, no title.",
        "check": check_t01,
        "constraints": 1,
    },
    {
        "id": "t02",
        "task": "List exactly five fruits that are rich in vitamin C as a bulleted list (one '-' bullet per fruit).",
        "check": check_t02,
        "constraints": 1,
    },
    {"id": "t03", "task": "Explain what an API is in exactly two sentences.", "check": check_t03, "constraints": 1},
    {
        "id": "t04",
        "task": "Write a product description for a reusable water bottle in under 40 words, and include the word 'leak-proof'.",
        "check": check_t04,
        "constraints": 2,
    },
    {
        "id": "t05",
        "task": "Write a Python function named `is_leap(year)` that returns True if the year is a leap year and False otherwise.",
        "check": check_t05,
        "constraints": 2,
    },
    {
        "id": "t06",
        "task": 'Return a JSON object with exactly the keys "name", "price" and "in_stock" describing a fictional product. Output only the JSON.',
        "check": check_t06,
        "constraints": 2,
    },
    {
        "id": "t07",
        "task": "Make a markdown table with the columns Planet, Diameter and Moons, with exactly 4 rows of data (not counting the header).",
        "check": check_t07,
        "constraints": 2,
    },
    {
        "id": "t08",
        "task": "Write an acrostic poem whose lines spell the word RAIN: one line per letter, four lines in total, no title.",
        "check": check_t08,
        "constraints": 2,
    },
    {
        "id": "t09",
        "task": "Write a tweet announcing a school bake sale in fewer than 30 words. Do not use the word 'delicious'.",
        "check": check_t09,
        "constraints": 2,
    },
    {
        "id": "t10",
        "task": "Give me a numbered list of 6 steps for brewing a cup of tea (number them 1., 2., ...).",
        "check": check_t10,
        "constraints": 1,
    },
    {
        "id": "t11",
        "task": "Write a limerick about a forgetful wizard. Just the five lines, no title.",
        "check": check_t11,
        "constraints": 1,
    },
    {
        "id": "t12",
        "task": "Write a JSON array of exactly 4 strings, each the name of a European capital city.",
        "check": check_t12,
        "constraints": 2,
    },
    {
        "id": "t13",
        "task": "Write a short welcome message for a coding club that starts with 'Welcome to' and ends with 'Happy coding!'.",
        "check": check_t13,
        "constraints": 2,
    },
    {
        "id": "t14",
        "task": "Write a Python function named `count_vowels(text)` that returns the number of vowels in the string. The function must not print anything.",
        "check": check_t14,
        "constraints": 3,
    },
    {
        "id": "t15",
        "task": "Describe a lighthouse at night in a single paragraph of 50 to 80 words.",
        "check": check_t15,
        "constraints": 2,
    },
    {
        "id": "t16",
        "task": "Write a four-line poem about the sea, entirely in lowercase letters, with no title.",
        "check": check_t16,
        "constraints": 2,
    },
    {
        "id": "t17",
        "task": "Write a slogan for a fitness app in ALL CAPITAL LETTERS, at most 8 words.",
        "check": check_t17,
        "constraints": 2,
    },
    {
        "id": "t18",
        "task": "Give three tips for better sleep as bullet points, with each bullet no longer than 10 words.",
        "check": check_t18,
        "constraints": 2,
    },
    {
        "id": "t19",
        "task": "Write a Python class named `Counter` with a method `increment` that adds one to the count and a method `value` that returns the current count.",
        "check": check_t19,
        "constraints": 3,
    },
    {
        "id": "t20",
        "task": "Explain recursion in exactly three sentences, and use the phrase 'base case'.",
        "check": check_t20,
        "constraints": 2,
    },
    {
        "id": "t21",
        "task": "Write a short email to a landlord reporting a broken heater. Start with 'Dear' and keep it under 80 words.",
        "check": check_t21,
        "constraints": 2,
    },
    {
        "id": "t22",
        "task": 'Output a JSON array of 3 objects, each with the keys "title" and "year", describing classic films.',
        "check": check_t22,
        "constraints": 2,
    },
    {
        "id": "t23",
        "task": "Write a two-paragraph explanation of how rainbows form. Do not use bullet points or numbered lists.",
        "check": check_t23,
        "constraints": 2,
    },
    {
        "id": "t24",
        "task": "Write a Python function `reverse_words(sentence)` that returns the sentence with its word order reversed. Give plain code only, without ``` code fences.",
        "check": check_t24,
        "constraints": 3,
    },
    {
        "id": "t25",
        "task": "Name the 7 colours of the rainbow, one per line, with no numbering or bullets and no other text.",
        "check": check_t25,
        "constraints": 2,
    },
    {
        "id": "t26",
        "task": "Write a riddle whose answer is a candle, without revealing the answer (do not use the word 'candle').",
        "check": check_t26,
        "constraints": 1,
    },
    {
        "id": "t27",
        "task": "Summarise the benefits of cycling to work in about 60 words.",
        "check": check_t27,
        "constraints": 1,
    },
    {
        "id": "t28",
        "task": "Write a motivational message of at least 40 words that ends with the sentence 'Keep going.'",
        "check": check_t28,
        "constraints": 2,
    },
    {
        "id": "t29",
        "task": "Create a markdown table of 3 programming languages with columns Language, Year and Creator.",
        "check": check_t29,
        "constraints": 2,
    },
    {
        "id": "t30",
        "task": "Write a five-line poem about coffee in which every line begins with the letter C. No title.",
        "check": check_t30,
        "constraints": 2,
    },
    {
        "id": "t31",
        "task": "Define the word 'latency' in a single sentence of no more than 25 words.",
        "check": check_t31,
        "constraints": 2,
    },
    {
        "id": "t32",
        "task": "List 4 benefits of unit testing as a numbered list, and mention 'regression' somewhere.",
        "check": check_t32,
        "constraints": 2,
    },
]
