"""What code can measure in a draft: one table of requirement kinds, one function per kind.

``KINDS`` is the only list of kinds in the project: ``measure`` looks up each
kind's function in it, the phrasings in ``machinery/finder.py`` name its kinds
(a test checks that every one is a row here), and ``spelled_out`` says each
requirement to the worker. A new kind is one row here, plus the phrasings
that find it in a task.

A leaf module (it imports only ``machinery.text``), so the chapter may import it.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from machinery.text import clip, first_line, times, unfenced, without_chatter

ABOUT_TOLERANCE = 0.2  # "about 120 words" passes at 96-144 words: a fifth either way
REPEAT_LIMIT = 3  # a line (4+ words) this often, and a third of all lines: the model is looping, not writing a refrain


@dataclass(frozen=True)
class Requirement:
    """Something the task asks for that code can measure, and the task's own words it comes from.

    Found by code alone (``machinery.finder.requirements_from_task``), in the task's words,
    before any model is asked: no model can add one, change one or talk one away.
    """

    kind: str  # a key of KINDS: "max_words", "bullets", "json_array", "function", ...
    value: Any  # the number, name or phrase to match
    quote: str  # the words of the task it comes from


Measure = Callable[[str, Any], "tuple[bool, str]"]  # (draft, value) -> (passed, what was measured, in words)


@dataclass(frozen=True)
class Kind:
    """One kind of requirement: what it means, and the function that measures it."""

    name: str
    means: str  # in a few words, for people and for the planner's prompt
    measure: Measure
    always: bool = False  # every draft is checked for it; shown only when it fails


# -- Helpers the measuring functions share --------------------------------------

_FENCE = re.compile(r"```([^\n`]*)\n(.*?)```", re.S)
BULLET = re.compile(r"^\s*[-*•]\s+\S")  # a bullet point's line, as the counts read it (and machinery/repairs.py)
NUMBERED = re.compile(r"^\s*\d+[.)]\s+\S")
SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")  # where the sentence count ends a sentence
_MARKER = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _words(draft: str) -> int:
    return len(draft.split())


def _list_lines(draft: str, pattern: re.Pattern[str] | None = None) -> list[str]:
    lines = [line for line in draft.splitlines() if line.strip()]
    if pattern is not None:
        return [line for line in lines if pattern.match(line)]
    marked = [line for line in lines if BULLET.match(line) or NUMBERED.match(line)]
    return marked or lines


def _sentences(text: str) -> int:
    text = re.sub(r"```.*?```", " ", text, flags=re.S).strip()
    ends = len(SENTENCE_END.findall(text))
    return ends + (1 if text and not re.search(r"[.!?][\"')\]]*$", text) else 0)


def _json_value(draft: str) -> Any:
    """The draft's JSON: the whole draft, a fenced block, or the first array or object in it."""
    for candidate in [draft, *(code for tag, code in _FENCE.findall(draft) if tag.strip().lower() in ("", "json"))]:
        try:
            return json.loads(candidate)
        except (ValueError, RecursionError):
            pass
    decoder = json.JSONDecoder()
    for start in (i for i, c in enumerate(draft) if c in "[{"):
        try:
            return decoder.raw_decode(draft, start)[0]
        except (ValueError, RecursionError):
            continue
    return None


def _python_tree(draft: str) -> ast.Module | str:
    """The draft's Python, parsed; or why it does not parse. Every block a Python answer fences (untagged or
    tagged Python) is read as its code, all together: an "Output:" block of plain text after the function
    was approved live, and a reader running the fenced code fails on it."""
    blocks = [code for tag, code in _FENCE.findall(draft) if tag.strip().lower() in ("", "python", "py", "python3")]
    blocks = [_session(code) for code in blocks]
    for n, code in enumerate(blocks, 1):
        try:
            ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
            line = f" (line {err.lineno})" if isinstance(err, SyntaxError) and err.lineno else ""
            return f"fenced block {n} of {len(blocks)} does not parse as Python{line}; fence only Python code"
    try:
        return ast.parse("\n\n".join(blocks) if blocks else draft)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "the Python code does not parse; the task asks for working Python"


