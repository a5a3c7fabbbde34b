"""Reading the critic's verdict: tolerant of format, strict about approval.

A leaf module (it imports only ``machinery.text``), so the chapter may import it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from machinery.text import objects_with_spans


@dataclass(frozen=True)
class Verdict:
    """The critic's decision, and how it was read from the reply."""

    approved: bool
    feedback: str
    source: str  # "json", "verdict line", "json fragment", "none", "code"
    why: str  # recorded in the trace: why this counts as approved or not
    said_no: bool = False  # the model itself said no (not a yes that code, or the reader, would not take)

    def overruled(self, why: str) -> Verdict:
        """The same reply, not approved, because code knows better than the model here."""
        return Verdict(False, self.feedback, self.source, why)


_YES = {"yes", "y", "true", "approved", "approve", "accept", "accepted", "pass", "passed", "lgtm", "✅", "✔", "☑", "👍"}


_NO = {
    "no", "n", "false", "not", "rejected", "reject", "fail", "failed", "denied", "revise", "❌", "✖", "✗", "👎",
    "🚫",
}  # fmt: skip


# A yes that comes with one of these, anywhere on its line, is a yes with a condition, which is not a yes.
_HEDGES = {
    "but", "though", "although", "however", "if", "unless", "except", "assuming", "provided", "pending", "once",
    "until", "after", "mostly", "partially", "partly", "almost", "nearly", "conditionally", "long", "minor", "ish",
}  # fmt: skip
# ...and these, in the yes's own clause ("yes, with reservations", "Yes, contingent on fixing the JSON").
_QUALIFIERS = {
    "with", "reservation", "reservations", "contingent", "condition", "conditions", "conditional", "caveat",
    "caveats", "subject", "requires", "needs", "should", "must", "changes", "edits", "fixes", "tweaks", "concerns",
}  # fmt: skip


_LABEL = re.compile(r"^(approved|approval|verdict|decision)\s*[:=\-–]\s*(.*)$", re.I)


_BARE = re.compile(r"^((?:not\s+)?approved|rejected|denied|not\s+approve\w*|not\s+yet)\b(.*)$", re.I)
_FIRST = re.compile(r"^(yes|no)\b(.*)$", re.I)  # a reply that opens with a bare YES or NO has stated its verdict


_MARKS = re.compile(r"^([✅✔☑👍❌✖✗👎🚫])\s*")  # an emoji that states a verdict on its own


_OPTIONS = re.compile(r"/|\||\bor\b", re.I)  # "YES/NO", "{YES|NO}", "YES or NO": the options echoed back


_THINK = re.compile(r"<think>.*?(</think>|$)", re.I | re.S)  # a reasoning model's scratchpad is not its verdict


_VERDICT_KEYS = ("approved", "verdict", "decision", "approval")


# What a reader does not take for the verdict: struck-through text, HTML comments, a reasoning model's scratchpad.
_UNSEEN = re.compile(r"~~.*?~~|<(del|s|strike)>.*?</\1>|<!--.*?-->", re.I | re.S)
# A sentence that withholds approval, whatever else the reply says: "I can't approve this draft", "this is
# NOT approved", "I would not accept it as it stands", "it is not ready", "approval is withheld".
_WITHHELD = re.compile(
    r"(?:\b(?:not|never|cannot|unable to|refuse to|decline to|hesitate to|no longer)\b|n't\b)(?! only\b)[^.!?;\n]{0,40}?"
    r"\b(?:approv\w*|accept\w*|sign(?:ing)? off|ready|good enough|acceptable|pass(?:es|ing)?\b)"
    r"|\b(?:approval|acceptance) (?:is |was )?(?:withheld|denied|refused|not (?:given|granted))"
    r"|\b(?:disapprove|reject(?:ed|ing)? (?:it|this|the draft))\b",
    re.I,
)
# A yes whose own feedback says the draft falls short ("...but it lacks the fifth item", "does not fully meet
# the task") contradicts itself. A shortcoming that is itself denied ("nothing is missing") is not one.
_SHORT = re.compile(
    r"\b(?:lacks?|lacking|(?:is|are) missing|exceeds?|fails? to|incorrect|inaccurate|too (?:long|short|many|few)|"
    r"(?:does|do|did) ?(?:not|n't) (?:fully |quite |entirely )?(?:meet|fulfil|fulfill|satisfy|follow|match|answer|do|"
    r"complete|address|cover|spell)|(?:is|are) not (?:fully |quite )?(?:correct|complete|on topic|accurate)|"
    r"(?:is|are) incomplete|could be (?:more|better|improved|expanded|simplified|shortened|clearer|tighter|stronger)|"
    r"should (?:include|have|mention|add|be (?:shorter|longer|more|less))|"
    r"(?:one|two|\d+|an?) (?:additional|extra) (?:words?|lines?|items?|sentences?))\b",
    re.I,
)
# A denial reaches over a few words, never past a colon or a clause: "Not quite: the title is missing" states one.
_DENIED = re.compile(r"(?:\b(?:no|nothing|none|not|never|without)\b|n't\b)[^\w:;,.!?]+(?:\w+[^\w:;,.!?]+){0,3}$", re.I)
# The line before a JSON object that says it is an example, not the verdict: "For reference:", "e.g.", "Format:".
_EXAMPLE = re.compile(r"\b(?:for (?:reference|example|instance)|e\.g\.|such as|like this|template|sample)\b", re.I)
# A sentence that opens with a reservation, anywhere in a reply that says yes: "However, change the title."
_BUT = re.compile(
    r"(?:^|[.!?]\s+|\n)\s*(?:however|but|although|though)\b[,\s]|\b(?:yes|approved),?\s+but\b"
    r"|(?<!just )(?<!only )\b(?:good|fine|ok(?:ay)?),?\s+but\b",
    re.I,
)


