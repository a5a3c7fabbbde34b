"""Finding requirements in a task's own words: the phrasings people use for counts, lengths and formats.

Each phrasing names a kind of ``machinery.checks.KINDS`` (or a shorthand read into
one, such as "haiku" into three lines). A leaf module: it imports only
``machinery.checks`` and ``machinery.text``, so the chapter may import it.
"""

from __future__ import annotations

import re

from machinery.checks import Requirement

_NUMBER_WORDS = {
    word: n
    for n, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")
    )
}  # fmt: skip


_N = r"(\d{1,5}|" + "|".join(_NUMBER_WORDS) + r")"


# "at least 3 sentences" and "no more than 3 sentences" are bounds, not the exact counts these kinds check.
_UNBOUNDED = (
    r"(?<!at least )(?<!at most )(?<!up to )(?<!more than )(?<!less than )(?<!fewer than )(?<!over )"
    r"(?<!maximum )(?<!max )(?<!minimum )(?<!\bor )(?<!\bto )(?<!-)"  # "two or three sentences", "2-3"; not "into two"
    r"(?<!under )(?<!within )(?<!below )(?<!maximum of )(?<!max of )(?<!minimum of )(?<!most of )"
)
# A form, or a function by name, is asked for only where the task asks for one to be written:
# "Explain what a haiku is" and "Explain the function print()" ask for neither.
_WRITING = r"\b(?:write|compose|create|draft|pen|give|make|craft|implement|define|code|build|provide|add|need|want)\b[^.?!]{0,40}?\b"
_NO_BOUND_AFTER = r"(?! (?:max(?:imum)?|at most|tops|or (?:fewer|less|more)))"  # "4 sentences max" is a bound
# "one line of at most 5 words" is the whole answer; "one line of description" for each item is a part
_BOUND = r"(?:at most|no more than|up to|under|fewer than|less than|about|around|roughly|\d+|one|two|three|four|five|six|seven|eight|nine|ten)\b"
# "a three-sentence summary" is the whole answer; "then a one-sentence conclusion" is a part of it.
_WHOLE = (
    r"(?:write|give|create|compose|draft|produce|provide|make|want|need|like)\b(?: me| us)?(?: \w+)?? (?:a|an|one) "
)
_NOT_ITEMS = r"(?!(?:sentences|paragraphs|words|lines|times|minutes|seconds|hours|days|years|haikus|poems|limericks|sonnets|stanzas|verses|essays|stories)\b)"


_QUOTED = r"""(?:["“]([^"”]{1,60})["”]|['‘`]((?:[^'’`]|(?<=\w)['’](?=\w)){1,60})['’`])"""
_MORE_QUOTED = rf"(?:(?:,\s*|,?\s+(?:and|or)\s+){_QUOTED})*"  # "the words 'a', 'b' and 'c'"
# "should not appear at the start", "more than twice": a place or a number of times, not anywhere at all
_ANYWHERE = r"(?! (?:at|in the (?:first|last|title|opening|beginning|start|end|middle)|more|twice|as|only)\b)"
_NOT_AN_OPTION = r"(?!\s*(?:or|/)\s*[\"'‘“])"  # "start with 'Yes' or 'No'" names a choice, not a requirement


