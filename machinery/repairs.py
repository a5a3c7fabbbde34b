"""What code may do to a draft that misses a count: cut what is over it, or move paragraph breaks. Never write a word.

A 1.5B model asked for "exactly two sentences" writes three, and told "cut 1 sentence" often writes three
again; asked for two paragraphs, it writes one block, draft after draft. Code can end the text after the
second sentence, or put a blank line between sentences, for free and at once. It cannot add a sentence,
a word the task asks for, or a missing line: only a model can write.

``repaired`` offers a cut draft only when it fails fewer of the checks than the draft did and fails none
the draft passed; the critic still judges it as any other draft, and the trace says what code cut.

>>> fix = repaired("Dogs bark. Cats purr. Birds sing.", [Requirement("sentences", 2, "exactly two sentences")])
>>> fix.draft, fix.how
('Dogs bark. Cats purr.', 'kept the first 2 sentences of 3')
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from machinery.checks import ABOUT_TOLERANCE, Requirement, measure

_END = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")  # a sentence's end, as the sentence count reads it
_LIST_LINE = {
    "bullets": re.compile(r"^\s*[-*•]\s+\S"),
    "numbered": re.compile(r"^\s*\d+[.)]\s+\S"),
    "items": re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S"),
    "lines": re.compile(r"\s*\S"),  # any non-empty line, as the line count reads it
}


@dataclass(frozen=True)
class Repair:
    draft: str
    how: str  # what code did, for the trace and the screen: "kept the first 2 sentences of 3"


def _ends(text: str) -> list[int]:
    """Where each sentence ends (just after its mark), in order."""
    return [m.end() for m in _END.finditer(text)]


def _first_sentences(draft: str, n: int) -> Repair | None:
    if "```" in draft:
        return None
    ends = _ends(draft)
    if n < 1 or len(ends) <= n:
        return None
    return Repair(draft[: ends[n - 1]].rstrip(), f"kept the first {n} sentences of {len(ends)}")


def _within_words(draft: str, high: int, low: int = 1) -> Repair | None:
    """The longest run of whole sentences from the start that is at most ``high`` words (and at least ``low``)."""
    if "```" in draft:
        return None
    total = len(draft.split())
    fits = [end for end in _ends(draft) if low <= len(draft[:end].split()) <= high]
    if total <= high or not fits:
        return None
    kept = draft[: fits[-1]].rstrip()
    return Repair(kept, f"ended the draft after {len(kept.split())} of its {total} words, at a sentence's end")


def _first_lines(draft: str, n: int, kind: str) -> Repair | None:
    """Drop the list lines (or lines) after the n-th, keeping everything else."""
    pattern, lines, seen, kept = _LIST_LINE[kind], draft.splitlines(), 0, []
    for line in lines:
        if pattern.match(line):
            seen += 1
            if seen > n:
                continue
        kept.append(line)
    if seen <= n or "```" in draft:
        return None
    noun = "lines" if kind == "lines" else "list items"
    return Repair("\n".join(kept).strip(), f"kept the first {n} {noun} of {seen}")


def _paragraphs(draft: str, n: int) -> Repair | None:
    """One block of sentences split into n paragraphs of about equal length, or too many prose blocks joined into n."""
    if "```" in draft or n < 1 or any(_LIST_LINE["items"].match(line) for line in draft.splitlines()):
        return None
    blocks = [" ".join(b.split()) for b in re.split(r"\n\s*\n", draft.strip()) if b.strip()]
    if len(blocks) > n:
        parts = blocks
        how = f"joined {len(blocks)} paragraphs into {n}"
    elif len(blocks) < n:
        text = " ".join(blocks)
        ends = _ends(text)
        if len(ends) < n or ends[-1] < len(text.rstrip()):
            return None
        starts = [0, *ends[:-1]]
        parts = [text[a:b].strip() for a, b in zip(starts, ends, strict=True)]
        how = f"split {len(blocks)} paragraph(s) into {n}, between sentences"
    else:
        return None
    size = sum(len(p) for p in parts) / n
    groups: list[list[str]] = [[] for _ in range(n)]
    done = 0
    for i, part in enumerate(parts):
        left = len(parts) - i  # every group gets at least one part
        g = min(int(done // size), n - 1)
        g = max(g, n - left)
        groups[g].append(part)
        done += len(part)
    if any(not g for g in groups):
        return None
    return Repair("\n\n".join(" ".join(g) for g in groups), how)


Fixer = Callable[[str, Requirement], "Repair | None"]

FIXERS: dict[str, Fixer] = {
    "sentences": lambda d, r: _first_sentences(d, r.value),
    "max_words": lambda d, r: _within_words(d, r.value),
    "about_words": lambda d, r: _within_words(
        d, math.ceil(r.value * (1 + ABOUT_TOLERANCE)), math.floor(r.value * (1 - ABOUT_TOLERANCE))
    ),
    "bullets": lambda d, r: _first_lines(d, r.value, "bullets"),
    "numbered": lambda d, r: _first_lines(d, r.value, "numbered"),
    "items": lambda d, r: _first_lines(d, r.value, "items"),
    "lines": lambda d, r: _first_lines(d, r.value, "lines"),
    "paragraphs": lambda d, r: _paragraphs(d, r.value),
}  # what code can mend; every other kind needs a model to write


def repaired(draft: str, checks: Sequence[Requirement]) -> Repair | None:
    """The draft with code's cuts, when they leave fewer checks failed and none failed that passed before.

    Each failed check with a fixer is tried in turn on the draft as mended so far; a cut that would break
    another check is not made.
    """
    failed = {i for i, r in enumerate(checks) if not measure(draft, r)[0]}
    text, hows = draft, []
    for i in sorted(failed):
        fixer = FIXERS.get(checks[i].kind)
        fix = fixer(text, checks[i]) if fixer else None
        if fix is None:
            continue
        now = {j for j, r in enumerate(checks) if not measure(fix.draft, r)[0]}
        if i not in now and now <= failed:
            text, failed = fix.draft, now
            hows.append(fix.how)
    return Repair(text, "; ".join(hows)) if hows else None
