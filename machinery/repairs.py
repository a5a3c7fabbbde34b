"""What code may do to a draft that misses a count: cut what is over it, or move paragraph breaks. Never write a word.

A 1.5B model asked for "exactly two sentences" writes three, and told "cut 1 sentence" often writes three
again; asked for two paragraphs, it writes one block, draft after draft. Code can end the text after the
second sentence, or put a blank line between two sentences, for free and at once. It cannot add a sentence,
a word the task asks for, or a missing line: only a model can write.

Each cut is conservative: at a sentence's end (not after "e.g." or a bare "2."), dropping list items only
when nothing but list follows them, dropping a poem's title or its last whole stanzas, splitting only one
plain block of prose and joining only blocks that are all prose. ``repaired`` keeps a cut only when it
leaves fewer checks failed, fails none that passed, and passes no check but a count's; the critic still
judges the cut draft (and is told it was cut), and the trace says what code cut.

>>> fix = repaired("Dogs bark. Cats purr. Birds sing.", [Requirement("sentences", 2, "exactly two sentences")])
>>> fix.draft, fix.how
('Dogs bark. Cats purr.', 'kept the first 2 sentences of 3')
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from machinery.checks import ABOUT_TOLERANCE, EVERY_DRAFT, Requirement, measure

_END = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")  # a sentence's end, as the sentence count reads it
_NOT_AN_END = re.compile(r"(?:^\s*\d+[.)]|(?<!\w)(?:e\.g|i\.e|etc|vs|approx|dr|mr|mrs|ms|st|no|fig)\.)$", re.I)
_MARKERS = {
    "bullets": re.compile(r"^\s*[-*•]\s+\S"),
    "numbered": re.compile(r"^\s*\d+[.)]\s+\S"),
    "items": re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S"),
}
_HEADING = re.compile(r"^\s*(?:#|\*\*[^*]+\*\*\s*$|\|)")  # a Markdown heading, a bold line, a table row


@dataclass(frozen=True)
class Repair:
    draft: str
    how: str  # what code did, for the trace, the screen and the critic: "kept the first 2 sentences of 3"


def _ends(text: str) -> list[int]:
    """Where each sentence ends (just after its mark), as the sentence count reads them."""
    return [m.end() for m in _END.finditer(text)]


def _cuttable(text: str, end: int) -> bool:
    """Whether ``text`` may be cut at ``end``: a real sentence's end, not "e.g.", "Dr." or a bare list marker
    "2.", and not followed by a lower-case word (the sentence goes on)."""
    line = text[:end].rsplit("\n", 1)[-1]
    return not _NOT_AN_END.search(line) and not re.match(r"\s+[a-z]", text[end:])


def _first_sentences(draft: str, n: int) -> Repair | None:
    ends = _ends(draft)
    if "```" in draft or n < 1 or len(ends) <= n or not all(_cuttable(draft, e) for e in ends[:n]):
        return None  # "Dr. Lee agrees." would count as two: the cut must keep n real sentences
    return Repair(draft[: ends[n - 1]].rstrip(), f"kept the first {n} sentences of {len(ends)}")


def _within_words(draft: str, high: int, low: int = 1) -> Repair | None:
    """The longest run of whole sentences from the start that is at most ``high`` words (and at least ``low``)."""
    total = len(draft.split())
    fits = [e for e in _ends(draft) if low <= len(draft[:e].split()) <= high and _cuttable(draft, e)]
    if "```" in draft or total <= high or not fits:
        return None
    kept = draft[: fits[-1]].rstrip()
    return Repair(kept, f"ended the draft after {len(kept.split())} of its {total} words, at a sentence's end")


def _first_items(draft: str, n: int, kind: str) -> Repair | None:
    """The items after the n-th dropped, when nothing but list follows them (more items, or lines indented
    under them): a line of prose or a heading after the list may be what the task asked for."""
    lines, marker = draft.splitlines(), _MARKERS[kind]
    at = [i for i, line in enumerate(lines) if marker.match(line)]
    if "```" in draft or n < 1 or len(at) <= n:
        return None
    tail = lines[at[n] :]
    if any(line.strip() and not marker.match(line) and not line[:1].isspace() for line in tail):
        return None
    return Repair("\n".join(lines[: at[n]]).rstrip(), f"kept the first {n} list items of {len(at)}")


def _first_lines(draft: str, n: int) -> Repair | None:
    """A poem's title dropped, or its last whole stanzas, when that leaves exactly n lines; never half a stanza."""
    if "```" in draft or n < 1:
        return None
    blocks = [b for b in re.split(r"\n\s*\n", draft.strip()) if b.strip()]
    count = [len([line for line in b.splitlines() if line.strip()]) for b in blocks]
    if sum(count) <= n:
        return None
    if not measure(draft, Requirement("no_title", True, ""))[0]:  # a title is not one of the lines asked for
        first, rest = draft.strip().split("\n", 1)
        if len([line for line in rest.splitlines() if line.strip()]) == n:
            return Repair(rest.strip(), f"took off the title, '{first.strip()}'")
    for k in range(len(blocks) - 1, 0, -1):
        if sum(count[:k]) == n:
            return Repair("\n\n".join(blocks[:k]), f"kept the first {k} of {len(blocks)} stanzas ({n} lines)")
    return None


