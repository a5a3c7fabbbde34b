"""Reading a recorded run back: --show draws it again, --replay runs the loop on its replies, --diagram draws it in Mermaid."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from machinery.classroom import Answers, Stepper
from machinery.demo import as_attributes, completion_body
from machinery.gateway import request_role
from machinery.output import Display, show_escalation
from machinery.prices import Ledger
from machinery.text import first_line, shorten
from multi_agent_system import (
    EXIT_APPROVED,
    EXIT_NOT_APPROVED,
    EXIT_USAGE,
    MAX_TOTAL_TOKENS,
    ROLES,
    Reply,
    Settings,
    StopRun,
    UsageError,
    new_state,
)


class ReplayMismatch(StopRun):
    """A request differs from the recorded run that is being replayed (exit 2)."""


# What --show, --replay and --diagram read from each kind of event; a trace without them cannot be drawn or replayed.
TRACE_FIELDS = {
    "call": ("role", "model", "prompt", "reply", "prompt_tokens", "completion_tokens"),
    "step": ("role", "title", "body", "style"),
    "verdict": ("approved",),
    "escalation": ("action", "iteration", "plan_version", "worker_attempts"),
    "human": ("action",),
    "end": ("stop_reason",),
}


def read_trace(path: Path) -> list[dict[str, Any]]:
    """A trace's events, or UsageError with one clear line: missing, not a trace, or cut short."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read the trace {path}: {getattr(err, 'strerror', None) or err}") from err
    lines, events = text.splitlines(), list[dict[str, Any]]()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            if number == len(lines) and not text.endswith("\n"):  # the writer stopped mid-line
                raise UsageError(f"{path} is cut short: its last line is half written") from None
            raise UsageError(f"{path} is not a trace: line {number} is not JSON") from None
        if not isinstance(event, dict) or "event" not in event:
            raise UsageError(f"{path} is not a trace: line {number} is not a trace event")
        missing = [key for key in TRACE_FIELDS.get(event["event"], ()) if key not in event]
        if missing or not all(isinstance(event.get(k, 0), int) for k in ("prompt_tokens", "completion_tokens")):
            raise UsageError(
                f"{path} is not a trace of this program: its {first_line(str(event['event']), 40)!r} event on line {number} "
                f"lacks {', '.join(missing) or 'token counts'}"
            )
        events.append(event)
    if not events or events[0]["event"] != "start":
        raise UsageError(f"{path} is not a trace: it does not begin with a start event")
    if events[-1]["event"] != "end":
        raise UsageError(f"{path} is cut short: it has no end event (the run was killed before it finished)")
    return events


def recorded_task(path: Path) -> str:
    """The task a recorded run was given (for the hint when --replay gets none); a bad file gives a placeholder."""
    try:
        return str(read_trace(path)[0].get("task") or "the recorded task")
    except UsageError:
        return "the recorded task"


def reply_from(event: dict[str, Any]) -> Reply:
    """A recorded call, as the Reply the gateway made of it live."""
    content = event.get("reply") or ""
    return Reply(
        event["role"],
        event["model"],
        content,
        {"role": "assistant", "content": content},
        event.get("tool_calls") or [],
        event["prompt_tokens"],
        event["completion_tokens"],
        bool(event.get("usage_estimated")),
        event.get("cost_usd"),
        event.get("latency_s") or 0.0,
        event.get("finish_reason"),
        event.get("max_tokens") or 0,
    )