def parse_verdict(text: str) -> Verdict:
    """Read the critic's reply as a person reads it; the rule fits in two sentences.

    A reply approves only when every verdict it states (a JSON "approved" field, an
    ``APPROVED:`` line, a bare "Approved.", a ✅) is an unconditional yes, at least one
    is stated outright, and no sentence anywhere withholds approval ("I can't approve
    this", "not ready") or says the draft falls short ("but it lacks the fifth item").
    What a reader would not take for the verdict does not count: struck-through text,
    a <think> scratchpad, JSON shown as an example or a template, a yes quoted mid-sentence.

    >>> parse_verdict('{"approved": true, "feedback": "Good."}').approved
    True
    >>> parse_verdict("APPROVED: YES. It reads well aloud.").approved
    True
    >>> parse_verdict('APPROVED: NO. Do not just reply {"approved": true}.').approved
    False
    >>> parse_verdict("APPROVED: YES, though the ending is weak").why
    "'YES, though the ending is weak' is a conditional yes: not an approval"
    """
    raw = _UNSEEN.sub("", _THINK.sub("", text)).strip()
    found: list[tuple[bool | None, bool, str, str]] = []  # (yes/no/unclear, quoted, source, what it said)
    covered: list[tuple[int, int]] = []  # JSON spans, so their lines are not read twice
    first_json: dict[str, Any] | None = None  # its "feedback" is the feedback
    for start, end, data in objects_with_spans(raw):
        keys = [k for k in data if str(k).lower() in _VERDICT_KEYS]
        if keys:
            first_json = first_json or data
            line_end = raw.find("\n", end)
            before = raw[raw.rfind("\n", 0, start) + 1 : start].strip()
            after = raw[end : line_end if line_end != -1 else len(raw)].strip(" `")
            above = raw[: raw.rfind("\n", 0, start) + 1].strip().rsplit("\n", 1)[-1]  # the line before it
            covered.append((start, end))
            values = [(_value(data[k]), repr(data[k])) for k in keys]  # every verdict key it has
            if (before or above) and _EXAMPLE.search(before or above):  # shown as an example: a no counts, a yes never
                found += [(False, False, "json", said) for value, said in values if value is not True]
                continue
            quoted = bool(after) or bool(before and before[-1] not in ":.!")  # mid-sentence: an example
            found += [(value, quoted, "json", said) for value, said in values]
    offset = 0
    for number, line in enumerate(raw.splitlines(keepends=True)):
        inside = any(a <= offset < b for a, b in covered)
        offset += len(line)
        if not inside:
            found += _line_verdicts(line, first=number == 0)
    if not found and re.match(r"(```\w*\s*)?\{", raw) and re.search(r"[\"']approved[\"']\s*:", raw, re.I):
        return Verdict(False, _feedback(raw, None), "json fragment", "malformed JSON: not an approval")
    if not found:
        return Verdict(
            False, raw, "none", "empty reply: not an approval" if not raw else "no verdict found: not an approval"
        )
    feedback = _feedback(raw, first_json)
    source = found[0][2]
    for value, _quoted, _source, said in found:
        if value is not True:
            why = f"the reply says {said!r}" if value is False else f"{said!r} {_unclear(said)}: not an approval"
            said_no = any(v is False and not quoted for v, quoted, _, _ in found)  # not one in an example
            return Verdict(False, feedback, source, why, said_no=said_no)
    if withheld := _WITHHELD.search(_said(raw, first_json)):
        return Verdict(False, feedback, source, f"the reply also says {withheld.group(0)!r}: not an approval")
    if but := _BUT.search(_said(raw, first_json)):
        return Verdict(False, feedback, source, f"the yes comes with a reservation ({but.group(0).strip()!r})")
    if short := _shortcoming(feedback):
        return Verdict(False, feedback, source, f"the yes comes with feedback saying the draft falls short ({short!r})")
    if all(quoted for _, quoted, _, _ in found):
        return Verdict(False, feedback, source, "the only yes is quoted inside a sentence: not an approval")
    return Verdict(True, feedback, source, f"every verdict in the reply is a yes ({len(found)})")