def _prose(block: str) -> bool:
    return not _HEADING.match(block) and not any(_MARKERS["items"].match(line) for line in block.splitlines())


def _paragraphs(draft: str, n: int) -> Repair | None:
    """One line of prose split into n paragraphs between sentences, or too many prose paragraphs joined into n
    (each kept on its own line): never a heading, a title, a list, a table, a greeting or a sign-off."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", draft.strip()) if b.strip()]
    if "```" in draft or n < 1 or not blocks or not all(_prose(b) and _END.search(b[-3:]) for b in blocks):
        return None
    if len(blocks) > n:
        parts, glue, how = blocks, "\n", f"joined {len(blocks)} paragraphs into {n}"
    elif len(blocks) == 1 and "\n" not in blocks[0]:
        text = blocks[0]
        ends = [e for e in _ends(text) if e == len(text) or _cuttable(text, e)]
        if len(ends) < n or ends[-1] != len(text):
            return None
        parts = [text[a:b].strip() for a, b in zip([0, *ends[:-1]], ends, strict=True)]
        glue, how = " ", f"split 1 paragraph into {n}, between sentences"
    else:
        return None
    size, done = sum(len(p) for p in parts) / n, 0
    groups: list[list[str]] = [[] for _ in range(n)]
    for i, part in enumerate(parts):  # about equal lengths, every group at least one part
        groups[max(min(int(done // size), n - 1), n - (len(parts) - i))].append(part)
        done += len(part)
    return Repair("\n\n".join(glue.join(g) for g in groups), how) if all(groups) else None


Fixer = Callable[[str, Requirement], "Repair | None"]

FIXERS: dict[str, Fixer] = {
    "sentences": lambda d, r: _first_sentences(d, r.value),
    "max_words": lambda d, r: _within_words(d, r.value),
    "about_words": lambda d, r: _within_words(
        d, math.ceil(r.value * (1 + ABOUT_TOLERANCE)), math.floor(r.value * (1 - ABOUT_TOLERANCE))
    ),
    "bullets": lambda d, r: _first_items(d, r.value, "bullets"),
    "numbered": lambda d, r: _first_items(d, r.value, "numbered"),
    "items": lambda d, r: _first_items(d, r.value, "items"),
    "lines": lambda d, r: _first_lines(d, r.value),
    "paragraphs": lambda d, r: _paragraphs(d, r.value),
}  # what code can mend; every other kind needs a model to write
MENDED = "code mended the draft"  # how the trace's warning begins: tools/trace_walkthrough.py reads it back
REPEAT_KIND = "new_draft"  # a cut that lands on a draft already rejected is a repeat: the worker is asked again


def repaired(draft: str, checks: Sequence[Requirement]) -> Repair | None:
    """The draft with code's cuts, when they leave fewer checks failed, fail none that passed (the checks
    every draft gets included) and pass none but counts: a cut that passes "no title" by gluing the title
    to the text, or "no repeats" by joining the repeats, hides a fault, it does not mend one.

    Each failed check with a fixer is tried in turn on the draft as cut so far.
    """
    checks = [*checks, *EVERY_DRAFT]
    repeat = {i for i, r in enumerate(checks) if r.kind == REPEAT_KIND}
    failed = {i for i, r in enumerate(checks) if not measure(draft, r)[0]}
    text, hows = draft, []
    for i in sorted(failed):
        fixer = FIXERS.get(checks[i].kind)
        fix = fixer(text, checks[i]) if fixer else None
        if fix is None or not fix.draft.strip():
            continue
        now = {j for j, r in enumerate(checks) if not measure(fix.draft, r)[0]}
        if i not in now and now - repeat <= failed and all(checks[j].kind in FIXERS for j in failed - now):
            text, failed = fix.draft, now
            hows.append(fix.how)
    return Repair(text, "; ".join(hows)) if hows else None