def _session(block: str) -> str:
    """A block's code, with an interpreter session in it (``>>> add(2, 3)`` then ``5``) cut to its input:
    the lines before the first ``>>>``, then each ``>>>`` line and the ``...`` lines that continue it."""
    code, typing = [], None
    for line in block.splitlines():
        if typing is None and not line.startswith(">>>"):
            code.append(line)
        elif line.startswith(">>>") or (typing and line.startswith("...")):
            code.append(line[4:])
            typing = True
        else:  # output, or an ellipsis printed by it
            typing = False
    return "\n".join(code)


def most_repeated_line(draft: str) -> tuple[str, int]:
    """The longer line (four words or more, outside code) repeated most often, and how often.

    A refrain is not a loop: a line counts as repeated only when its copies are a third of the lines or more.
    """
    counts: dict[str, int] = {}
    lines = [line for line in re.sub(r"```.*?(```|$)", "", draft, flags=re.S).splitlines() if line.strip()]
    for line in lines:
        key = " ".join(line.lower().split())
        if len(key.split()) >= 4:
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return "", 0
    line = max(counts, key=lambda k: counts[k])
    return (line, counts[line]) if counts[line] * 3 >= len(lines) else (line, 1)


# -- One function per kind: each returns (passed, what was measured) -------------


def _change(found: int, low: float, high: float, noun: str) -> str:
    """What to do about a count outside [low, high], in words a small model can act on: "cut 19 words"."""
    if found > high:
        return f" (cut {_count(math.ceil(found - high), noun)})"
    if found < low:
        return f" (add {_count(math.ceil(low - found), noun)})"
    return ""


def _max_words(draft: str, v: int) -> tuple[bool, str]:
    n = _words(draft)
    return n <= v, f"{_count(n, 'word')}; the task asks for at most {v}{_change(n, 0, v, 'word')}"


def _min_words(draft: str, v: int) -> tuple[bool, str]:
    n = _words(draft)
    return n >= v, f"{_count(n, 'word')}; the task asks for at least {v}{_change(n, v, math.inf, 'word')}"


def _about_words(draft: str, v: int) -> tuple[bool, str]:
    low, high = math.floor(v * (1 - ABOUT_TOLERANCE)), math.ceil(v * (1 + ABOUT_TOLERANCE))
    n = _words(draft)
    return (
        low <= n <= high,
        f"{_count(n, 'word')}; the task asks for about {v} ({low}-{high}){_change(n, low, high, 'word')}",
    )


def _exact_words(draft: str, v: int) -> tuple[bool, str]:
    n = _words(draft)
    return n == v, f"{_count(n, 'word')}; the task asks for exactly {v}{_change(n, v, v, 'word')}"


def _counted(noun: str, count: Callable[[str], int]) -> Measure:
    def measure_count(draft: str, v: int) -> tuple[bool, str]:
        found = count(draft)
        return found == v, f"{_count(found, noun)}; the task asks for exactly {v}{_change(found, v, v, noun)}"

    return measure_count


def _items(draft: str) -> int:
    found = len(_list_lines(draft))
    if found == 1:  # "France, Spain and Italy." on one line is three items
        found = len([part for part in re.split(r",|;|\band\b", draft) if part.strip(" .\n")])
    return found


def _item_max_words(draft: str, v: int) -> tuple[bool, str]:
    longest = max((len(_MARKER.sub("", line).split()) for line in _list_lines(draft)), default=0)
    return longest <= v, f"the longest item has {_count(longest, 'word')}; the task asks for at most {v} each"


def _json(draft: str, v: Any) -> tuple[bool, str]:
    if _json_value(draft) is None:
        return False, "no valid JSON found in the draft; the task asks for JSON"
    return True, "valid JSON"


