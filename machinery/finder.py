"""Finding requirements in a task's own words: the phrasings people use for counts, lengths and formats.

Each phrasing names a kind of ``machinery.checks.KINDS`` (or a shorthand read into
one, such as "haiku" into three lines). A leaf module: it imports only
``machinery.checks`` and ``machinery.text``, so the chapter may import it.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from machinery.checks import KINDS, PLANNED_KINDS, Requirement

_NUMBER_WORDS = {
    word: n
    for n, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")
    )
}  # fmt: skip


_N = r"(\d{1,5}|" + "|".join(_NUMBER_WORDS) + r")"


_NOT_ITEMS = r"(?!(?:sentences|paragraphs|words|lines|times|minutes|seconds|hours|days|years)\b)"


_QUOTED = r"""["'“‘`]([^"'”’`]{1,60})["'”’`]"""


# (pattern, kind): common ways a task states a measurable requirement; the groups hold its value.
_PHRASINGS: list[tuple[str, str]] = [  # earlier patterns win where two overlap
    (rf"\beach(?: \w+)?(?: \w+)? (?:has |is |in )?(?:at most|no more than|of at most|up to) {_N} words\b", "item_max_words"),
    (rf"\beach(?: \w+)?(?: \w+)? (?:has |is |in )?(?:under|fewer than|less than) {_N} words\b", "item_below_words"),
    (rf"\b(?:of )?(?:at most|no more than|up to) {_N} words each\b", "item_max_words"),
    (rf"\b(?:of )?(?:under|fewer than|less than) {_N} words each\b", "item_below_words"),
    (rf"\bbetween {_N} and {_N} words\b", "word_range"),
    (rf"\b{_N}\s*(?:-|–|to)\s*{_N} words\b", "word_range"),
    (rf"\b(?:at most|no more than|not more than|maximum of|max(?:imum)?|up to|within) {_N} words\b", "max_words"),
    (rf"\b(?:under|fewer than|less than|below) {_N} words\b", "below_words"),
    (rf"\b{_N} words or (?:less|fewer)\b", "max_words"),
    (rf"\bnot exceed(?:ing)? {_N} words\b", "max_words"),
    (rf"\b(?:at least|no fewer than|no less than|minimum of|a minimum of) {_N} words\b", "min_words"),
    (rf"\bmore than {_N} words\b", "above_words"),
    (rf"\b(?:about|around|approximately|roughly|some|circa|~)\s*{_N} words\b", "about_words"),
    (rf"(?<!for a )(?<!for an )\b{_N}-word\b(?! (?:title|name|phrase|slogan|tagline|heading|subject|summary|limit))", "about_words"),
    (rf"\bexactly {_N} words\b", "exact_words"),
    (rf"\b(?:exactly )?{_N} bullet(?:ed)?(?: points?|s)?\b", "bullets"),
    (rf"\b(?:exactly )?{_N} numbered (?:steps?|items?|points?|lines?|instructions?)\b", "numbered"),
    (rf"\b(?:exactly )?{_N} (?:steps?|instructions?)\b", "items"),
    (rf"\b(?:list|give|name|suggest|provide|write)(?: me)? (?:exactly )?{_N} {_NOT_ITEMS}(?:\w+ ){{0,2}}?[a-z]+s\b", "items"),
    (rf"\b(?:exactly |of )?{_N} (?:non-empty )?lines\b", "lines"),
    (rf"\b(?:exactly |in )?{_N} sentences?\b", "sentences"),
    (r"\b(?:a|one|the) haiku\b", "haiku"),
    (rf"\bjson array of {_N}\b", "json_array"),
    (r"\b(?:(?:return|output|reply|respond|answer|give|produce|format)\b[^.]{0,30}\bjson|json (?:array|object|list)|(?:as|in|valid) json)\b", "json"),
    (r"\bwith (?:the )?(?:keys|fields|properties) ([\w\"'`]+(?:(?:,\s*|,? and |\s+)[\w\"'`]+)*)", "json_keys"),
    (r"\b(?:python )?(?:function|def)(?: named| called)?\s+`?([A-Za-z_]\w*)\s*\(", "function"),
    (r"\b(?:python )?function (?:named|called) `?([A-Za-z_]\w*)`?", "function"),
    (r"\bclass (?:named|called) `?([A-Za-z_]\w*)`?", "class"),
    (r"\b(?:python (?:code|function|script|program|snippet|class)|(?:write|implement|code)\b[^.]{0,40}\bin python)\b", "python"),
    (rf"\b(?:without|not|never|avoid|avoids|avoiding|no|don't|do not) (?:using |use |uses |mention |mentioning |include |including )?(?:the )?(?:word|phrase|term)s? {_QUOTED}", "exclude"),
    (rf"\b(?:includes?|including|contains?|containing|uses?|using|mentions?|with) (?:the )?(?:exact )?(?:word|phrase|term)s? {_QUOTED}", "include"),
    (rf"\b(?:without|never|avoid\w*|do not (?:use|mention)|don't (?:use|mention)) {_QUOTED}", "exclude"),
    (rf"\b(?:includes?|including|contains?|containing|mentions?|mentioning) {_QUOTED}", "include"),
    (r"\b(?:every|each) line (?:starts|begins|must start|must begin) with (?:the letter |an? )?[\"']?([A-Za-z])\b", "line_start"),
    (r"\b(?:in )?(?:all caps|all capital letters|all uppercase|uppercase letters|capital letters only)\b", "uppercase"),
]  # fmt: skip


