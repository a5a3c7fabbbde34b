"""The scripted demo model: a stand-in for the API that is offline, free and repeatable.

It never passes for a real model: its model name is ``DEMO_MODEL`` and every
run it plays says so in a red banner. ``completion_body`` and ``as_attributes``
make the same JSON a server sends, which the tests' fakes and loopback servers use too.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from machinery.gateway import request_role
from machinery.text import clip
from multi_agent_system import REJECTIONS_BEFORE_REPLAN

ToolCallSpec = tuple[str, "dict[str, Any] | str"]  # (tool name, arguments; a str is sent as-is)


Responder = Callable[[dict[str, Any]], "str | list[ToolCallSpec]"]


def completion_body(
    content: str | None,
    *,
    model: str,
    usage: tuple[int, int] | None = None,
    tool_calls: list[ToolCallSpec] | None = None,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    """The JSON body a Chat Completions server sends back. ``usage`` is (prompt, completion) tokens; None
    imitates a server that sends no usage."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
            }
            for name, args in tool_calls
        ]
        finish_reason = "tool_calls"
    counts = (
        None
        if usage is None
        else dict(zip(("prompt_tokens", "completion_tokens"), usage, strict=False), total_tokens=sum(usage))
    )
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": counts,
    }


def as_attributes(value: Any) -> Any:
    """JSON as nested attribute objects, read like the SDK's: ``reply.choices[0].message.content``."""
    if isinstance(value, dict):
        return SimpleNamespace(**{key: as_attributes(item) for key, item in value.items()})
    if isinstance(value, list):
        return [as_attributes(item) for item in value]
    return value