def _json_array(draft: str, v: int) -> tuple[bool, str]:
    data = _json_value(draft)
    if data is None:
        return False, "no valid JSON found in the draft; the task asks for JSON"
    if not isinstance(data, list):
        return False, f"the JSON is {type(data).__name__}, not an array; the task asks for an array of {v}"
    return len(data) == v, f"a JSON array of {len(data)}; the task asks for {v}"


def _json_keys(draft: str, v: list[str]) -> tuple[bool, str]:
    data = _json_value(draft)
    if data is None:
        return False, "no valid JSON found in the draft; the task asks for JSON"
    objects = data if isinstance(data, list) else [data]
    missing = sorted({k for o in objects for k in v if not (isinstance(o, dict) and k in o)})
    return not missing, f"missing keys {', '.join(missing)}" if missing else f"every object has {', '.join(v)}"


def _python(draft: str, v: Any) -> tuple[bool, str]:
    tree = _python_tree(draft)
    return (False, tree) if isinstance(tree, str) else (True, "the Python code parses")


def _defines(kind: str, node: type | tuple[type, ...]) -> Measure:
    def measure_definition(draft: str, v: str) -> tuple[bool, str]:
        tree = _python_tree(draft)
        if isinstance(tree, str):
            return False, tree
        names = [n.name for n in ast.walk(tree) if isinstance(n, node)]  # type: ignore[attr-defined]
        return v in names, f"defines {', '.join(names) or 'nothing'}; the task asks for {kind} {v}"

    return measure_definition


def _phrase(kind: str) -> Measure:
    """A phrase the task asks for appears whole. One it forbids is not there in any form: a word of four
    letters or more counts at the start of a longer one too ("candles", "candlelight" for "candle": a riddle
    ending "...than regular candles" was approved live at 858650a), a shorter one with an s ("cats")."""

    def measure_phrase(draft: str, v: str) -> tuple[bool, str]:
        if kind == "include":
            present = re.search(rf"(?<!\w){re.escape(v)}(?!\w)", draft, re.I) is not None
            return present, f"contains '{v}'" if present else f"'{v}' is missing; the task asks for it"
        forms = rf"(?<!\w){re.escape(v)}" + (r"\w*" if len(v) >= 4 else r"s?(?!\w)")
        found = re.search(forms, draft, re.I)
        if found is None:
            return True, f"does not contain '{v}'"
        return False, f"'{found.group(0)}' appears; the task forbids '{v}'"

    return measure_phrase


def _line_start(draft: str, v: str) -> tuple[bool, str]:
    bad = [
        line.strip() for line in _list_lines(draft, re.compile(".")) if not line.strip().lower().startswith(v.lower())
    ]
    verb = "does" if len(bad) == 1 else "do"
    return (
        not bad,
        f"{_count(len(bad), 'line')} {verb} not start with '{v}'" if bad else f"every line starts with '{v}'",
    )


def _uppercase(draft: str, v: Any) -> tuple[bool, str]:
    lower = sum(c.islower() for c in draft)
    return lower == 0, f"{_count(lower, 'lowercase letter')}; the task asks for capitals only"


def _paragraphs(draft: str) -> int:
    prose = re.sub(r"```.*?(```|$)", "code", draft.strip(), flags=re.S)
    return len([block for block in re.split(r"\n\s*\n", prose) if block.strip()])


_count_paragraphs = _counted("paragraph", _paragraphs)


def _paragraph_count(draft: str, v: int) -> tuple[bool, str]:
    passed, measured = _count_paragraphs(draft, v)
    # a small model told "add 1 paragraph" kept writing one block: say what makes two
    return passed, measured if passed else f"{measured}; paragraphs are separated by one blank line"