_KEY_LIST_ENDS = {"for", "of", "in", "to", "with", "from", "about", "each", "per", "that", "where", "describing"}


# "under 50 words" is at most 49; "more than 50 words" is at least 51.
_SHIFT = {"below_words": ("max_words", -1), "above_words": ("min_words", 1), "item_below_words": ("item_max_words", -1)}


def _number(text: str) -> int:
    return int(text) if text.isdigit() else _NUMBER_WORDS[text.lower()]


def requirements_from_task(task: str) -> list[Requirement]:
    """The measurable requirements a task states in common phrasings; each quotes the task.

    >>> [(r.kind, r.value) for r in requirements_from_task("Explain closures in at most 40 words.")]
    [('max_words', 40)]
    >>> [(r.kind, r.value) for r in requirements_from_task("Write a haiku about rain")]
    [('lines', 3)]
    """
    found: list[Requirement] = []
    taken: list[tuple[int, int]] = []
    for pattern, kind in _PHRASINGS:
        for match in re.finditer(pattern, task, re.I):
            if any(a <= match.start() < b for a, b in taken) and kind not in ("json", "python", "json_keys"):
                continue  # "between 80 and 100 words" is one requirement, not three
            quote = match.group(0).strip()
            groups = [g for g in match.groups() if g]
            found += _read_requirement(kind, groups, quote)
            taken.append((match.start(), match.end()))
    unique: dict[tuple[str, str], Requirement] = {}
    for r in found:
        unique.setdefault((r.kind, str(r.value).lower()), r)
    kinds = {r.kind for r in unique.values()}
    return [
        r
        for r in unique.values()
        if not (r.kind == "json" and kinds & {"json_array", "json_keys"})  # the stronger check covers it
        and not (r.kind == "python" and kinds & {"function", "class"})
        and not (r.kind == "items" and kinds & {"bullets", "numbered"})
    ]


def _read_requirement(kind: str, groups: list[str], quote: str) -> list[Requirement]:
    try:
        if kind == "word_range":
            low, high = sorted(_number(g) for g in groups[:2])
            return [Requirement("min_words", low, quote), Requirement("max_words", high, quote)]
        if kind in _SHIFT:
            real, shift = _SHIFT[kind]
            return [Requirement(real, _number(groups[0]) + shift, quote)]
        if kind == "haiku":
            return [Requirement("lines", 3, quote)]
        if kind == "json_keys":
            keys = [k.strip("\"'`") for k in re.split(r",\s*|,?\s+and\s+|\s+", groups[0]) if k.strip("\"'`")]
            stop = next((i for i, k in enumerate(keys) if k.lower() in _KEY_LIST_ENDS), len(keys))
            keys = [k for k in keys[:stop] if k.lower() not in ("the", "a", "an")]
            return [Requirement(kind, keys, quote)] if keys else []
        if kind in ("json", "python", "uppercase"):
            return [Requirement(kind, True, quote)]
        if kind in ("function", "class", "include", "exclude", "line_start"):
            return [Requirement(kind, groups[0], quote)]
        return [Requirement(kind, _number(groups[0]), quote)]
    except (KeyError, ValueError, IndexError):
        return []


def accept_proposed(task: str, proposed: Any) -> list[Requirement]:
    """Checks the planner proposed that code can trust: the quote is in the task, and code reads it as that kind.

    The model only points at words of the task; code decides what they require, so no model can invent one.

    >>> accept_proposed("Write at most 30 words.", [{"kind": "max_words", "value": "300", "quote": "at most 30 words"}])
    [Requirement(kind='max_words', value=30, quote='at most 30 words')]
    >>> accept_proposed("List 5 fruits.", [{"kind": "max_words", "value": "5", "quote": "5"}])
    []
    """
    accepted: list[Requirement] = []
    flat_task = " ".join(task.split())
    for item in proposed if isinstance(proposed, list) else []:
        if not isinstance(item, dict) or item.get("kind") not in KINDS or KINDS[item["kind"]].always:
            continue
        quote = " ".join(str(item.get("quote", "")).split())
        if quote and re.search(rf"(?<!\w){re.escape(quote)}(?!\w)", flat_task, re.I):
            accepted += [r for r in requirements_from_task(quote) if r.kind == item["kind"]]
    return accepted


def merge_requirements(known: list[Requirement], more: list[Requirement]) -> list[Requirement]:
    merged = {(r.kind, str(r.value).lower()): r for r in [*known, *more]}
    return list(merged.values())


@functools.cache
def plan_schema() -> dict[str, Any]:
    """The planner's reply: short steps, and the task's measurable requirements, each quoting the task.

    The kinds are an enum made from KINDS, so a server that enforces the schema lets no other kind through.
    """
    from typing import Literal

    from pydantic import BaseModel, ConfigDict

    class ProposedCheck(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kind: Literal[PLANNED_KINDS]  # type: ignore[valid-type]
        value: str
        quote: str

    class Plan(BaseModel):
        model_config = ConfigDict(extra="forbid")
        steps: list[str]
        checks: list[ProposedCheck]

    return {"name": "plan", "strict": True, "schema": Plan.model_json_schema()}