# (pattern, kind): common ways a task states a measurable requirement; the groups hold its value.
_PHRASINGS: list[tuple[str, str]] = [  # earlier patterns win where two overlap
    # A limit on each item of a list, not on the whole text: "each rule at most six words", "15 words per question".
    (rf"\beach\b[^.;]{{0,40}}?\b(?:at most|no more than|up to|max(?:imum)?|of at most|no longer than) {_N} words\b", "item_max_words"),
    (rf"\beach\b[^.;]{{0,40}}?\b(?:under|fewer than|less than) {_N} words\b", "item_below_words"),
    (rf"\b(?:at most|no more than|up to|max(?:imum)?|no longer than) {_N} words? (?:per|for each|each|a) (?:item|line|bullet|point|entry|rule|tip|step|question|answer|idea|name)\b", "item_max_words"),
    (rf"\b(?:under|fewer than|less than) {_N} words? (?:per|for each|each|a) (?:item|line|bullet|point|entry|rule|tip|step|question|answer|idea|name)\b", "item_below_words"),
    (rf"\beach (?:item|bullet|line|point|entry|one|tip|step)\b[^.;]{{0,20}}?\b{_N} words? (?:max(?:imum)?|at most|or (?:less|fewer))\b", "item_max_words"),
    (rf"\beach(?: \w+)?(?: \w+)? (?:has |is |in )?(?:at most|no more than|of at most|up to|no longer than) {_N} words\b", "item_max_words"),
    (rf"\beach(?: \w+)?(?: \w+)? (?:has |is |in )?(?:under|fewer than|less than) {_N} words\b", "item_below_words"),
    (rf"\b(?:of )?(?:at most|no more than|up to) {_N} words each\b", "item_max_words"),
    (rf"\b(?:of )?(?:under|fewer than|less than) {_N} words each\b", "item_below_words"),
    (rf"\bbetween {_N} and {_N} words\b", "word_range"),
    (rf"\b(?:more than|over) {_N} words? (?:but|and) (?:fewer|less) than {_N}\b", "open_range"),
    (rf"\b{_N}\s*(?:-|–|to)\s*{_N}[- ]words?\b", "word_range"),
    (rf"\b(?:max(?:imum)?|at most|up to) {_N} words each\b", "item_max_words"),
    (rf"\b(?:at most|no more than|not more than|maximum of|max(?:imum)?|up to|within|not over|no longer than|not longer than|not exceeding) {_N} words\b", "max_words"),
    (rf"\b(?:under|fewer than|less than|below) {_N} words\b", "below_words"),
    (rf"\b{_N} words or (?:less|fewer)\b", "max_words"),
    (rf"\bnot exceed(?:ing)? {_N} words\b", "max_words"),
    (rf"\b(?:at least|no fewer than|no less than|minimum of|a minimum of) {_N} words\b", "min_words"),
    (rf"\b{_N} words? (?:max(?:imum)?|tops|at (?:the )?most)\b", "max_words"),
    (rf"\btops {_N} words\b", "max_words"),
    (rf"\b(?:limit|keep|cap)(?:ed|ped)?(?: it| this| (?:your|the) (?:answer|response|reply|text|whole thing))? (?:to|at) (?:a maximum of |at most )?{_N} words\b(?! (?:per|each|for)\b)", "max_words"),
    (rf"\bmore than {_N} words\b", "above_words"),
    (r"\b(?:in|with|using|as) (?:just |only |exactly )?(?:one|a single) word\b(?![-\w])(?!,? (?:per|each|for|or|changed|sentences?|answers|less|more)\b)", "one_word"),
    (r"\bone[- ]word (?:answer|reply|response)\b", "one_word"),
    (rf"(?:\b(?:about|around|approximately|approx\.?|roughly|some|circa)\s*|~\s*){_N} words\b", "about_words"),
    (rf"(?<!for a )(?<!for an )\b(?!one\b){_N}[- ]word\b(?! (?:title|name|phrase|slogan|tagline|heading|subject|summary|limit))", "about_words"),
    (rf"\bexactly {_N} words\b", "exact_words"),
    (rf"\b(?:exactly )?{_N}[- ]bullet(?:ed)?(?: points?|s)?\b", "bullets"),
    (rf"\b(?:exactly )?{_N} numbered (?:steps?|items?|points?|lines?|instructions?)\b", "numbered"),
    (rf"\bnumbered list (?:of|with) {_N}\b", "numbered"),
    (rf"\b{_N}-(?:item|point|entry|thing|tip|step|idea|reason|example)\b", "items"),
    (rf"\b(?:exactly )?{_N} (?:steps?|instructions?)\b", "items"),
    (rf"\b(?:list|give|name|suggest|provide|write|tell|share|recommend|generate|brainstorm|create|offer)(?: me| us)?(?: the| all)? (?:exactly )?{_N} {_NOT_ITEMS}(?:\w+ ){{0,2}}?[a-z]+s\b", "items"),
    (rf"{_UNBOUNDED}\b(?:exactly |of )?{_N} (?:non-empty )?lines\b(?! each| per){_NO_BOUND_AFTER}", "lines"),
    (rf"\b{_WHOLE}{_N}-line\b", "lines"),
    (rf"\b(?<!each )(?<!each on )(?<!each in )(?:in |on |as )?(?:a single|one single|just one|one) line\b(?! (?:each|per|for|about|on|that|describing|explaining|summari[sz]ing)\b)(?! of (?!{_BOUND}))", "one_line"),
    (rf"{_UNBOUNDED}\b(?:exactly |in )?{_N} sentences?\b{_NO_BOUND_AFTER}", "sentences"),
    (rf"\b{_WHOLE}{_N}-sentences?\b", "sentences"),
    (r"\b(?:in |as )?(?:a single|one single|just one) sentence\b", "one_sentence"),
    (r"^\s*(?:please\s+)?(?:write|give me|compose|create)\s+(?:a|one)\s+sentence\b(?=\s*(?:[.!?]|$|that\b|about\b|describing\b|using\b|which\b|with\b))", "whole_sentence"),
    (rf"{_UNBOUNDED}\b(?:exactly |in )?{_N} paragraphs?\b{_NO_BOUND_AFTER}", "paragraphs"),
    (rf"\b{_WHOLE}{_N}-paragraphs?\b", "paragraphs"),
    (r"\b(?:write|in|as) (?:a|one) (?:single |short )?paragraph\b(?! or)", "one_paragraph"),
    (rf"{_WRITING}(?:a|an|one|the)(?: \w+)? (haiku|limerick|sonnet|couplet|quatrain|cinquain)\b(?!s| for each)", "form"),
    (rf"\bjson (?:array|list) (?:of|containing|with) (?:exactly )?{_N}\b", "json_array"),
    (r"\b(?:(?:return|output|reply|respond|answer|give|produce|format)\b[^.]{0,30}\bjson|json (?:array|object|list)|(?:as|in|valid) json)\b", "json"),
    (r"\bwith (?:exactly )?(?:the )?(?:keys|fields|properties) ([\w\"'`]+(?:(?:,\s*|,? and |\s+)[\w\"'`]+)*)", "json_keys"),
    (rf"{_WRITING}(?:\w+ ){{0,3}}?(?:python )?(?:function|def)(?: named| called)?\s+`?([A-Za-z_]\w*)\s*\(", "function"),
    (rf"{_WRITING}(?:\w+ ){{0,3}}?(?:python )?function (?:named|called) `?([A-Za-z_]\w*)`?", "function"),
    (r"\bclass (?:named|called) `?([A-Za-z_]\w*)`?", "class"),
    (r"\bclass `([A-Za-z_]\w*)`", "class"),
    (r"\b(?:python (?:code|function|script|program|snippet|class)|(?:write|implement|code)\b[^.]{0,40}\bin python)\b", "python"),
    (rf"\b(?:start|begin|open)\w*(?: (?:it|your \w+|the \w+))? with (?:(?:the|this|these|that|following)(?: exact)? (?:words?|phrase|line|greeting|sentence):? )?{_QUOTED}{_NOT_AN_OPTION}", "starts_with"),
    (rf"\bfirst word (?:of (?:your|the|this) \w+ )?(?:must|should|has to|needs to|will) be {_QUOTED}", "starts_with"),
    (rf"\b(?:end|finish|close|conclude|sign off)(?:s|ing)?(?: (?:it|your \w+|the \w+))? with (?:(?:the|this|these|that|following)(?: exact)? (?:words?|phrase|line|sentence|question):? )?{_QUOTED}{_NOT_AN_OPTION}", "ends_with"),
    (rf"\b(?:without|w/o|not|never|avoid|avoids|avoiding|no|don't|do not) (?:ever )?(?:using |use |uses |mention |mentioning |include |including )?(?:the )?(?:word|phrase|term)s? {_QUOTED}{_MORE_QUOTED}", "exclude"),
    (rf"\b(?:includes?|including|contains?|containing|uses?|using|mentions?|with) (?:the )?(?:exact )?(?:word|phrase|term)s? {_QUOTED}{_MORE_QUOTED}", "include"),
    (rf"\b(?:without|w/o|never|avoid\w*|(?:do not|don't|never) (?:use|mention|say|write)) {_QUOTED}{_MORE_QUOTED}", "exclude"),
    (rf"\b(?:includes?|including|contains?|containing|mentions?|mentioning) {_QUOTED}{_MORE_QUOTED}", "include"),
    (rf"\b(?:word|phrase|term) {_QUOTED} (?:should|must|may|can) (?:not|never) (?:appear|be used|be included)\b{_ANYWHERE}", "exclude"),
    (rf"\b(?:word|phrase|term) {_QUOTED} (?:should |must |has to |needs to |will )?(?:appears?|shows? up|be used|be included)\b{_ANYWHERE}", "include"),
    (r"\b(?:don't|do not|never|without) mention(?:ing)? (?:the (?:word )?)?(?!(?:his|her|their|its|my|your|our|any|it|that|this|them|him|me|you)\b)([a-z]{3,})\b", "exclude"),
    (r"\b(?:include|includes|including|mention|use|add|with)(?: the)?(?: hashtag)? (#\w+)", "include"),
    (r"\b(?:that|which|all|each) (?:start|begin)s? with (?:the letter |an? )?[\"']?([A-Za-z])\b[\"']?(?!\w)", "line_start"),
    (r"\b(?:every|each) line (?:starts|begins|must start|must begin) with (?:the letter |an? )?[\"']?([A-Za-z])\b", "line_start"),
    (r"\b(?:in )?(?:all (?:in )?caps|all (?:in )?capitals|all (?:in )?capital letters|all uppercase|uppercase letters|capital letters only)\b", "uppercase"),
    (r"\b(?:all (?:in )?lower ?case|(?:in |only |entirely )lower ?case|lower ?case (?:only|letters)|no capital letters)\b", "lowercase"),
    (r"\bacrostic\b[^.]{0,30}?\b(?:on|for|of|spelling|spells?)(?: out)?(?: the (?:word|name))? [\"'“‘]?((?-i:[A-Z]{2,}))\b", "acrostic"),
    (rf"\b(?:first letters?|initials?) of (?:the |each |its )?lines? (?:should |must |will )?spells?(?: out)? (?:the word )?(?:{_QUOTED}|((?-i:[A-Z]{{2,}}))\b)", "acrostic"),
    (rf"\blines'? (?:first letters?|initials?) spells?(?: out)? (?:the word )?(?:{_QUOTED}|((?-i:[A-Z]{{2,}}))\b)", "acrostic"),
    (r"\b(?:no|without|don't use|do not use|not in an?|never use) (?:any )?(?:markdown )?(?:code ?fences?|code ?blocks?|fences?|backticks|```)", "no_code_fence"),
    (r"\b(?:don't|do not|never|not) (?:wrap|put|place|enclose|format)(?: it| this| them| the \w+| your \w+)? (?:in|inside|within|as) (?:an? |any )?(?:markdown )?(?:code ?fences?|code ?blocks?|backticks|```)", "no_code_fence"),
    (r"\b(?:raw json|no markdown)\b", "no_code_fence"),
    (r"\b(?:no|without|don't (?:add|include|use|give it)|do not (?:add|include|use|give it)|skip the) (?:a |an |any )?(?:title|heading|headline)s?\b", "no_title"),
    (r"\b(?:no|without|don't use|do not use|never use|avoid|not in) (?:any )?(?:quotation marks|quote marks|quotes)\b(?! (?:from|by|of)\b)", "no_quotes"),
    (r"\b(?:don't|do not|never|not) (?:wrap|put|place|enclose)(?: it| this| them| the \w+| your \w+)? (?:in|inside|within) (?:any )?(?:quotation marks|quote marks|quotes)\b", "no_quotes"),
    (r"\b(?:no|without|don't use|do not use|avoid|not as|refrain from(?: using)?) (?:any )?(?:bullet(?:ed)?(?: points?| lists?)?|bullets|lists?)\b", "no_bullets"),
]  # fmt: skip