def _function(tree: ast.Module, name: Any) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The function of that name; for ``True`` (a task that names none), the first that returns a value, or the first."""
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if name is not True:
        return next((f for f in functions if f.name == name), None)
    return next((f for f in functions if _gives(f)), functions[0] if functions else None)


def _gives(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether the function itself (not one nested in it) returns something other than None."""
    own = [n for n in ast.walk(function) if n is function or not isinstance(n, (ast.FunctionDef, ast.Lambda))]
    returns = [n for n in own if isinstance(n, ast.Return) and n.value is not None]
    return any(not (isinstance(n.value, ast.Constant) and n.value.value is None) for n in returns)


def _returns(draft: str, v: Any) -> tuple[bool, str]:
    """The function returns a value: a ``return`` with something after it, read from the syntax tree, never run."""
    tree = _python_tree(draft)
    if isinstance(tree, str):
        return False, tree
    function = _function(tree, v)
    if function is None:
        return False, f"no function {v if v is not True else ''} to check; the task asks for one that returns a value"
    own = [n for n in ast.walk(function) if n is function or not isinstance(n, (ast.FunctionDef, ast.Lambda))]
    prints = any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print" for n in own)
    if _gives(function):
        return True, f"{function.name} returns a value"
    return (
        False,
        f"{function.name} {'prints but ' if prints else ''}returns nothing; the task asks it to return a value",
    )


def _bare(text: str) -> str:
    """Text as compared with a phrase: lower case, spaces collapsed, no quotes or closing punctuation around it."""
    return " ".join(text.lower().split()).strip(" \"'“”‘’*_`").rstrip(".!?,;:").strip(" \"'“”‘’*_`")


def _starts_with(draft: str, v: str) -> tuple[bool, str]:
    start = _bare(draft)[: len(_bare(v)) + 2]
    return start.startswith(_bare(v)), f"starts with '{clip(draft.strip(), len(v) + 10)}'; the task asks for '{v}'"


def _ends_with(draft: str, v: str) -> tuple[bool, str]:
    last = _bare(draft)[-(len(_bare(v)) + 2) :]
    ok, mark = last.endswith(_bare(v)), v.strip(_AROUND)[-1:]
    if ok and mark in (".", "!", "?"):  # "ends with 'Keep going.'" asks for its full stop: "Keep going!" is not it
        ok = draft.strip().strip(_AROUND).endswith(mark)
    return ok, f"ends with '{draft.strip()[-(len(v) + 10) :]}'; the task asks for '{v}'"


_AROUND = " \"'“”‘’*_`"  # quotation marks and markdown around a phrase or a draft


def _acrostic(draft: str, v: str) -> tuple[bool, str]:
    lines = [line for line in draft.splitlines() if re.search(r"[A-Za-z]", line)]
    letters = "".join(re.search(r"[A-Za-z]", line).group(0) for line in lines)  # type: ignore[union-attr]
    word = re.sub(r"[^A-Za-z]", "", v)
    if letters.lower() == word.lower():
        return True, f"the lines start with {letters}; the task asks for {word}"
    # a small model told only "the task asks for RAIN" writes about rain: say what each line must do
    each = ", ".join(f"line {i} with {c.upper()}" for i, c in enumerate(word, 1))
    return False, f"the lines start with {letters or 'nothing'}; the task asks for {word}: {len(word)} lines, {each}"


def _lowercase(draft: str, v: Any) -> tuple[bool, str]:
    upper = sum(c.isupper() for c in draft)
    return upper == 0, f"{_count(upper, 'capital letter')}; the task asks for lower case only"


def _no_code_fence(draft: str, v: Any) -> tuple[bool, str]:
    fences = draft.count("```")
    return fences == 0, f"{_count(fences, 'code fence')} (```); the task asks for none"


def _no_title(draft: str, v: Any) -> tuple[bool, str]:
    lines = draft.strip().splitlines()
    first = lines[0].strip() if lines else ""
    titled = bool(
        re.match(r"^(#+\s|\*\*[^*]+\*\*$|title\s*:)", first, re.I)
        or (len(lines) > 2 and not lines[1].strip() and len(first.split()) <= 8 and not re.search(r"[.!?,;:]$", first))
    )
    return (
        not titled,
        f"the first line, '{clip(first, 50)}', is a title; the task asks for none" if titled else "no title",
    )