def _said(raw: str, data: dict[str, Any] | None) -> str:
    """Everything the reply says in words: its text, and the text values of its JSON."""
    values = [str(v) for v in (data or {}).values() if isinstance(v, str)]
    return "\n".join([raw, *values])


def _shortcoming(feedback: str) -> str | None:
    """The first shortcoming the feedback states outright (a denied one, "nothing is missing", does not count)."""
    for found in _SHORT.finditer(feedback):
        if not _DENIED.search(feedback[max(0, found.start() - 40) : found.start()]):
            return found.group(0)
    return None


def _line_verdicts(line: str, first: bool = False) -> list[tuple[bool | None, bool, str, str]]:
    """The verdicts one line states: a label and its value, a bare verdict word, a leading ✅/❌,
    and on the reply's first line a bare YES or NO."""
    quoted = line.lstrip().startswith(">")
    clean = re.sub(r"^[\s>#*_`\-•]*(\d+[.)]\s*)?", "", line).replace("**", "").replace("__", "").strip()
    found: list[tuple[bool | None, bool, str, str]] = []
    mark = _MARKS.match(clean)
    if mark:
        found.append((mark.group(1) in _YES, quoted, "verdict line", mark.group(1)))
        clean = clean[mark.end() :]
    labelled, bare = _LABEL.match(clean), _BARE.match(clean) or (_FIRST.match(clean) if first else None)
    if labelled:
        found.append((_value(labelled.group(2)), quoted, "verdict line", labelled.group(2).strip()))
    elif bare:
        found.append((_value(clean), quoted, "verdict line", clean))
    return found


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+|[✅✔☑👍❌✖✗👎🚫]", text.lower())


def _value(value: Any) -> bool | None:
    """True for an unconditional yes, False for a no, None for anything unclear."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None  # 1, null, a list: not a clear yes or no
    words = _words(value)
    if not words or _echoed(value) or "?" in value:
        return None
    if words[:2] == ["not", "approved"] or words[0] in _NO:
        return False
    if words[0] in _YES:
        clause = _words(re.split(r"[.!;\n]", value, maxsplit=1)[0])  # the yes's own clause
        qualifiers = {
            w for i, w in enumerate(clause) if i and w in _QUALIFIERS and clause[i - 1] != "no"
        }  # "no changes"
        nos = {w for i, w in enumerate(words) if i and w in _NO and (i + 1 == len(words) or w != "no")}  # "yes and no"
        hedged = _HEDGES & set(words[1:]) or qualifiers or nos or "as long as" in value.lower()
        return None if hedged else True
    return None


def _echoed(value: str) -> bool:
    words = set(_words(value))
    return bool(_OPTIONS.search(value) and words & _YES and words & _NO)


def _unclear(said: str) -> str:
    if _echoed(said):
        return "repeats the template"
    if "?" in said or (_words(said)[:1] and _words(said)[0] in _YES):
        return "is a conditional yes"
    return "is not a clear yes or no"


def _feedback(raw: str, data: dict[str, Any] | None) -> str:
    if data is not None:
        keys = {str(k).lower(): v for k, v in data.items()}
        if keys.get("feedback"):
            return str(keys["feedback"]).strip()
    match = re.search(r"feedback\W*?[:=]\s*(.*)", raw, re.I | re.S)
    if match:
        return match.group(1).strip().strip('"}').strip()
    return "\n".join(line for line in raw.splitlines() if not _line_verdicts(line)).strip()


@functools.cache
def verdict_schema() -> dict[str, Any]:
    """The critic's reply as a JSON schema for structured output, made from a pydantic model.

    Built on first use: pydantic is imported here, so ``--help`` never pays for it.
    Servers that refuse json_schema get json_object, then plain text; the parser copes with all three.
    """
    from pydantic import BaseModel, ConfigDict

    class CriticVerdict(BaseModel):
        model_config = ConfigDict(extra="forbid")  # strict structured output needs additionalProperties false
        approved: bool
        feedback: str

    return {"name": "verdict", "strict": True, "schema": CriticVerdict.model_json_schema()}
