"""What code checks in a plan: that it is a plan, not the answer written early or a plan of the review process.

A leaf module (it imports only ``machinery.text`` and ``machinery.checks``), so the chapter may import it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from machinery.checks import Requirement, most_repeated_line
from machinery.text import clip, json_objects

PLAN_MAX_STEPS = 8  # more than this is a list of answers, not a plan
PLAN_MAX_WORDS = 160  # a plan longer than this is the work itself, written early
# Words of the review process: a plan made of these plans the loop, not the task.
_PROCESS_WORDS = {
    "critic", "feedback", "review", "reviewer", "approval", "approve", "revise", "revision", "resubmit",
    "submit",
}  # fmt: skip


# A step that opens like a sentence of the answer ("A closure is...", "It keeps...") is not an instruction.
# A step that opens like a sentence of the answer ("A closure is a function that...", "It keeps...") is not an
# instruction. (A list of verbs to require instead sent back too many good plans: "Continue with the second line".)
_STATEMENT = re.compile(
    r"^(?:(?:the|a|an|it|its|this|these|those|they|their|there|he|she|his|her|we|our|i|my|you|your)\b"
    r"|\w+(?: \w+)? (?:is|are|was|were|has|have|can|will|means|refers)\b)",
    re.I,
)
# Words any plan could use, whatever the task: a plan made only of these names nothing the task is about.
_GENERIC = set(
    """a an the of to and or for in on with at by as is be are it its that this these your all any each every
    read task requirements requirement carefully understand identify key elements points needed need create plan
    process write writing draft review finalize final ensure make sure check content information relevant research
    gather structure outline organize main ideas idea topic clear concise output answer response result step steps
    approach details quality complete format proper correct good well based given provided accordingly then first
    next finally start begin end use using follow""".split()
)


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in _GENERIC}


def read_plan(text: str) -> list[str]:
    """The steps of the planner's reply: the JSON it was asked for, or plain numbered lines."""
    for data in json_objects(text):
        steps = data.get("steps")
        if isinstance(steps, list) and all(isinstance(s, str) for s in steps):
            steps = [re.sub(r"^\s*(?:\d+[.):]|[-*•])\s*", "", s) for s in steps]  # numbers are added by code
            return [" ".join(s.split()) for s in steps if s.strip()]
    lines = [
        re.sub(r"^\s*(?:\d+[.):]|[-*•]|step \d+:?)\s*", "", line, flags=re.I).strip() for line in text.splitlines()
    ]
    return [line for line in lines if line]


@functools.cache
def plan_schema() -> dict[str, Any]:
    """The planner's reply as a JSON schema for structured output: a list of short steps.

    Built on first use from a pydantic model: pydantic is imported here, so ``--help`` never pays for it.
    """
    from pydantic import BaseModel, ConfigDict

    class Plan(BaseModel):
        model_config = ConfigDict(extra="forbid")  # strict structured output needs additionalProperties false
        steps: list[str]

    return {"name": "plan", "strict": True, "schema": Plan.model_json_schema()}


def plan_problem(steps: list[str], task: str, requirements: Sequence[Requirement], cut_off: bool) -> str | None:
    """Why these steps are not a usable plan, measured by code; None when they are."""
    text = "\n".join(steps)
    words = len(text.split())
    word_goal = max((r.value for r in requirements if r.kind in ("about_words", "min_words", "exact_words")), default=0)
    if not steps:
        return "it has no steps"
    if cut_off:
        return "it was cut off at its token limit"
    if len(steps) > PLAN_MAX_STEPS:
        return f"it has {len(steps)} steps; a plan has at most {PLAN_MAX_STEPS}"
    if len({s.lower() for s in steps}) < len(steps) or most_repeated_line(text)[1] >= 2:
        return "it repeats the same step"
    if "```" in text or re.search(r"^\s*[\[{]", text, re.M):
        return "it contains the finished work (code or JSON); a plan only says what to do"
    if words > PLAN_MAX_WORDS or (word_goal and words >= max(60, 0.6 * word_goal)):
        return f"it is {words} words long, as long as the answer itself"
    if len(steps) >= 2 and sum(bool(_STATEMENT.match(s)) for s in steps) * 2 >= len(steps):
        return "its steps are sentences of the answer, not instructions that say what to do"
    if len(steps) >= 2 and any(len(s.split()) < 2 for s in steps):
        return "a step is a single word: each step must say what to do"
    topic = _content_words(task)
    named = topic & _content_words(text)
    # A plan about planning ("Divide the task into steps", "Review the plan"), seen live, is generic too.
    meta = {"task", "plan", "step", "steps"} - set(re.findall(r"[a-z]+", task.lower()))  # "a 3-step recipe" uses them
    about_planning = sum(1 for s in steps if meta & set(re.findall(r"[a-z]+", s.lower()))) * 2 >= len(steps)
    only_generic = all(_content_words(s) <= topic for s in steps)
    if len(steps) >= 2 and len(topic) >= 2 and len(named) <= 1 and (about_planning or only_generic):
        return "its steps are generic (read, identify, plan) and name nothing of what this task is about"
    process_words = _PROCESS_WORDS - set(re.findall(r"[a-z]+", task.lower()))  # "write a review" is a task
    process = sum(1 for s in steps if set(re.findall(r"[a-z]+", s.lower())) & process_words)
    if process * 2 >= len(steps):
        return "it plans the review process (critic, feedback, revisions) instead of the task"
    return None


def fallback_plan(task: str, requirements: Sequence[Requirement]) -> list[str]:
    """A plan made by code when the planner cannot make one: do the task, meet each requirement."""
    steps = [f"Do exactly what the task asks: {clip(task, 200)}"]
    steps += [f"Make sure of this requirement: {quote}" for quote in dict.fromkeys(r.quote for r in requirements)]
    return [*steps, "Return only the finished work, with nothing before or after it."]