def show_recorded(path: Path, display: Display, stepper: Stepper | None = None) -> int:
    """--show: draw a recorded run again from its trace, as it looked live. No model, no key."""
    events = read_trace(path)
    start = events[0]
    if display.chatty:
        display.panel(f"A recorded run, drawn from {path}: no model is called.", "recorded run", "blue")
        if start.get("demo"):
            display.panel("It was played by the scripted demo model, not a real LLM.", "offline demo", "red")
        models = ", ".join(f"{role}={model}" for role, model in start.get("models", {}).items())
        display.line(f"run {start.get('run_id')} · {start.get('server')} · {models}", "dim")
    ledger, last = Ledger(), dict[str, Reply]()
    for event in events:
        kind = event["event"]
        if kind == "call":
            if stepper is not None:
                budget = start.get("limits", {}).get("max_tokens") or MAX_TOTAL_TOKENS
                stepper.pause(
                    event["role"], event.get("prompt") or [], event.get("max_tokens") or 0, ledger.total_tokens, budget
                )
            display.prompt(event["role"], event.get("prompt") or [], event.get("max_tokens") or 0)  # --verbose
            reply = last[event["role"]] = reply_from(event)
            if reply.role == "critic":
                display.raw_reply("critic", reply.content)  # --verbose, as show_verdict() does live
            ledger.add(
                reply.role, reply.prompt_tokens, reply.completion_tokens, reply.cost_usd, reply.seconds, reply.estimated
            )
        elif kind == "step":
            display.step(
                event["title"], event["body"], last.get(event["role"]) if event.get("replied") else None, event["style"]
            )
        elif kind == "warning":
            display.warn(event["message"])
        elif kind == "verdict" and event.get("source") != "code":
            display.note(f"verdict read from {event.get('source')}: {event.get('why')}")
        elif kind == "human" and display.chatty:
            for question, answer in event.get("said") or []:
                display.line(f"{question}{answer}", "bold")
        elif kind == "escalation":
            show_escalation(display, event["action"], event["worker_attempts"], event["plan_version"])
    end = events[-1]
    state = new_state(start.get("task") or "")
    state["result"], state["stop_reason"], state["stop_detail"] = (
        end.get("result"),
        end["stop_reason"],
        end.get("detail"),
    )
    state["status"] = "approved" if end["stop_reason"] == "approved" else "stopped"
    state["iteration"], state["plan_version"] = end.get("iterations") or 0, end.get("plan_version") or 0
    state["best"] = end.get("best")  # the best draft, and why it was kept, as the live run showed it
    display.summary(state, ledger, path)
    return EXIT_APPROVED


def first_difference(recorded: list[dict[str, Any]], sent: list[dict[str, Any]]) -> str | None:
    """Where a request first differs from the recorded one, in one line; None when they match.

    >>> first_difference([dict(role="user", content="Write a haiku")], [dict(role="user", content="Write a poem")])
    "message 1 (user) differs at character 9: recorded 'haiku' but now 'poem'"
    """
    for i, (old, new) in enumerate(zip(recorded, sent, strict=False), 1):
        if old.get("role") != new.get("role"):
            return f"message {i} is from the {new.get('role')}, recorded from the {old.get('role')}"
        a, b = str(old.get("content") or ""), str(new.get("content") or "")
        if a != b:
            at = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            return (
                f"message {i} ({new.get('role')}) differs at character {at + 1}: "
                f"recorded {first_line(a[at : at + 40], 40)!r} but now {first_line(b[at : at + 40], 40)!r}"
            )
    if len(recorded) != len(sent):
        return f"it has {len(sent)} messages, the recording {len(recorded)}"
    return None


class ReplayClient:
    """Stands in for ``openai.OpenAI`` with a recorded run's replies: the real loop, offline.

    Requests are matched per role, in order. A request that is not the recorded
    one ends the run (ReplayMismatch, exit 2): a replay never falls through to a
    live model, so a changed prompt shows up as a failed replay.
    """

    def __init__(self, events: list[dict[str, Any]], source: Path):
        self.source = source
        self.recorded: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            if event["event"] == "call":
                self.recorded.setdefault(event["role"], []).append(event)
        self.used: dict[str, int] = {}
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, **request: Any) -> Any:
        role = request_role(request) or "unknown role"
        n = self.used[role] = self.used.get(role, 0) + 1
        queue = self.recorded.get(role, [])
        if n > len(queue):
            raise ReplayMismatch(
                "replay_mismatch", f"the {role}'s call {n} is not in {self.source} ({len(queue)} recorded)"
            )
        event = queue[n - 1]
        if problem := first_difference(event.get("prompt") or [], request["messages"]):
            raise ReplayMismatch("replay_mismatch", f"the {role}'s request {n} is not the recorded one: {problem}")
        usage = None if event.get("usage_estimated") else (event["prompt_tokens"], event["completion_tokens"])
        calls = [(c["function"]["name"], c["function"]["arguments"]) for c in event.get("tool_calls") or []]
        body = completion_body(event.get("reply"), model=request["model"], usage=usage, tool_calls=calls or None)
        body["choices"][0]["finish_reason"] = event.get("finish_reason") or "stop"
        return as_attributes(body)


LIMIT_FIELDS = ("max_iterations", "max_tokens", "max_plans", "max_cost", "timeout")  # the start event's limits


def replay_setup(path: Path, settings: Settings) -> tuple[Settings, ReplayClient]:
    """Settings and client for --replay: the recorded models (an added role's too) and limits, no server, no key.

    The recorded limits apply, whatever the flags say: the budget gate must refuse what it refused live.
    """
    events = read_trace(path)
    models = dict(events[0].get("models") or {})
    calls = [e for e in events if e["event"] == "call"]
    models.update({e["role"]: e["model"] for e in calls})
    default = calls[0]["model"] if calls else settings.default_model
    limits = {k: v for k, v in (events[0].get("limits") or {}).items() if k in LIMIT_FIELDS}
    replayed = replace(
        settings,
        demo=False,
        replay=str(path),
        api_key=None,
        base_url=None,
        models=models,
        default_model=default,
        **limits,
    )
    return replayed, ReplayClient(events, path)