_FORMS = {"haiku": 3, "limerick": 5, "sonnet": 14, "couplet": 2, "quatrain": 4, "cinquain": 5}  # lines each form has
# "a, b, and c": the serial comma's ", and " is one separator, tried before the comma alone.
_AND_LIST = r",?\s+and\s+|,\s*"
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
            if kind in ("one_line", "one_word") and not _whole_answer(task, match):
                continue
            if kind == "whole_sentence" and _more_than_one_part(task):
                continue
            quote = match.group(0).strip()
            groups = [g for g in match.groups() if g]
            found += _read_requirement(kind, groups, quote)
            taken.append((match.start(), match.end()))
    found = _methods(task, found + _returns(task, found) + _table(task))
    found = _in_json(_one_per_line(task, _as_marked(task, found)))
    unique: dict[tuple[str, str], Requirement] = {}
    for r in found:
        unique.setdefault((r.kind, str(r.value).lower()), r)
    kinds = {r.kind for r in unique.values()}
    many = any(r.kind in ("items", "bullets", "numbered") and int(r.value) > 1 for r in unique.values())
    allowed_numbers = re.search(r"\bnumbered\b[^.]{0,30}\b(?:fine|ok|okay|allowed|welcome)\b", task, re.I)
    in_one = re.search(r"\bcomma|\b(?:a single|the same) line\b", task, re.I)  # "five colours, comma-separated"
    return [
        r
        for r in unique.values()
        if not (r.kind == "json" and kinds & {"json_array", "json_keys"})  # the stronger check covers it
        and not (r.kind == "python" and kinds & {"function", "class", "returns"})
        and not (r.kind == "items" and kinds & {"bullets", "numbered"})
        and not (r.kind in ("uppercase", "lowercase") and kinds >= {"uppercase", "lowercase"})  # both: neither is meant
        and not (r.kind == "no_quotes" and kinds & _CODE)  # JSON and code need their quotation marks
        and not (r.kind == "lines" and r.value == 1 and many and not in_one)  # "5 fruits, one line each"
        and not (r.kind == "no_bullets" and allowed_numbers)  # "no bullets, but numbered steps are fine"
    ]


