"""What code may do to a draft that misses a count: cut what is over it, or move paragraph breaks. Never write a word.

A 1.5B model asked for "exactly two sentences" writes three, and told "cut 1 sentence" often writes three
again; asked for two paragraphs, it writes one block, draft after draft. Code can end the text after the
second sentence, or put a blank line between two sentences, for free and at once. It cannot add a sentence,
a word the task asks for, or a missing line: only a model can write.

Each cut is conservative: at a real sentence's end (not after "e.g.", "Prof." or a bare "2.", not inside
quotes or brackets, every sentence kept at least MIN_SENTENCE_WORDS long), never inside a list or a table,
never in a letter (a greeting, a sign-off); list items only when nothing but list follows them; a poem's
title or its last whole stanzas; one plain block of prose split, or paragraphs that are all prose joined.
``repaired`` keeps a cut only when it leaves fewer checks failed, fails none that passed, and passes no
check but a count's; the critic still judges the cut draft (and is told it was cut), and the trace says
what code cut.

>>> fix = repaired("Dogs bark at night. Cats purr on laps. Birds sing.", [Requirement("sentences", 2, "two sentences")])
>>> fix.draft, fix.how
('Dogs bark at night. Cats purr on laps.', 'kept the first 2 sentences of 3')
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from machinery.checks import ABOUT_TOLERANCE, BULLET, EVERY_DRAFT, NUMBERED, SENTENCE_END, Requirement, measure
from machinery.text import clip

_NOT_AN_END = re.compile(  # a mark that ends no sentence: "e.g.", "Prof.", "U.S.", "J.", "Jan.", a bare "2."
    r"(?:^\s*\w{1,2}[.)]|(?<!\w)(?:\w\.){2,}|(?<!\w)[A-Za-z]\.|(?<![\w.])\d{1,2}\.|(?<!\w)(?:e\.g|i\.e|etc|vs|approx"
    r"|dr|mr|mrs|ms|st|no|fig|prof|gen|jr|sr|capt|mt|ave|inc|ltd|co|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.)$",
    re.I,
)
MIN_SENTENCE_WORDS = 3  # every sentence a cut keeps has this many words: "Steps: 1." or "The U.S." is no sentence
_SIGN_OFF = re.compile(  # a letter's last lines: "Best regards,", "Warmly,", "Take care, Ann.", "— Ann Lee"
    r"^\s*(?:[—–]|-{1,2}\s*[A-Z]|(?:(?:all the |very )?best|kind|warm(?:est)?|many)?\s*(?:regards|wishes|sincerely|"
    r"thanks|thank you|cheers|love|yours|warmly|respectfully|take care|talk soon|see you|best\b))",
    re.I,
)
_GREETING = re.compile(r"^\s*(?:dear|hi|hello|hey|greetings|good (?:morning|afternoon|evening))\b", re.I)
_ANY_ITEM = re.compile(r"^\s*(?:[-*•+]|\d+[.)]|\(\d+\)|[a-zA-Z][.)])\s+\S|^\s*\|")  # a list line, or a table row
_PAIRS = (("(", ")"), ("[", "]"), ("“", "”"), ("‘", "’"), ("«", "»"))
_MARKERS = {"bullets": BULLET, "numbered": NUMBERED, "items": re.compile(f"{BULLET.pattern}|{NUMBERED.pattern}")}
_NO_TITLE = Requirement("no_title", True, "no title")
_HEADING = re.compile(r"^\s*(?:#|\*\*[^*]+\*\*\s*$|\|)")  # a Markdown heading, a bold line, a table row


@dataclass(frozen=True)
class Repair:
    draft: str
    how: str  # what code did, for the trace, the screen and the critic: "kept the first 2 sentences of 3"


def _ends(text: str) -> list[int]:
    """Where each sentence ends (just after its mark), as the sentence count reads them."""
    return [m.end() for m in SENTENCE_END.finditer(text)]


def _cuttable(text: str, end: int) -> bool:
    """Whether ``text`` may be cut at ``end``: a real sentence's end ("e.g.", "Prof.", "U.S.", a bare "2." are
    not), not followed by a lower-case word (the sentence goes on), outside quotes and brackets."""
    line, kept = text[:end].rsplit("\n", 1)[-1], text[:end]
    singles = len(re.findall(r"(?<!\w)'", kept)) == len(re.findall(r"'(?!\w)", kept))  # 'quoted', not don't
    balanced = kept.count('"') % 2 == 0 and singles and all(kept.count(a) == kept.count(b) for a, b in _PAIRS)
    return balanced and not _NOT_AN_END.search(line) and not re.match(r"\s+[a-z]", text[end:])


def _letter(draft: str) -> bool:
    """A letter or an email: its greeting and sign-off are not surplus to cut or paragraphs to join."""
    lines = [line.strip() for line in draft.splitlines() if line.strip()]
    return bool(lines) and (bool(_GREETING.match(lines[0])) or any(_SIGN_OFF.match(line) for line in lines[1:]))


def _whole(kept: str, dropped: str) -> bool:
    """A cut keeps whole sentences of a few words each, and drops no list, table or sign-off, in no letter:
    an email's "Best regards," or the rest of a list is not surplus to cut."""
    ends = _ends(kept)
    sentences = [kept[a:b] for a, b in zip([0, *ends], ends, strict=False)]
    return (
        all(_cuttable(kept, e) for e in ends)
        and not re.match(r"\s+[a-z]", dropped)  # the cut sentence goes on
        and all(len(s.split()) >= MIN_SENTENCE_WORDS for s in sentences)
        and not any(_ANY_ITEM.match(line) for line in (kept + "\n" + dropped).splitlines())
        and not _letter(kept + dropped)
    )