_QUOTE_MARKS = re.compile(r"[\"“”«»]|(?<!\w)['‘][^'’\n]*['’](?!\w)")  # an apostrophe inside a word is not one


def _no_quotes(draft: str, v: Any) -> tuple[bool, str]:
    marks = _QUOTE_MARKS.findall(draft)
    return (
        not marks,
        f"quotation marks ({clip(marks[0], 20)}); the task asks for none" if marks else "no quotation marks",
    )


def _no_bullets(draft: str, v: Any) -> tuple[bool, str]:
    marked = len(_list_lines(draft, BULLET)) + len(_list_lines(draft, NUMBERED))
    return marked == 0, f"{_count(marked, 'list line')}; the task asks for no bullet points or lists"


def _table(draft: str, v: dict[str, Any]) -> tuple[bool, str]:
    """A Markdown table: its header names the columns asked for, and it has the rows asked for (not counting the header)."""
    rows = [line.strip().strip("|").split("|") for line in draft.splitlines() if line.strip().count("|") >= 2]
    if len(rows) < 2 or not all(re.fullmatch(r"\s*:?-{2,}:?\s*", cell) for cell in rows[1]):
        return False, "no Markdown table (a header row, then a |---| row); the task asks for a table"
    header = [" ".join(cell.split()).lower() for cell in rows[0]]
    missing = [c for c in v.get("columns") or [] if c.lower() not in header]
    body = len(rows) - 2
    if missing:
        return False, f"the table's header lacks {', '.join(missing)}"
    if v.get("rows") is not None and body != v["rows"]:
        return False, f"the table has {_count(body, 'row')}; the task asks for {v['rows']}"
    if not body:  # a header alone was approved live: it is the frame of a table, with nothing in it
        return False, "the table has a header and no rows; the task asks for a table with rows"
    return True, f"a table with {_count(len(header), 'column')} and {_count(body, 'row')}"


def _no_empty_items(draft: str, v: Any) -> tuple[bool, str]:
    """ "- -" or "3." with nothing after it: list markers with no words."""
    prose = re.sub(r"```.*?(```|$)", "", draft, flags=re.S)  # code and JSON are not list items
    marked = [m.group(1) for m in re.finditer(r"^\s*(?:[-*•]|\d+[.)])(?=\s|$)(.*)$", prose, re.M)]
    empty = [rest for rest in marked if not re.search(r"\w", rest)]
    return not empty, f"{_count(len(empty), 'list item')} with no words in it" if empty else "no empty items"


def _new_draft(draft: str, rejected: list[str]) -> tuple[bool, str]:
    """Not a draft already rejected, word for word (whitespace aside)."""
    same = " ".join(draft.split()) in {" ".join(old.split()) for old in rejected}
    return (
        not same,
        "the same text as a draft already rejected: change what the feedback says" if same else "a new draft",
    )