class ScriptedClient:
    """Stands in for ``openai.OpenAI`` with canned replies: offline, free, repeatable.

    ``respond(request)`` gets the keyword arguments of ``chat.completions.create``
    and returns a reply text or a list of tool calls. Token counts use a rough
    4-bytes-per-token rule, and max_tokens is honoured, as a real server would.
    Output always says when this stands in: it is never a real model.
    """

    def __init__(self, respond: Responder):
        self._respond = respond
        self.requests: list[dict[str, Any]] = []
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, **request: Any) -> Any:
        self.requests.append(request)
        return as_attributes(self.body(request))

    def body(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply as the JSON a server would send (the tests' loopback servers send it over HTTP)."""
        out = self._respond(request)
        limit = request.get("max_tokens") or request.get("max_completion_tokens") or 10_000
        prompt_tokens = sum(math.ceil(len(str(m.get("content") or "").encode()) / 4) + 4 for m in request["messages"])
        if isinstance(out, list):
            written = min(limit, 20 * len(out))
            return completion_body(None, model=request["model"], usage=(prompt_tokens, written), tool_calls=out)
        finish = "stop"
        if len(out.encode()) > 4 * limit:  # a real server cuts the reply at max_tokens
            out, finish = out.encode()[: 4 * limit].decode(errors="ignore"), "length"
        written = min(limit, math.ceil(len(out.encode()) / 4))
        return completion_body(out, model=request["model"], usage=(prompt_tokens, written), finish_reason=finish)


# Critic verdicts, in order, per scenario; past the end, every verdict is "no".
DEMO_SCENARIOS: dict[str, list[bool]] = {
    "approve": [True],  # plan, draft, approval: 3 calls
    "revise": [False, True],  # one revision
    "escalate": [False] * REJECTIONS_BEFORE_REPLAN + [True],  # a plan rejected enough times, a new plan, approval
    "exhaust": [],  # never approves: stops with escalation_exhausted
}


# The first rejected haiku breaks the form (four lines), so code rejects it with no model call;
# the second keeps the form but drifts off the subject, so the critic's model has to catch it.
_HAIKU_REJECTED = [  # never the same twice in a run: code would ask again at once for a word-for-word repeat
    "Three small minds confer\nOne plans, one writes, one reads it through\nThe loop turns once more\nand once more, until it rests",
    "Grey waves fold on sand\nthe gulls lift and fall again\nsalt wind fills the dunes",
    "A plan, then a draft\nthen a verdict, then one more\nround and round they go\nuntil the budget runs dry",
    "Pine needles in snow\na fox crosses the white field\nno tracks left by noon",
    "Steps, drafts and reviews\none agent asks, one answers\none says no, no, no\nand the loop begins again",
    "Rain on the tin roof\nthe kettle starts its singing\nsteam fogs the window",
]


_HAIKU_APPROVED = [
    "Planner sketches steps\nWorker shapes words to the plan\nCritic nods, well done",
    "Steps laid out in rows\none hand writes, one eye reviews\nthe draft comes back clean",
]


_HAIKU_FEEDBACK = [
    "Three lines, as code measured, but the poem is about the sea, not about agents. Keep the form and make "
    "the images about agents working together.",
    "Still off the subject. The plan never says the haiku must be about agents, so the drafts drift: the plan "
    "itself needs to change.",
]


_GENERIC_FEEDBACK = [
    "Too general: the draft restates the task instead of doing it. Add one concrete example and cut the filler.",
    "Still the same problem after a revision, which points at the plan: it never says what a finished "
    "answer must contain. The plan itself needs to change.",
]


def task_in(request: dict[str, Any]) -> str:
    """The task, as the first paragraph of the first user message (any "Task:" label dropped)."""
    first = next((m["content"] for m in request["messages"] if m["role"] == "user"), "") or ""
    return re.sub(r"^\s*task\s*:\s*", "", first, flags=re.I).split("\n\n")[0].strip()


def demo_script(scenario: str, calls: dict[str, int] | None = None) -> Responder:
    """Replies for planner, worker and critic, told apart by the role header, not by prompt wording.

    A role the script does not know (one a student added) gets a labelled generic reply.
    ``calls``: how many calls of each role the run has made already (a service that answers
    one step of a run starts the script there, so it replies as the chapter's run would).
    """
    verdicts = DEMO_SCENARIOS[scenario]
    counts: dict[str, int] = dict(calls or {})

    def respond(request: dict[str, Any]) -> str:
        role = request_role(request) or "unknown role"
        n = counts[role] = counts.get(role, 0) + 1
        task = task_in(request)
        haiku = "haiku" in task.lower()
        if role == "planner":
            first = "List what the task asks for."
            if n > 1:
                first = (
                    "Fix the form first: three lines of 5, 7 and 5 syllables, about agents."
                    if haiku
                    else "Say what a finished answer must contain."
                )
            steps = [first, f"Write it in one pass: {clip(task, 80)}", "Read it back and tighten every line."]
            if "response_format" in request:
                return json.dumps({"steps": steps})
            return "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))
        if role == "single":  # --compare's plain call: what an unplanned first draft looks like
            return _HAIKU_REJECTED[0] if haiku else f"(scripted plain call) A short answer to: {task}"
        if role == "worker":
            will_pass = n - 1 < len(verdicts) and verdicts[n - 1]
            if haiku:
                drafts = _HAIKU_APPROVED if will_pass else _HAIKU_REJECTED
                return drafts[(n - 1) % len(drafts)]
            return f"(scripted draft {n}) A short answer to: {task}\n\nIt covers the task in a few plain sentences."
        if role == "critic":  # it judges the newest draft, so it follows the worker's count
            draft = counts.get("worker", 1)
            approved = verdicts[draft - 1] if draft - 1 < len(verdicts) else False
            lines = _HAIKU_FEEDBACK if haiku else _GENERIC_FEEDBACK
            feedback = "Meets the task." if approved else lines[(n - 1) % len(lines)]
            if "response_format" in request:
                return json.dumps({"approved": approved, "feedback": feedback})
            return f"APPROVED: {'YES' if approved else 'NO'}\nFEEDBACK: {feedback}"
        return (
            f"(scripted {role}, reply {n}) The demo model has no script for this role; a real model would answer here."
        )

    return respond