def _first_sentences(draft: str, n: int) -> Repair | None:
    ends = _ends(draft)
    if "```" in draft or n < 1 or len(ends) <= n:
        return None
    kept = draft[: ends[n - 1]].rstrip()
    if not _whole(kept, draft[ends[n - 1] :]):
        return None
    return Repair(kept, f"kept the first {n} sentences of {len(ends)}")


def _within_words(draft: str, high: int, low: int = 1) -> Repair | None:
    """The longest run of whole sentences from the start that is at most ``high`` words (and at least ``low``)."""
    total = len(draft.split())
    fits = [e for e in _ends(draft) if low <= len(draft[:e].split()) <= high and _whole(draft[:e], draft[e:])]
    if "```" in draft or total <= high or not fits:
        return None
    kept = draft[: fits[-1]].rstrip()
    return Repair(kept, f"ended the draft after {len(kept.split())} of its {total} words, at a sentence's end")


def _first_items(draft: str, n: int, kind: str) -> Repair | None:
    """The items after the n-th dropped, when nothing but list follows them (more items, or lines indented
    under them): a line of prose or a heading after the list may be what the task asked for."""
    lines, marker = draft.splitlines(), _MARKERS[kind]
    at = [i for i, line in enumerate(lines) if marker.match(line)]
    if "```" in draft or n < 1 or len(at) <= n or any(lines[i][:1].isspace() for i in at):
        return None  # a nested list: its sub-items count as items, and which to drop is not code's to guess
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
    # a title: one line on its own, above stanzas of more than one line
    titled = len(blocks) > 1 and count[0] == 1 and min(count[1:]) > 1 and not measure(draft, _NO_TITLE)[0]
    if titled and sum(count[1:]) == n:
        return Repair("\n\n".join(blocks[1:]), f"took off the title, '{clip(blocks[0].strip(), 40)}'")
    if min(count) < 2 or _letter(draft):  # a poem with a blank line after every line has no stanzas to drop
        return None
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
    if "```" in draft or n < 1 or not blocks or not all(_prose(b) and SENTENCE_END.search(b[-3:]) for b in blocks):
        return None
    if _letter(draft) or (len(blocks) > 1 and min(len(blocks[0].split()), len(blocks[-1].split())) < 5):
        return None  # "Hi Sam." above, "Best regards, Ann." below: a greeting and a sign-off are not paragraphs
    if len(blocks) > n:
        parts, glue, how = blocks, "\n", f"joined {len(blocks)} paragraphs into {n}"
    elif len(blocks) == 1 and "\n" not in blocks[0]:
        text = blocks[0]
        ends = [e for e in _ends(text) if e == len(text) or _whole(text[:e], "")]
        if len(ends) < n or ends[-1] != len(text):
            return None
        parts = [text[a:b].strip() for a, b in zip([0, *ends[:-1]], ends, strict=True)]
        if min(len(p.split()) for p in parts) < MIN_SENTENCE_WORDS:  # "Yes." is no paragraph
            return None
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


def repaired(draft: str, checks: Sequence[Requirement]) -> Repair | None:
    """The draft with code's cuts, when they leave fewer checks failed, fail none that passed (the checks
    every draft gets included) and pass none but counts: a cut that passes "no title" by gluing the title
    to the text, or "no repeats" by joining the repeats, hides a fault, it does not mend one. A cut onto
    a draft already rejected is not made either: what the worker added past the count may be the fix the
    critic asked for, and code's "cut 1 sentence" tells it where the room is.

    Each failed check with a fixer is tried in turn (cuts before paragraph breaks) on the draft as cut so far.
    """
    checks = [*checks, *EVERY_DRAFT]
    failed = {i for i, r in enumerate(checks) if not measure(draft, r)[0]}
    text, hows = draft, []
    for i in sorted(failed, key=lambda i: (checks[i].kind == "paragraphs", i)):
        fixer = FIXERS.get(checks[i].kind)
        fix = fixer(text, checks[i]) if fixer else None
        if fix is None or not fix.draft.strip():
            continue
        now = {j for j, r in enumerate(checks) if not measure(fix.draft, r)[0]}
        if i not in now and now <= failed and all(checks[j].kind in FIXERS for j in failed - now):
            text, failed = fix.draft, now
            hows.append(fix.how)
    return Repair(text, "; ".join(hows)) if hows else None