# What the draft says to the reviewer, and what in a task makes it fair to say. Words about the review
# itself ("your feedback", "my previous draft") count anywhere; an apology, "I understand" or a request
# for input counts only as the draft's first or last line, where the model talks instead of working:
# inside the work, "I apologize for the delay" may be just what a customer letter needs.
_ABOUT_THE_REVIEW = [
    (
        r"\b(?:your|the) (?:feedback|critique)\b|\bthank you for (?:the|your) (?:notes|review|comments)\b",
        r"feedback|review|critique|customer|reply|email|letter|message",
    ),
    (r"\b(?:my|the|your) (?:previous|earlier|last|prior) (?:drafts?|versions?)\b", r"draft|version"),
    # the verdict repeated back: "The draft was rejected. The code measured the draft: three sentences."
    (r"\bcode measured the draft\b", r"draft|review"),
    (r"\b(?:here is|here's) (?:the|a|my) (?:revised|updated|corrected|improved) (?:version|draft)\b", r"draft|version"),
    (
        r"\bI (?:have|'ve) (?:revised|updated|corrected|fixed|rewritten) (?:the|my|this) (?:draft|version|text)\b",
        r"revis|draft",
    ),
]
_AT_THE_EDGES = [
    (
        r"^\W*(?:I apologi[sz]e|(?:my )?apologies|sorry|I'?m sorry|I am sorry)\b",
        r"apolog|sorry|letter|email|reply|message|note",
    ),
    # the verdict repeated back as the first or last line: "The draft was rejected. The code measured ..."
    (r"^\W*the draft (?:was|is|has been) (?:rejected|approved|accepted)\b", r"draft|review"),
    (  # a refusal is not the work: "I'm sorry, but I can't assist with that request." (seen live); a line
        # that opens with a quotation mark is a character speaking, and "I can't help feeling" is work
        r"^[^\w\"“‘']*(?:(?:I'm|I am) sorry,? (?:but )?)?I(?: can ?not| can't| cannot| am unable to|'m unable to| won't)"
        r" (?:assist|help|complete|fulfil+|provide|do|write|create)(?: you)?(?: with)? (?:that|this|the|your)"
        r"(?: (?:request|task|question|prompt|information|one))?\s*[.!]?\s*$",
        r"refus|declin|letter|email|reply|message",
    ),
    (r"^\W*(?:(?:sure|okay|ok|yes),? )?I understand\b", r"\bI understand"),
    (
        r"\b(?:please|could you|can you) (?:please )?(?:provide|share|give me|clarify|specify)\b",
        r"email|letter|message|reply|form|note",
    ),
]


def _no_chatter(draft: str, task: str) -> tuple[bool, str]:
    draft = draft.replace("’", "'")  # "I’m sorry" is "I'm sorry"
    lines = [line.strip() for line in draft.strip().splitlines() if line.strip()]
    edges = [lines[0], lines[-1]] if lines else []
    said = [
        m.group(0)
        for pattern, fair in _ABOUT_THE_REVIEW
        if not re.search(fair, task, re.I)
        for m in [re.search(pattern, draft, re.I)]
        if m
    ]
    said += [
        m.group(0)
        for pattern, fair in _AT_THE_EDGES
        if not re.search(fair, task, re.I)
        for line in edges
        for m in [re.search(pattern, line, re.I)]
        if m
    ]
    if said:
        return False, f"the draft talks to the reviewer ('{said[0].strip()}'); write only the work the task asks for"
    return True, "the work itself"


def _no_echo(draft: str, prompt: list[str]) -> tuple[bool, str]:
    """Not the prompt's own words: its headings and instructions, copied into the work.

    (A draft that lists what the plan listed is not an echo: for "list 6 steps for brewing tea" the
    plan's steps may well be the answer's items. A plan that is the answer is the planner's fault.)
    """
    flat = " ".join(draft.lower().split())
    copied = [said for said in prompt if " ".join(said.lower().split()) in flat]
    if copied:
        return False, f"the draft repeats the prompt ('{clip(copied[0], 60)}'); write only the work the task asks for"
    return True, "nothing copied from the prompt"


def _no_repeats(draft: str, v: int) -> tuple[bool, str]:
    line, times_seen = most_repeated_line(draft)
    if times_seen < v:
        return True, "no line repeated"
    return False, f"the draft repeats itself: '{clip(line, 60)}' appears {times(times_seen)}"


def cleaned(text: str, echoes: Sequence[str] = (), task: str = "", requirements: Sequence[Requirement] = ()) -> str:
    """A reply as code measures it, the worker's and the plain call's alike: ``without_chatter``, and
    ``unfenced`` when the task forbids code fences."""
    text = without_chatter(text, echoes, task)
    return unfenced(text) if any(r.kind == "no_code_fence" for r in requirements) else text