_CODE = {"json", "json_keys", "json_array", "python", "function", "class", "returns"}
# Before "one line": a part of the answer is meant ("each fruit", "the return statement", "where one line").
_A_PART = re.compile(
    r"\b(?:each|every|per|where|which|least|make|makes|statement|expression|command|entry|item|stanza|verse)"
    r"\s+(?:\w+\s+){0,2}(?:in |on |as )?$",
    re.I,
)


def _whole_answer(task: str, match: re.Match[str]) -> bool:
    """ "Describe git in one line" is the whole answer; "keep the return statement on one line",
    "a poem where one line mentions the sea" or "in one line, then explain" is not."""
    before, after = task[max(0, match.start() - 40) : match.start()], task[match.end() :]
    return not _A_PART.search(before) and not re.match(r",? (?:then|and then|followed by)\b", after, re.I)


def _more_than_one_part(task: str) -> bool:
    """ "Write a sentence, a haiku, and a limerick" or "a sentence, then a paragraph": the sentence is one part."""
    return re.search(r"\b(?:then|followed by|and (?:a|an|one|two|three))\b|, (?:a|an)\b|-by-", task, re.I) is not None


def _as_marked(task: str, found: list[Requirement]) -> list[Requirement]:
    """ "Give 3 reasons, as bullets": a count of items, and how they are marked, said apart."""
    marked = re.search(
        r"(?:\b(?:as|in|with|using|a)|,) (?:a |markdown )?(bullet(?:ed)?|numbered)(?: points?| list| form)?s?\b",
        task,
        re.I,
    )
    if not marked:
        return found
    kind = "numbered" if marked.group(1).lower() == "numbered" else "bullets"
    return [Requirement(kind, r.value, r.quote) if r.kind == "items" else r for r in found]