MERMAID_UNSAFE = re.compile(r"[;#<>{}\[\]]")  # characters that end or break a Mermaid statement


LADDER_WORDS = {  # each rung of the ladder, as a diagram note
    "revise": "revise · the worker tries again",
    "replan": "re-plan · the planner writes a new plan",
    "give_up": "give up · a human is needed",
    "accept": "accept · a human approved the draft",
}


DIAGRAM_WIDTH = 80  # no line of a diagram is longer: it is read in a terminal as often as rendered


def mermaid_text(text: str, limit: int = 60) -> str:
    """Text safe inside a Mermaid statement, on one line, shortened after a whole word."""
    return shorten(MERMAID_UNSAFE.sub(" ", str(text)), limit)


def mermaid_line(head: str, text: str) -> str:
    """``head`` followed by as much of ``text`` as fits in DIAGRAM_WIDTH."""
    return f"{head}{mermaid_text(text, DIAGRAM_WIDTH - len(head))}".rstrip()


def mermaid_diagram(events: list[dict[str, Any]]) -> str:
    """A recorded run as a Mermaid sequence diagram: who called whom, the tokens, verdicts and the stop."""
    called = dict.fromkeys(e["role"] for e in events if e["event"] == "call")
    alias = {"orchestrator": "O", "human": "H"}
    for role in [*ROLES, *called]:  # one capital letter each (no Mermaid keyword is one letter); a digit on a clash
        ids = [role[:1].upper(), *(f"{role[:1].upper()}{n}" for n in range(2, 99))]
        alias.setdefault(role, next(a for a in ids if a not in alias.values()))
    shown = ["orchestrator", *ROLES, *[r for r in called if r not in ROLES]]
    if any(e["event"] == "human" for e in events):
        shown.append("human")
    lines = ["sequenceDiagram", *(f"    participant {alias[r]} as {r}" for r in shown)]
    numbers: dict[str, int] = {}
    for e in events:
        kind = e["event"]
        if kind == "call":
            who, role = alias[e["role"]], e["role"]
            n = numbers[role] = numbers.get(role, 0) + 1
            mark = "~" if e.get("usage_estimated") else ""
            cut = " · cut off" if e.get("finish_reason") == "length" else ""
            lines.append(f"    O->>{who}: {role} call {n} · {mark}{e['prompt_tokens']} tokens in")
            lines.append(f"    {who}-->>O: {mark}{e['completion_tokens']} tokens out{cut}")
        elif kind == "verdict":
            said = "APPROVED" if e["approved"] else "REJECTED"
            by, where = ("code", "O") if e.get("source") == "code" else ("the critic", alias["critic"])
            lines.append(mermaid_line(f"    Note over {where}: {said} by {by} · ", e.get("feedback") or ""))
        elif kind == "escalation":
            lines.append(f"    Note over O: {LADDER_WORDS.get(e['action'], mermaid_text(e['action']))}")
        elif kind == "human":
            said = f"    H-->>O: {mermaid_text(e['action'], 20)} "
            lines += ["    O->>H: your call", mermaid_line(said, e.get("feedback") or "")]
        elif kind == "decision":
            used = f" · overridden, {e['used']}" if e.get("overridden") else ""
            lines.append(f"    Note over O: the director chose {mermaid_text(e.get('choice') or 'nothing', 20)}{used}")
        elif kind == "end":
            tokens = (e.get("total_tokens") or {}).get("total", 0)
            lines.append(f"    Note over O: stop · {e['stop_reason']} · {e.get('calls', 0)} calls, {tokens} tokens")
    return "\n".join(lines)


def show_or_draw(args: argparse.Namespace, display: Display, stdin: Any) -> int:
    """--show and --diagram: read a recorded run; a bad file gets one line and exit 2."""
    try:
        if args.diagram:
            display.line(mermaid_diagram(read_trace(args.diagram)), soft_wrap=True)
            return EXIT_APPROVED
        stepper = Stepper(Answers(stdin, display), display, recorded=True) if args.step else None
        return show_recorded(args.show, display, stepper)
    except UsageError as err:
        display.error(str(err))
        return EXIT_USAGE
    except StopRun as halt:  # q at a --step pause
        display.line(f"stop: {halt.detail}", "bold red")
        return EXIT_NOT_APPROVED