# -- The table ------------------------------------------------------------------

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("max_words", "at most N words", _max_words),
        Kind("min_words", "at least N words", _min_words),
        Kind("about_words", "about N words", _about_words),
        Kind("exact_words", "exactly N words", _exact_words),
        Kind("bullets", "exactly N bullet points", _counted("bullet point", lambda d: len(_list_lines(d, BULLET)))),
        Kind("numbered", "exactly N numbered items", _counted("numbered item", lambda d: len(_list_lines(d, NUMBERED)))),
        Kind("items", "exactly N list items", _counted("item", _items)),
        Kind("lines", "exactly N non-empty lines", _counted("non-empty line", lambda d: len(_list_lines(d, re.compile(r"(?!\s*```)"))))),
        Kind("sentences", "exactly N sentences", _counted("sentence", _sentences)),
        Kind("paragraphs", "exactly N paragraphs", _paragraph_count),
        Kind("item_max_words", "each list item at most N words", _item_max_words),
        Kind("json", "valid JSON", _json),
        Kind("json_array", "a JSON array of N elements", _json_array),
        Kind("json_keys", "JSON objects with these keys", _json_keys),
        Kind("python", "Python code that parses", _python),
        Kind("function", "a Python function of this name", _defines("function", (ast.FunctionDef, ast.AsyncFunctionDef))),
        Kind("class", "a Python class of this name", _defines("class", ast.ClassDef)),
        Kind("returns", "the function returns a value, not only prints it", _returns),
        Kind("include", "this word or phrase appears", _phrase("include")),
        Kind("exclude", "this word or phrase does not appear", _phrase("exclude")),
        Kind("line_start", "every line starts with this letter", _line_start),
        Kind("uppercase", "capital letters only", _uppercase),
        Kind("lowercase", "lower case only", _lowercase),
        Kind("starts_with", "the text begins with this phrase", _starts_with),
        Kind("ends_with", "the text ends with this phrase", _ends_with),
        Kind("acrostic", "the lines' first letters spell this word", _acrostic),
        Kind("no_code_fence", "no ``` code fences", _no_code_fence),
        Kind("no_title", "no title or heading", _no_title),
        Kind("no_bullets", "no bullet points or numbered lists", _no_bullets),
        Kind("no_quotes", "no quotation marks", _no_quotes),
        Kind("table", "a Markdown table with these columns and rows", _table),
        Kind("no_repeats", "no line repeated over and over", _no_repeats, always=True),
        Kind("no_empty_items", "no list item without words", _no_empty_items, always=True),
        Kind("new_draft", "not a draft already rejected", _new_draft, always=True),
        Kind("no_chatter", "the work itself, not a note to the reviewer", _no_chatter, always=True),
        Kind("no_echo", "nothing copied from the prompt or the plan", _no_echo, always=True),
    )
}  # fmt: skip
ALWAYS_CHECKED = tuple(name for name, kind in KINDS.items() if kind.always)  # every draft, whatever the task
# The two of them that need nothing from the run (the other three, the run's own rejected drafts and prompt:
# the chapter's run_checks)
EVERY_DRAFT = (
    Requirement("no_repeats", REPEAT_LIMIT, "no repeated lines"),
    Requirement("no_empty_items", 0, "no empty items"),
)


def measure(draft: str, r: Requirement) -> tuple[bool, str]:
    """Whether ``draft`` meets ``r``, and what was measured, in words a model can act on.

    >>> measure("one two three", Requirement("max_words", 2, "at most 2 words"))
    (False, '3 words; the task asks for at most 2 (cut 1 word)')
    """
    kind = KINDS.get(r.kind)
    if kind is None:
        return False, f"unknown requirement kind {r.kind!r}: not checked"
    return kind.measure(draft, r.value)