def _one_per_line(task: str, found: list[Requirement]) -> list[Requirement]:
    """ "10 verbs, one per line": as many lines as items."""
    said = re.search(r"\b(?:one|each) (?:per|on (?:its own|a separate|a new)) line\b", task, re.I)
    counts = [r for r in found if r.kind in ("items", "bullets", "numbered")]
    if not said or not counts or any(r.kind == "lines" for r in found):
        return found
    return [*found, Requirement("lines", counts[0].value, said.group(0))]


def _methods(task: str, found: list[Requirement]) -> list[Requirement]:
    """ "a class Stack with push, pop and peek methods": each method is a function the code must define."""
    if not any(r.kind == "class" for r in found):
        return found
    # Each name, then a separator before the next: no nested repetition, so no catastrophic backtracking.
    said = re.search(r"\bwith (`?\w+`?(?:(?:,?\s+and\s+|,\s*)`?\w+`?){0,11}) methods\b", task)
    if not said:
        return found
    names = [n.strip("`") for n in re.split(_AND_LIST, said.group(1)) if n.strip("`")]
    return [*found, *(Requirement("function", name, said.group(0)) for name in names)]


def _in_json(found: list[Requirement]) -> list[Requirement]:
    """ "A list of 5 ideas in JSON": what is counted is the JSON array's elements."""
    if not {r.kind for r in found} & {"json", "json_keys"} or any(r.kind == "json_array" for r in found):
        return found
    return [Requirement("json_array", r.value, r.quote) if r.kind == "items" else r for r in found]


