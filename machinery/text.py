"""Small text helpers every other module uses: cutting, one-line summaries, scrubbing secrets, finding JSON.

A leaf module: it imports nothing of this project, so the chapter may import it.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any


def times(n: int) -> str:
    """
    >>> times(1), times(2), times(3)
    ('once', 'twice', '3 times')
    """
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def clip(text: str, limit: int) -> str:
    """Cut text to ``limit`` characters, saying that it was cut.

    >>> clip("abcdefghij", 8)
    'abcd […]'
    """
    return text if len(text) <= limit else text[: limit - 4] + " […]"


def fit(text: str, limit: float) -> str:
    """``text`` cut so that its JSON-escaped form (what a prompt estimate counts) is at most ``limit`` characters.

    >>> fit("abcdefghij", 8), fit("abc", 8), fit("ééééé", 14)
    ('ab [...]', 'abc', 'é [...]')
    """
    if len(json.dumps(text)) - 2 <= limit:
        return text
    mark = " [...]"  # ASCII: it escapes to itself
    if len(mark) > limit:
        return ""
    kept = largest(len(text), lambda n: len(json.dumps(text[:n] + mark)) - 2 <= limit)  # the longest prefix that fits
    return text[:kept] + mark


def largest(most: int, fits: Callable[[int], bool]) -> int:
    """The largest n from 0 to ``most`` for which ``fits(n)`` holds (it holds for all smaller n), or -1.

    >>> largest(1200, lambda n: 2 * n <= 500)
    250
    """
    low, high = -1, most
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def first_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def shorten(text: str, limit: int) -> str:
    """``text`` on one line of at most ``limit`` characters, cut after a whole word and marked "…" when cut.

    >>> shorten("The draft is complete and on topic.", 20)
    'The draft is…'
    >>> shorten("Supercalifragilistic words", 10)  # a first word longer than the room is cut after all
    'Supercali…'
    """
    line = " ".join(str(text).split())
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0].rstrip(" ,;:·-") if " " in line[:limit] else ""
    return (cut or line[: max(limit - 1, 0)]) + "…"


def fit_parts(parts: list[str], limit: int, drop: list[int], sep: str = " · ") -> str:
    """``parts`` joined by ``sep``; while the line is longer than ``limit``, the parts at the indexes
    in ``drop`` are left out, in that order. The other parts always stay, whole.

    >>> fit_parts(["qwen2.5-coder", "300 tokens", "(200 in / 100 out)", "12.3s"], 34, drop=[2, 0])
    'qwen2.5-coder · 300 tokens · 12.3s'
    """
    kept = [part for part in parts if part]
    for index in drop:
        if len(sep.join(kept)) <= limit:
            break
        if parts[index] in kept:
            kept.remove(parts[index])
    return sep.join(kept)


def clean_text(text: str) -> str:
    """``text`` with any lone surrogate replaced by U+FFFD: JSON may carry one ("\\ud83d", a reply cut
    mid-emoji), and UTF-8 cannot encode it, so the screen, the trace and the next request would fail.

    >>> clean_text("cut \\ud83d here") == "cut \\ufffd here"
    True
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


_SECRET = re.compile(
    r"(?i)((?:bearer|basic)\s+)[^\s\"',;]+"  # an Authorization header, echoed
    r"|(?<![\w-])((?:sk|rk|pk)[-_][\w-]{8,})"  # key-shaped words: sk-..., sk-proj-..., sk_live_...
    r"|((?:api[ _-]?key|x-api-key|token|password|secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;)]+"
)


SECRET_MIN_CHARS = 16  # real keys are longer; a trace is not scrubbed of a placeholder such as "local"


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with the given secrets, and anything that looks like a key, replaced by [redacted].

    Run on any text a server wrote before it is shown or saved.

    >>> redact("Invalid header 'Authorization: Bearer abc123' (api_key=xyz)")
    "Invalid header 'Authorization: Bearer [redacted]' (api_key=[redacted])"
    """
    for secret in secrets:
        if secret and len(secret) >= 4:  # error text is short: scrubbing even a placeholder costs nothing
            text = text.replace(secret, "[redacted]")
    return _SECRET.sub(lambda m: (m.group(1) or m.group(3) or "") + "[redacted]", text)


def objects_with_spans(text: str) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(start, end, object) for every JSON object in ``text``, and for flat Python-style dicts ({'a': True})."""
    decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates)
    start = text.find("{")
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except RecursionError:  # nested absurdly deep: skip the whole run of openings, not one "{" at a time
            start = text.find("{", max(start + 1, text.find("}", start)))
            continue
        except ValueError:  # not JSON here
            value, end = _python_dict(text, start)
        if isinstance(value, dict) and nesting_depth(value) <= JSON_MAX_DEPTH:
            yield start, end, value
            start = text.find("{", end)
        else:
            start = text.find("{", start + 1)