_COUNTERS: dict[str, Callable[[str], int]] = {
    "max_words": _words,
    "min_words": _words,
    "about_words": _words,
    "exact_words": _words,
    "bullets": lambda d: len(_list_lines(d, BULLET)),
    "numbered": lambda d: len(_list_lines(d, NUMBERED)),
    "items": _items,
    "lines": lambda d: len(_list_lines(d, re.compile(r"(?!\s*```)"))),
    "sentences": _sentences,
    "paragraphs": _paragraphs,
}


def distance(draft: str, r: Requirement) -> float:
    """How far ``draft`` is from meeting ``r``: 0 when it does; for a count, how far off it is as a share
    of the count asked for (105 words is 0.1 from "about 150", which allows 120-180; 382 words is 1.35); otherwise 1.

    >>> distance("a " * 105, Requirement("about_words", 150, "about 150 words")), distance("x", Requirement("json", True, "JSON"))
    (0.1, 1.0)
    """
    passed, _ = measure(draft, r)
    if passed:
        return 0.0
    count = _COUNTERS.get(r.kind)
    if count is None or not isinstance(r.value, int) or r.value <= 0:
        return 1.0
    low, high = r.value, r.value
    if r.kind == "about_words":
        low, high = math.floor(r.value * (1 - ABOUT_TOLERANCE)), math.ceil(r.value * (1 + ABOUT_TOLERANCE))
    elif r.kind == "max_words":
        low = 0
    elif r.kind == "min_words":
        high = math.inf  # type: ignore[assignment]
    found = count(draft)
    return round(max(low - found, found - high, 0) / r.value, 3)


# -- What the agents are shown of the measurements -------------------------------


def code_blocks(text: str) -> list[dict[str, Any]]:
    """Each fenced code block's language, and whether it parses (Python and JSON are checked)."""
    blocks = []
    for tag, code in _FENCE.findall(text):
        language = tag.strip().lower() or "unlabelled"
        check: dict[str, Any] = {"language": language, "parses": None}
        try:
            if language in ("python", "py", "python3"):
                ast.parse(_session(code))
                check["parses"] = True
            elif language == "json":
                json.loads(code)
                check["parses"] = True
        except (SyntaxError, ValueError, RecursionError) as err:
            check["parses"], check["error"] = False, first_line(str(err) or type(err).__name__, 120)
        blocks.append(check)
    return blocks


def spelled_out(r: Requirement) -> str:
    """A requirement as the worker should read it: the task's words, and the measure when they hide it.

    >>> spelled_out(Requirement("lines", 3, "haiku")), spelled_out(Requirement("max_words", 40, "at most 40 words"))
    ('haiku (lines: 3)', 'at most 40 words')
    """
    if r.value is True or str(r.value).lower() in r.quote.lower():
        return r.quote
    value = ", ".join(r.value) if isinstance(r.value, list) else r.value
    return f"{r.quote} ({r.kind.replace('_', ' ')}: {value})"


def shown_checks(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks worth showing: every requirement of the task, and the checks every draft gets only when they fail."""
    return [c for c in facts.get("checks", []) if c["kind"] not in ALWAYS_CHECKED or not c["passed"]]


def format_facts(facts: dict[str, Any]) -> str:
    lines = [f"- words: {facts['words']}", f"- non-empty lines: {facts['lines']}"]  # characters: in the trace only
    if facts.get("cut_off"):
        lines.append("- the draft was cut off at its token limit: it is incomplete")
    if facts.get("mended"):  # machinery/repairs.py: judge what is left, not what was cut
        lines.append(
            f"- code mended the draft to the task's count ({clip(facts['mended'], 120)}): judge it as it is now"
        )
    for i, block in enumerate(facts["code_blocks"], 1):
        status = {True: "parses", False: f"does NOT parse ({block.get('error')})", None: "not checked"}[block["parses"]]
        lines.append(f"- code block {i} ({block['language']}): {status}")
    for check in shown_checks(facts):
        lines.append(f"- {'✓' if check['passed'] else '✗'} {check['requirement']}: {check['measured']}")
    return "\n".join(lines)