def _returns(task: str, found: list[Requirement]) -> list[Requirement]:
    """A function the task says "returns" something must return it: "a function add(a, b) that returns the sum"."""
    said = re.search(
        r"\b(?:function|def|method)\b[^.]{0,120}?\b(?:returns?|returning)\b(?! nothing| none\b)", task, re.I
    )
    functions = [r.value for r in found if r.kind == "function"]
    if not said and len(functions) == 1:  # "Write a function named f. It should return the total."
        sentences = re.split(r"(?<=[.!?])\s+", task)
        where = next((i for i, s in enumerate(sentences) if functions[0] in s), None)
        after = sentences[where + 1] if where is not None and where + 1 < len(sentences) else ""
        said = re.match(
            r"\s*(?:it|the function|this function)\s+(?:should|must|needs to|has to)\s+return\b(?!\s+(?:nothing|none)\b)",
            after,
            re.I,
        )
        return [Requirement("returns", functions[0], said.group(0).strip())] if said else []
    if not said or re.search(r"\b(?:not|never|n't|without)\W+(?:\w+\W+){0,2}return", said.group(0), re.I):
        return []
    named = [r.value for r in found if r.kind == "function" and r.value in said.group(0)]
    return [Requirement("returns", named[0] if named else True, said.group(0).strip())]


_PARTS = r"(?:columns?|rows?|headers?|headings?|fields?|cells?|attributes?|properties|features?|metrics?|criteria)\b"

_NOT_NOUNS = (
    r"(?:across|as|is|was|has|his|its|this|plus|versus|us)\b"  # "2 laptops across 5 features": not "laptops acros-s"
)