JSON_MAX_DEPTH = 32  # deeper than any verdict, plan or config; deeper is garbage, and would break json.dumps


def nesting_depth(value: Any) -> int:
    """How deeply lists and dicts nest in ``value``, counted without recursion (a reply can nest thousands deep).

    >>> nesting_depth({"a": [1, {"b": 2}]}), nesting_depth("text")
    (3, 0)
    """
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose key repeats with another value keeps neither: {"approved": false, "approved": true}."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        data[key] = None if key in data and data[key] != value else value
    return data


def _python_dict(text: str, start: int) -> tuple[Any, int]:
    flat = re.match(r"\{[^{}]{0,2000}\}", text[start:])
    if flat:
        try:
            return ast.literal_eval(flat.group(0)), start + flat.end()
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    return None, start


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object embedded in ``text``, in order: bare, fenced, or amid prose.

    Small models wrap JSON in code fences, chatter around it, or double the
    braces; scanning from each "{" finds the objects anyway.

    >>> json_objects('Sure! ```json\\n{"a": 1}\\n``` and {{"b": 2}} but {broken')
    [{'a': 1}, {'b': 2}]
    """
    return [value for _, _, value in objects_with_spans(text)]


# A line that only introduces or closes the work ("Sure, here is the revised description:", "Let me know if
# you need changes!") is the model talking, not the work: code takes it off before anything is measured.
_OPENER = re.compile(
    r"^\s*(?:sure|certainly|of course|okay|ok|absolutely|here(?: is|'s| are)|below is|i (?:have|'ve) (?:revised|rewritten|updated))"
    r"\b[^\n]{0,120}:\s*$",
    re.I,
)
_CLOSER = re.compile(
    r"^\s*(?:let me know|i hope this|feel free|hope this|is there anything|"
    r"this (?:message|draft|version|response|text|poem|description|answer) (?:now )?(?:ends|meets|follows|includes|uses"
    r"|contains|has|is|should|fulfils|fulfills|satisfies))\b[^\n]{0,200}$",
    re.I,
)


def _said(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .!?\"'“”‘’")


def without_chatter(text: str, echoes: Sequence[str] = (), task: str = "") -> str:
    r"""``text`` without a first line that only introduces it, a last line that only offers more help or
    describes the work, any line that only repeats one of ``echoes`` (the prompt's own headings), and any
    line that is a whole sentence of the ``task`` of four words or more, copied out ("Just the five lines,
    no title." heading a limerick, seen live, made its four lines count as five).

    >>> without_chatter("Sure, here is the revised haiku:\n\nSnow on the pine\nLet me know if you want changes!")
    'Snow on the pine'
    >>> without_chatter("No title, just five lines.\nA wizard forgot", task="A limerick. No title, just five lines.")
    'A wizard forgot'
    """
    heard = [" ".join(e.lower().split()) for e in echoes]
    asked = {_said(s) for s in re.split(r"(?<=[.!?])\s+", task) if len(s.split()) >= 4}
    lines = [
        line
        for line in text.strip().splitlines()
        if not any(h in " ".join(line.lower().split()) for h in heard) and not (line.strip() and _said(line) in asked)
    ]
    if len(lines) > 1 and _OPENER.match(lines[0]):
        lines = lines[1:]
    if len(lines) > 1 and _CLOSER.match(lines[-1]):
        lines = lines[:-1]
    return "\n".join(lines).strip()


def unfenced(draft: str) -> str:
    r"""``draft`` without one code fence wrapped around all of it. For a task that forbids fences that fence
    is packaging, like a "Here is the code:" line: a 1.5B model told "no code fences" fenced its code in
    every draft of four live runs, and the work inside was right.

    >>> unfenced("```python\ndef f():\n    return 1\n```")
    'def f():\n    return 1'
    >>> unfenced("Use this:\n```\nx = 1\n```")  # words outside the fence: left for the check to see
    'Use this:\n```\nx = 1\n```'
    """
    whole = re.fullmatch(r"\s*```[^\n`]*\n(.*?)\n?```\s*", draft, re.S)
    return whole.group(1).strip("\n") if whole and "```" not in whole.group(1) else draft
