"""When the critic disputes what code measured, or rejects while naming no fault: the sentences that say so.

Code outranks the critic in both directions. A failed check is a rejection no model can
overturn; and a rejection whose reason contradicts a check that passed ("it only has three
lines" of a haiku code counted three lines in) is not taken as stated: the chapter's
``judge_again`` asks the critic once more, with the measurement, and sets aside what it still claims.
A rejection that praises the draft and names no fault in it (``no_fault_named()``) is asked again too.

A leaf module (it imports only ``machinery.text``), so the chapter may import it.
"""

from __future__ import annotations

import re
from typing import Any

from machinery.text import clip

_NUMBER = (
    r"(\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|hundred)"
)
_WORDS_AS_NUMBERS = {
    w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())
}
_WORDS_AS_NUMBERS |= {"fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100}
# (a count named with a number, the same named without one, the fact code measured, the kinds that checked it):
# "only 3 lines" and "too many lines" claim a count; "the word 'sweet' is missing" does not.
_MORE = r"(?:too many|too few|more|fewer|enough|extra|additional|missing|remaining) "
_COUNTED = [
    (
        r"words?",
        rf"word count|word limit|the length|too long|too short|too wordy|too brief|{_MORE}words",
        "words",
        "max_words min_words about_words exact_words",
    ),
    (r"lines?", rf"line count|{_MORE}lines", "lines", "lines"),
    (r"sentences?", rf"{_MORE}sentences", None, "sentences"),
    (
        r"items?|bullets?|bullet points?|points?|entries|steps?",
        rf"{_MORE}(?:items|bullets|points|steps)",
        None,
        "items bullets numbered",
    ),
    (r"paragraphs?|stanzas?", rf"{_MORE}(?:paragraphs|stanzas)", None, "paragraphs"),
    (r"objects?|elements?|records?", rf"{_MORE}(?:objects|elements|records)", None, "json_array"),
]
# A number right after one of these is what the draft should be, not what it is: "to 50", "under 60 words".
_TARGET = r"\b(?:to|under|below|over|than|about|around|roughly|of|most|least|maximum|minimum|max|min|exactly|within|be|limit|only need|at)\s+$"
# "The second line has 9 words" counts a part of the draft, which code did not: it is not disputed.
_PART = (
    r"\b(?:first|second|third|fourth|fifth|last|final|each|every|this|that|one|opening|closing|middle) "
    r"(?:line|sentence|item|bullet|point|paragraph|stanza|verse|object|element|record|entry)\b"
    r"|\b(?:line|item|sentence) (?:\d+|one|two|three|four|five)\b"
    # "2 of the 3 records have no rating", "3 records of each film": which ones, or how many per thing
    r"|\b(?:\d+|one|two|three|four|five) of the\b|\b(?:of|for|per) each\b"
    # "the first two reasons say the same thing", "Apple is listed twice": which ones, not how many
    r"|\b(?:first|other|these|those) (?:\d+|two|three|four|five)\b"
    r"|\b(?:the same|identical|duplicates?|duplicated|twice|repeated|overlap\w*)\b"
)
_COMPLAINT = (
    r"\b(?:too (?:long|short|many|few|wordy|brief)|exceed\w*|over the|under the|more than|fewer than|less than|only|"
    r"missing|lacks?|not enough|should (?:be|have)|needs? (?:to|more|fewer)|does ?n[\u2019o']t (?:meet|have|contain)|instead of)\b"
)
# Of JSON objects, "missing" and "lacks" are about what is inside them ("all 3 objects are missing the year")
_COUNT_COMPLAINT = r"\b(?:only|too (?:many|few)|fewer than|less than|more than|not enough)\b"
_AGREES = r"\b(?:is|are) (?:fine|correct|right|good|ok|okay)\b|\bas (?:required|asked)\b"  # "only 3 is fine"
_ASK = r"\b(?:add|include|give(?: it)?|put|needs?|should have|requires?|missing|lacks?)\s+(?:a |an |the |any |some )?"
_HAS = (
    r"\b(?:has|have|contains?|includes?|uses?|keeps?|remove|drop|delete|strip|wrapped in|enclosed in|"
    r"surrounded by|inside|in)\s+(?:a |an |the |any |its |some |double |single )?"
)
_IN_CLAUSE = r"(?:(?!\b(?:and|but|while)\b)[^,;.])"  # a character of the same clause: "not X, and the capitals..."
_FOUND_INVALID = [  # (a claim that code found wrong, the kinds whose passing check says otherwise)
    (
        r"\bjson\b.*\b(?:invalid|not valid|malformed|broken|does ?n[o']t parse|syntax)\b|\binvalid json\b",
        "json json_array json_keys",
    ),
    (
        r"\b(?:missing|lacks?|without) (?:the |a |an )?(?:required )?(?:keys?|fields?)\b|\bkeys? (?:is|are) missing\b",
        "json_keys",
    ),
    (
        r"\b(?:syntax error|does ?n[o']t (?:parse|compile|run)|invalid python|indentation error)\b",
        "python function class",
    ),
    (r"\b(?:does ?n[o']t|never|fails to) return\b|\bonly prints\b|\breturns nothing\b", "returns"),
    # capitals only, and code counted no lower-case letter: "it does not include any capital letters"
    (rf"(?:\b(?:no|not|lacks?|without|missing)|n't)\b{_IN_CLAUSE}{{0,30}}\b(?:capital|upper-?case)\b", "uppercase"),
    (rf"(?:\b(?:no|not|lacks?|without|missing)|n't)\b{_IN_CLAUSE}{{0,30}}\blower-?case\b", "lowercase"),
    # and the other way: "it uses lowercase letters" of a draft in capitals that code found none in
    (rf"{_HAS}lower-?case\b", "uppercase"),
    (rf"{_HAS}(?:capital|upper-?case)\b", "lowercase"),
    # What the task forbids and code found absent: asking for it, or saying it is there, contradicts both.
    # Only those two ways: "it never names the book's title" or "the code block subtracts" is another reason.
    (rf"{_ASK}(?:title|heading|headline)\b(?! of)|{_HAS}(?:title|heading|headline)\b(?! of)", "no_title"),
    (
        rf"{_ASK}(?:quotation|quote) marks\b|{_HAS}(?:quotation marks?|quote marks?|quotes)\b(?! (?:from|by|of)\b)",
        "no_quotes",
    ),
    (rf"(?:{_ASK}|{_HAS})(?:code ?fences?|backticks|```)", "no_code_fence"),
    (rf"(?:{_ASK}|{_HAS})bullet(?:s| points?)\b|\b(?:as|be|into|use) an? bulleted list\b", "no_bullets"),
]


def _as_number(word: str) -> int:
    return int(word) if word.isdigit() else _WORDS_AS_NUMBERS[word]


def _first_number(text: str) -> int | None:
    found = re.search(r"\d+", text)
    return int(found.group(0)) if found else None


def reasons(feedback: str) -> list[str]:
    """The critic's reasons, one by one: its sentences, and the clauses a semicolon joins.

    >>> reasons("The story has no ending; it needs more words. Fine otherwise.")
    ['The story has no ending;', 'it needs more words.', 'Fine otherwise.']
    """
    return [s.strip() for s in re.split(r"(?<=[.!?;])\s+|\n+", feedback) if s.strip()]


def disputed(feedback: str, facts: dict[str, Any]) -> list[tuple[str, str]]:
    """Each sentence of a rejection that contradicts what code measured, with the measurement:
    a count or a length that a check passed (or that code counted otherwise), JSON or code that parsed,
    or something the task forbids (a title, quotation marks, a code fence, bullets) that code found absent.

    >>> facts = {"words": 17, "lines": 3, "checks": [{"kind": "lines", "passed": True, "measured": "3 non-empty lines"}]}
    >>> disputed("Missing the last two lines. The imagery is vague.", facts)
    [('Missing the last two lines.', '3 non-empty lines')]
    >>> disputed("The draft has 17 words. Line 2 has too many syllables.", facts)
    []
    """
    found = []
    checks = facts.get("checks", [])
    counted_here = _COUNTED + _task_nouns(checks)
    for sentence in reasons(feedback):
        low = sentence.lower()
        if said := _forbidden_word_said(low, checks):  # "it should not contain 'delicious'" of a draft without it
            found.append((sentence, said))
            continue
        # Clause by clause: in "it has only two lines and repeats the same image" the count is one clause and
        # the same image another; "the first two reasons say the same thing" names which ones, not how many.
        clauses = [c for c in re.split(r"[,;:]|\b(?:and|but|while)\b", low) if c.strip()] or [low]
        measured = next(
            (m for c in clauses if not re.search(_PART, c) for m in [_miscount(c, facts, counted_here)] if m), None
        )
        if measured:
            found.append((sentence, measured))
            continue
        for claim, kinds in _FOUND_INVALID:
            passing = [c for c in checks if c["kind"] in kinds.split() and c["passed"]]
            if passing and re.search(claim, low):
                found.append((sentence, passing[0]["measured"]))
                break
    return found


def _miscount(clause: str, facts: dict[str, Any], counted_here: list[tuple[str, str, str | None, str]]) -> str | None:
    """What code measured, when this clause states a count (or a length) that contradicts it."""
    checks = facts.get("checks", [])
    for counted, named, fact, kinds in counted_here:
        counts = [
            _as_number(m.group(1))
            for m in re.finditer(rf"\b{_NUMBER}\s+(?:\w+\s+)?(?:{counted})\b", clause)
            if not re.search(_TARGET, clause[: m.start()])  # "cut it to 50 words" names a target, not the draft
        ]
        if not counts and not re.search(rf"\b(?:{named})\b", clause):
            continue
        passing = [c for c in checks if c["kind"] in kinds.split()]
        measured = facts.get(fact) if fact else _first_number(passing[0]["measured"]) if passing else None
        wrong = [n for n in counts if n != measured]  # "three lines, as code measured" agrees: no dispute
        # "only 3 lines" of a haiku complains of a count code passed; "only 3 lines is fine" does not
        complaint = _COUNT_COMPLAINT if kinds == "json_array" else _COMPLAINT
        complains = bool(re.search(complaint, clause)) and not re.search(_AGREES, clause)
        if passing and all(c["passed"] for c in passing) and (wrong or complains):
            return "; ".join(c["measured"] for c in passing)
        if fact and wrong and not passing:  # a count code made of every draft, though the task set none
            return f"{facts.get(fact)} {fact}"
    return None


def _task_nouns(checks: list[dict[str, Any]]) -> list[tuple[str, str, str | None, str]]:
    """What the task's own count of items counts: "List exactly five fruits" makes "only one fruit" a count
    of items too, so a critic that miscounts the fruits is disputed as one that miscounts the items."""
    nouns: list[tuple[str, str, str | None, str]] = []
    for check in checks:
        if check["kind"] in ("items", "bullets", "numbered"):
            said = re.search(rf"\b{_NUMBER}\s+(?:\w+\s+)?([a-z]{{3,}}?)(?:es|s)?\b", check["requirement"].lower())
            if said and said.group(2) not in ("item", "bullet", "point", "entrie", "step", "word", "line"):
                nouns.append((rf"{said.group(2)}(?:e|es|s)?", r"(?!x)x", None, check["kind"]))
    return nouns


_SAYS_PRESENT = r"\b(?:contains?|uses?|includes?|has|have|appears?|mentions?|remove|drop|delete|still)\b"
_QUOTE = r"""["'“‘]?"""
_THE_WORD = rf"(?:the )?(?:(?:\w+ )?(?:word|phrase|term) )?{_QUOTE}"  # "the forbidden word 'sweet'"
_UNQUOTE = r"""["'”’]?"""


def _claim(present: bool, word: str) -> str:
    """A sentence saying ``word`` is in the draft (``present``) or missing from it, with the verb governing
    the word: "it uses 'sweet'", "'sweet' is still there", "remove the word sweet"; not "the ocean imagery
    is not vivid" (a sentence that only names the word) or "reduced" (which holds "red")."""
    w = re.escape(word.lower())
    if present:
        return (
            rf"\b(?:contains?|uses?|using|includes?|including|has|have|mentions?|remove|drop|delete|cut|still uses?)"
            rf"\s+{_THE_WORD}{w}\b|\b{w}{_UNQUOTE}\s+(?:is|are)\s+(?:still\s+)?(?:used|present|there|included|mentioned|in)\b"
            rf"|\b{w}{_UNQUOTE}\s+(?:appears?|remains?)\b"
        )
    return (
        rf"\b(?:(?:does|do|did) ?(?:not|n't)|never|not)\s+(?:\w+\s+)?(?:contain|use|include|mention|have|feature)s?"
        rf"\s+{_THE_WORD}{w}\b|\b(?:missing|lacks?|lacking|without|no mention of|omits?)\s+{_THE_WORD}{w}\b"
        rf"|\b{w}{_UNQUOTE}\s+(?:is|are)\s+(?:missing|absent|not (?:used|present|included|mentioned|there))\b"
        rf"|\b{w}{_UNQUOTE}\s+(?:(?:does|do) ?n[o']t|never)\s+appears?\b|\b{w}{_UNQUOTE}\s+(?:is|are)n't\s+(?:used|there)\b"
    )


def _forbidden_word_said(low: str, checks: list[dict[str, Any]]) -> str | None:
    """A sentence saying a word the task forbids is in the draft (or asking to remove it) when code found it
    absent, or that a word the task asks for is missing when code found it there."""
    for check in checks:
        if check["kind"] not in ("exclude", "include") or not check["passed"]:
            continue
        word = re.search(r"(?:does not contain|contains) '([^']+)'", check["measured"])
        if check["kind"] == "exclude" and re.search(
            r"\b(?:(?:does|do|did) ?(?:not|n't)|never)\s+" + _SAYS_PRESENT, low
        ):
            continue  # "it does not contain 'delicious'" agrees with code ("it should not contain it" does not)
        if word and re.search(_claim(check["kind"] == "exclude", word.group(1)), low):
            return str(check["measured"])
    return None


# A rejection that says the draft is right and names nothing wrong with it ("The draft is correct. It could
# benefit from more details.") is the critic contradicting itself: it is asked again, like a dispute.
_RIGHT = re.compile(
    r"\b(?:is|are|looks|seems)\s+(?:(?:fully|entirely|completely|perfectly|very|quite)\s+)?"
    r"(?:correct|accurate|complete|fine|good|great|well[- ]written)\b"
    r"|\b(?:meets?|fulfil+s?|satisf(?:ies|y)|follows?)\s+(?:all\s+|every\s+|each\s+|the\s+)*(?:of\s+)?(?:the\s+)?"
    r"(?:task'?s?\s+|stated\s+|given\s+)?(?:requirements?|criteria|instructions?|task)\b"
    r"|\bwhich is (?:correct|right|as (?:required|asked))\b",
    re.I,
)
# Every sentence but the praise must be a suggestion ("It could use a stronger ending", "For example, it's a
# good idea to..."), or say there is nothing to fix ("No changes are needed"); and none may hold a word that
# can name a fault, or give an order ("Change 'big' to 'large'", "- Remove the title"). A wrong second ask
# presses the critic to approve; a missed one costs a round, so the reading leans to missing.
_SUGGESTS = re.compile(
    r"\b(?:could|would)\b|\b(?:might|may) (?:want|wish|like|consider)\b|\bconsider\w*\b|\bgood idea\b|\boptional\w*\b",
    re.I,
)
_FAULT = re.compile(
    r"\b(?:not|no|none|nothing|neither|nor|never|hardly|barely|cannot|without|missing|lacks?|lacking|incorrect|"
    r"wrong|errors?|mistakes?|fails?|failed|too|exceeds?|only|should|must|needs?|instead|incomplete|unclear|"
    r"inaccurate|problems?|issues?|but|however|although|though|repeats?|repeated|same|duplicates?|weak|vague|"
    r"bland|generic|poor|awkward|confusing|irrelevant|off[- ]topic|unrelated|redundant|inconsistent|ignores?|"
    r"rushed|obvious|except|apart from|other than|rather than|asked for|crash\w*|breaks?|bugs?|"
    r"mostly|almost|nearly|partially|partly|largely|somewhat|generally|suggest|recommend)\b|n't\b"
    r"|^(?:\d+[.)]\s*)?(?:(?:please|also|additionally|finally|then|for example),?\s+)?"
    r"(?:change|replace|remove|delete|add|use|fix|rewrite|write|make|cut|shorten|include|avoid|correct|ensure|"
    r"revise|expand|verify|check|mention|clarify|reduce|rephrase|drop|keep|swap|start|insert|move|put)\b"
    r"|[,:]\s*(?:change|replace|remove|delete|add|fix|rewrite|cut|drop|swap|insert)\b",
    re.I,
)
_NO_FAULT = re.compile(
    r"\b(?:but|however),?\s+(?:it\s+)?(?=(?:could|would)\s+(?:benefit|be\s+(?:improved|enhanced|expanded|more|"
    r"even|better|nicer|helpful))\b)|\b(?:there is )?no need to \w+(?: or \w+)?(?: any)?\b"
    r"|\bno (?:further )?(?:changes?|edits?|revisions?) (?:are |is )?(?:needed|required|necessary)\b"
    r"|\b(?:there are |with )?no (?:errors?|issues?|problems?|mistakes?)(?: (?:were |are )?found)?\W*$"
    r"|\bnothing (?:is )?missing\W*$|\bwithout any (?:errors?|issues?|problems?)\W*$",
    re.I,
)
NO_FAULT = "no fault named"  # what a dispute event records as the measurement, when the critic only praised


def named_no_fault(first: list[Any]) -> bool:
    """Whether a ``dispute`` event's first claims are the one ``no_fault_named()`` makes, not a measurement's."""
    return [measured for _, measured in first] == [NO_FAULT]


def no_fault_named(feedback: str) -> str | None:
    """The sentence of a rejection that says the draft is right, when no sentence of it names a fault:
    what is left can only be a suggestion. None when some sentence may name one.

    >>> no_fault_named("The draft is correct. However, it could benefit from more details about the tower.")
    'The draft is correct.'
    >>> no_fault_named("The draft is correct, but it is missing a title.") is None
    True
    """
    said = [(s, re.sub(r"[*_>\"`\u201c\u201d\u2022-]+", " ", s).replace("\u2019", "'")) for s in reasons(feedback)]
    plain = [(s, _NO_FAULT.sub("", text).strip(), bool(_NO_FAULT.search(text))) for s, text in said]
    if any(_FAULT.search(text) for _, text, _ in plain):
        return None
    right = [s for s, text, _ in plain if _RIGHT.search(text)]
    if not right or not all(_RIGHT.search(text) or _SUGGESTS.search(text) or denies for _, text, denies in plain):
        return None
    return clip(right[0], 200)