def _table(task: str) -> list[Requirement]:
    """A Markdown table, with the columns and the number of rows the task names (either may be left open)."""
    said = re.search(
        r"(?<!hash )(?<!lookup )(?<!periodic )(?<!truth )\btable\b(?![\s-]+of[\s-]+contents)[^.]{0,160}", task, re.I
    )
    if not said:
        return []
    # The names run from "columns" to where the sentence turns to something else: ", with 4 rows", ")".
    columns = re.search(
        rf"\b(?:columns?|headers?|headings?)\b\s*(?:named|called|for|of|:)?\s*\(?\s*(.+?)"
        rf"(?=\)|;|\.\s|\.$|$|,?\s+(?:with|for|having|containing|listing|showing)\b|,?\s+and\s+(?:\w+\s+)?{_N}\s+)",
        said.group(0),
        re.I,
    )
    rows = (
        re.search(rf"\b{_N} (?:data |body )?rows\b", said.group(0), re.I)
        or re.search(
            rf"\b{_N} [a-z]+,? \(?(?:one|each) (?:per|on a|in a|to a) row\b", said.group(0), re.I
        )  # "5 countries (one per row)"
        or re.search(  # "a table of 3 programming languages", "a table comparing three laptops": one row each
            rf"\btable\b\s+(?:of|comparing|listing|showing)\s+{_N}\s+(?!{_PARTS})[a-z-]+(?:\s+(?!{_PARTS}|{_NOT_NOUNS})[a-z-]+)?s\b"
            rf"(?!\s+(?:or|for each|per|across|at)\b)(?![^.;:]{{0,40}}\b(?:each|every|per)\b)",
            said.group(0),
            re.I,
        )
    )
    names = [c.strip(" \"'`*") for c in re.split(_AND_LIST, columns.group(1))] if columns else []
    names = [c for c in names if c]
    if any(len(c.split()) > 3 for c in names):  # not a list of column names after all
        names = []
    value = {"columns": names or None, "rows": _number(rows.group(1)) if rows else None}
    return [Requirement("table", value, said.group(0).strip())]


def _read_requirement(kind: str, groups: list[str], quote: str) -> list[Requirement]:
    try:
        if kind == "open_range":  # "more than 100 words but fewer than 200"
            low, high = _number(groups[0]) + 1, _number(groups[1]) - 1
            return [Requirement("min_words", low, quote), Requirement("max_words", high, quote)]
        if kind == "one_word":  # "answer in one word": exactly one, not about one
            return [Requirement("exact_words", 1, quote)]
        if kind == "whole_sentence":
            return [Requirement("sentences", 1, quote)]
        if kind in ("one_sentence", "one_paragraph", "one_line"):
            return [Requirement(kind.replace("one_", "") + "s", 1, quote)]
        if kind == "word_range":
            low, high = sorted(_number(g) for g in groups[:2])
            return [Requirement("min_words", low, quote), Requirement("max_words", high, quote)]
        if kind in _SHIFT:
            real, shift = _SHIFT[kind]
            return [Requirement(real, _number(groups[0]) + shift, quote)]
        if kind == "form":
            return [Requirement("lines", _FORMS[groups[0].lower()], quote)]
        if kind == "json_keys":
            keys = [k.strip("\"'`") for k in re.split(_AND_LIST + r"|\s+", groups[0]) if k.strip("\"'`")]
            stop = next((i for i, k in enumerate(keys) if k.lower() in _KEY_LIST_ENDS), len(keys))
            keys = [k for k in keys[:stop] if k.lower() not in ("the", "a", "an")]
            return [Requirement(kind, keys, quote)] if keys else []
        if kind in ("json", "python", "uppercase", "lowercase", "no_code_fence", "no_title", "no_bullets", "no_quotes"):
            return [Requirement(kind, True, quote)]
        if kind in ("include", "exclude"):  # "the words 'a', 'b' and 'c'": one requirement each
            first = quote.find(groups[0]) - 1  # from the first phrase's quote on: "Don't" has an apostrophe too
            phrases = [a or b for a, b in re.findall(_QUOTED, quote[max(first, 0) :])] or groups[:1]
            return [Requirement(kind, phrase, quote) for phrase in phrases]
        if kind in ("function", "class", "line_start", "starts_with", "ends_with", "acrostic"):
            return [Requirement(kind, groups[0], quote)]
        return [Requirement(kind, _number(groups[0]), quote)]
    except (KeyError, ValueError, IndexError):
        return []
