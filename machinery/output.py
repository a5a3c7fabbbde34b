"""What the user sees and what a run leaves behind: the screen (rich) and the trace (JSON Lines).

``observe`` is the hook the chapter calls as ``llm.record(event, state, ...)``:
it draws each moment of a run and writes it to the trace, and never writes the state.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from machinery.checks import shown_checks
from machinery.disputes import named_no_fault
from machinery.prices import Ledger, format_cost
from machinery.text import SECRET_MIN_CHARS, clip, fit_parts, times
from multi_agent_system import ROLES, Reply, Settings, SharedState, UsageError

if TYPE_CHECKING:  # only for type hints: rich is imported where it is used
    from rich.console import Console
    from rich.table import Table

Mode = Literal["normal", "verbose", "quiet", "json"]


class Display:
    """Everything the user sees. ``console`` is stdout; ``errors`` gets one-line errors.

    In "quiet" and "json" modes nothing but the final answer reaches stdout.
    Model text is wrapped in ``Text`` so that "[bold]" in a reply stays literal.
    rich is imported by the methods that draw, so ``--help`` never loads it.
    """

    def __init__(self, console: Console, mode: Mode = "normal", errors: Console | None = None):
        from rich.console import Console

        self.console = console
        self.mode = mode
        self.streaming: set[str] = set()  # roles whose replies are streamed: no spinner over them
        self._streaming_now: set[str] = set()
        # On a real terminal errors go to stderr, so --json and --quiet output stays clean.
        self.errors = errors or (Console(stderr=True) if console.file is sys.stdout else console)

    @property
    def chatty(self) -> bool:
        return self.mode in ("normal", "verbose")

    def line(self, text: str, style: str = "", **options: Any) -> None:
        """One line of plain text; markup in ``text`` is shown, never interpreted."""
        from rich.text import Text

        self.console.print(Text(text, style=style), **options)

    def panel(self, body: str, title: str, style: str, subtitle: str | None = None) -> None:
        from rich.panel import Panel
        from rich.text import Text

        self.console.print(
            Panel(Text(body), title=Text(title), subtitle=Text(subtitle) if subtitle else None, border_style=style)
        )

    def banner(self, settings: Settings, run_id: str, trace_path: Path | None, roles: tuple[str, ...] = ()) -> None:
        if not self.chatty:
            return
        if settings.demo:
            scenario = f" (scenario: {settings.demo_scenario})" if settings.demo_scenario else ""
            self.panel(
                "Scripted demo model, not a real LLM. Its replies are canned so the run can be watched "
                f"offline{scenario}. Set OPENAI_API_KEY or OPENAI_BASE_URL to use a real model.",
                "offline demo",
                "red",
            )
        if settings.replay:
            self.panel(
                f"Replayed replies, not a live model: every reply comes from the recorded run {settings.replay}, "
                "and a request that differs from the recording stops the run.",
                "replay",
                "red",
            )
        models = ", ".join(f"{r}={settings.model_for(r)}" for r in roles or ROLES)
        self.line(f"run {run_id} · {settings.server()} · {models}", "dim")
        if trace_path:
            self.line(f"trace: {trace_path}", "dim")

    @contextmanager
    def thinking(self, role: str, model: str) -> Iterator[None]:
        """A spinner while a call runs, only on a real terminal."""
        if self.chatty and self.console.is_terminal and role not in self.streaming:
            from rich.text import Text

            with self.console.status(Text(f"{role} is thinking ({model})…")):
                yield
        else:
            yield

    def prompt(self, role: str, messages: list[dict[str, Any]], max_tokens: int) -> None:
        if self.mode == "verbose":
            body = "".join(describe_message(m) for m in messages)
            self.panel(body, f"prompt → {role} (max_tokens {max_tokens})", "dim")

    def step(self, title: str, body: str, reply: Reply | None, style: str = "white") -> None:
        """One panel per agent step: what it produced and what that cost."""
        if not self.chatty:
            return
        self.panel(body, title, style, footer(reply, self.console.width) if reply is not None else None)

    def stream(self, role: str, text: str, done: bool = False) -> None:
        """A reply as it is written, piece by piece. Written as plain bytes, never as markup,
        and without control characters, so a model cannot restyle or clear the terminal."""
        if not self.chatty:
            return
        if role not in self._streaming_now:
            self._streaming_now.add(role)
            self.line(f"{role} is writing…", "dim")
        if text:
            self.console.file.write(_CONTROL.sub("", text))
            self.console.file.flush()
        if done:
            self.console.file.write("\n")
            self._streaming_now.discard(role)

    def raw_reply(self, role: str, text: str) -> None:
        """In --verbose, a reply exactly as the model wrote it, before any parsing."""
        if self.mode == "verbose":
            self.panel(text, f"raw reply ← {role}", "dim")

    def note(self, text: str) -> None:
        """Details for --verbose: retries, clamps, fallbacks."""
        if self.mode == "verbose":
            self.line(f"· {text}", "dim")

    def warn(self, text: str) -> None:
        if self.chatty:
            self.line(f"warning: {text}", "yellow")

    def error(self, text: str) -> None:
        """The one line a user sees for a mistake or a server fault."""
        from rich.text import Text

        self.errors.print(Text(f"error: {text}", style="bold red"), soft_wrap=True)  # one line, unwrapped

    def spending(self, ledger: Ledger, label: str = "role") -> None:
        if not self.chatty:
            return
        self.console.print(spending_table(ledger, label))
        if ledger.estimated:
            self.line("~ estimated: the server sent no usage for some calls", "dim")

    def summary(self, state: SharedState, ledger: Ledger, trace_path: Path | None) -> None:
        if not self.chatty:
            return
        self.spending(ledger)
        approved = state["status"] == "approved"
        if state["result"]:
            best = state["best"]
            title = "approved result" if approved else "best draft (not approved)"
            subtitle = None if approved or best is None else best["why"]
            self.panel(state["result"], title, "green" if approved else "red", subtitle)
        self.line(
            f"stop reason: {state['stop_reason']} ({state['stop_detail']}) · "
            f"{state['iteration']} iteration(s), {state['plan_version']} plan(s), "
            f"{ledger.total_tokens} tokens, {format_cost(ledger.cost_usd)}",
            "bold green" if approved else "bold red",
        )
        if trace_path:
            self.line(f"trace: {trace_path}", "dim")


def footer(reply: Reply, width: int) -> str:
    """A step panel's footer: model, tokens, cost and seconds. On a narrow screen the split of
    tokens into in and out goes first, then the model's name (the banner names it), then the cost;
    the tokens, the seconds and a cut-off warning always stay.

    >>> r = Reply("worker", "qwen2.5-coder-1.5b-instruct", "", {}, [], 1000, 234, False, None, 12.3, "stop", 1200)
    >>> footer(r, 80)
    'qwen2.5-coder-1.5b-instruct · 1234 tokens · cost unknown · 12.3s'
    >>> footer(r, 44)
    '1234 tokens · cost unknown · 12.3s'
    """
    tokens = f"{'~' if reply.estimated else ''}{reply.tokens} tokens"
    split = f"{tokens} ({reply.prompt_tokens} in / {reply.completion_tokens} out)"
    cut = "cut off at max_tokens" if reply.finish_reason == "length" else ""
    room = width - FOOTER_MARGIN
    whole = fit_parts([reply.model, split, format_cost(reply.cost_usd), f"{reply.seconds:.1f}s", cut], room, drop=[])
    if len(whole) <= room:
        return whole
    return fit_parts(
        [reply.model, tokens, format_cost(reply.cost_usd), f"{reply.seconds:.1f}s", cut], room, drop=[0, 2]
    )


FOOTER_MARGIN = 5  # a panel's corners and the rules either side of its footer: rich shows width - 5


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # all but tab and newline: escapes could restyle a terminal


def describe_message(message: dict[str, Any]) -> str:
    """One chat message as plain text, tool calls and tool results included."""
    head = f"[{message['role']}]"
    if message.get("tool_call_id"):
        head += f" (result of {message['tool_call_id']})"
    lines = [head, str(message.get("content") or "")]
    for call in message.get("tool_calls") or []:
        function = call.get("function", {})
        lines.append(f"→ calls {function.get('name')}({function.get('arguments')})")
    return "\n".join(line for line in lines if line) + "\n"


def spending_table(ledger: Ledger, label: str = "role") -> Table:
    """Calls, tokens, cost and seconds per role (or agent), with a total row."""
    from rich.table import Table

    table = Table(title=f"Spending by {label}")
    cached = ledger.cached_tokens > 0  # a column only when the server reports its prompt cache
    for column in (label, "calls", "tokens in", *(["cached in"] if cached else []), "tokens out", "cost", "seconds"):
        table.add_column(column, justify="left" if column == label else "right")
    rows: list[tuple[str, Any]] = [*ledger.roles.items(), ("total", ledger)]  # the ledger sums like a role
    for name, stats in rows:
        mark = "~" if stats.estimated and name != "total" else ""  # estimated: the server sent no usage
        table.add_row(
            name,
            str(stats.calls),
            f"{mark}{stats.prompt_tokens}",
            *([str(stats.cached_tokens)] if cached else []),
            f"{mark}{stats.completion_tokens}",
            format_cost(stats.cost_usd),
            f"{stats.seconds:.1f}",
            style="bold" if name == "total" else None,
        )
    return table


class Trace:
    """One JSON object per line, per event, for reading a run afterwards.

    Events: start, call (the full request and reply, so --replay can match it),
    verdict, escalation, warning, step (each panel as drawn, for --show), human
    (--human), end. Settings never pass the API key here; in case a server's
    words carry it anyway, every line is scrubbed of the secrets named with
    ``hide()`` before it is written.
    """

    def __init__(self, path: Path | None, run_id: str):
        self.path = path
        self.run_id = run_id
        self._file: Any = None
        self._secrets: list[str] = []
        self._lock = threading.Lock()  # the run's thread and an abandoned call's thread may both write
        self.ended = False
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # backslashreplace: a reply may carry a lone surrogate ("\\ud83d"), which UTF-8 cannot hold
                self._file = path.open("a", encoding="utf-8", errors="backslashreplace")
            except OSError as err:
                raise UsageError(f"cannot write the trace to {path}: {err.strerror}") from err

    @classmethod
    def in_dir(cls, log_dir: Path, run_id: str) -> Trace:
        return cls(log_dir / f"{run_id}.jsonl", run_id)

    def hide(self, secret: str | None) -> None:
        if secret and len(secret) >= SECRET_MIN_CHARS:
            self._secrets.append(secret)

    def event(self, kind: str, **fields: Any) -> None:
        """Write one event. The ``end`` event is always the last line: a call abandoned at the time limit
        that speaks later (the SDK's retry warnings, from its own thread) is not written after it, even
        when it began writing just before the run ended (the line is written under a lock, if the trace
        has not ended by then)."""
        if self._file is None or self.ended:
            return
        record = {"ts": datetime.now(timezone.utc).isoformat(), "run_id": self.run_id, "event": kind}
        record.update(fields)
        line = json.dumps(record, ensure_ascii=False, default=str)
        for secret in self._secrets:
            line = line.replace(secret, "[redacted]")
        with self._lock:
            if self._file is None or self.ended:
                return
            self.ended = kind == "end"
            self._file.write(line + "\n")
            self._file.flush()  # a crash or Ctrl-C must not lose what already happened

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def new_run_id() -> str:
    return f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:12]}"  # 48 random bits: no repeats in a batch


# -- The moments of a run, drawn and recorded: the chapter's llm.record(event, state, ...) --


class Run(Protocol):
    """What this module reads of the gateway (machinery.gateway.LLM), which imports this module."""

    settings: Settings
    display: Display
    trace: Trace
    ledger: Ledger

    def elapsed(self) -> float: ...


def observe(llm: Run, event: str, state: SharedState, **details: Any) -> None:
    """Draw one moment of a run on screen and write it to the trace. Reads the state, never writes it."""
    moments: dict[str, Callable[..., None]] = {
        "start": _start,
        "step": _step,
        "verdict": _verdict,
        "escalation": _escalation,
        "dispute": _dispute,
        "end": _end,
    }
    moments[event](llm, state, **details)


def _start(llm: Run, state: SharedState) -> None:
    s = llm.settings
    llm.trace.event(
        "start",
        task=state["task"],
        demo=s.demo,
        demo_scenario=s.demo_scenario if s.demo else None,
        server=s.server(),
        models={role: s.model_for(role) for role in ROLES},
        requirements=[vars(r) for r in state["requirements"]],
        limits={
            "max_iterations": s.max_iterations,
            "max_tokens": s.max_tokens,
            "max_plans": s.max_plans,
            "max_cost": s.max_cost,
            "timeout": s.timeout,
        },
    )


def _step(llm: Run, state: SharedState, role: str, reply: Reply | None) -> None:
    """The panel for one agent's step; a role without a title of its own shows its reply."""
    if role == "planner":
        title, body = f"Planner · plan v{state['plan_version']}", state["plan"] or ""
    elif role == "worker":
        title = f"Worker · plan v{state['plan_version']} · draft {state['worker_attempts']} · iteration {state['iteration']}"
        body = state["result"] or ""
    elif role == "critic":
        verdict = "APPROVED" if state["critic_approved"] else "REJECTED"
        title, body = f"Critic · {verdict} · iteration {state['iteration']}", state["critic_feedback"] or ""
        checklist = [
            f"{'✓' if c['passed'] else '✗'} {c['requirement']}: {c['measured']}"
            for c in shown_checks(state["draft_facts"])
        ]
        if checklist:
            body += "\n\nchecked by code:\n" + "\n".join(checklist)
    else:
        title, body = role.replace("_", " ").capitalize(), reply.content if reply else ""
    draw_step(llm, role, title, body, reply, ROLES[role].colour if role in ROLES else "white")


def draw_step(llm: Run, role: str, title: str, body: str, reply: Reply | None, style: str) -> None:
    """A panel on screen, and the same panel in the trace, so --show can draw it again."""
    llm.display.step(title, body, reply, style)
    llm.trace.event("step", role=role, title=title, body=body, style=style, replied=reply is not None)


def _verdict(llm: Run, state: SharedState, verdict: Any, reply: Reply | None) -> None:
    if reply is not None:  # the critic's model was asked: show what it wrote, and how code read it
        llm.display.raw_reply("critic", reply.content)
        llm.display.note(f"verdict read from {verdict.source}: {verdict.why}")
    llm.trace.event(
        "verdict",
        checks=state["draft_facts"]["checks"],
        iteration=state["iteration"],
        plan_version=state["plan_version"],
        attempt=state["worker_attempts"],
        approved=verdict.approved,
        source=verdict.source,
        why=verdict.why,
        feedback=state["critic_feedback"],
    )


def _dispute(
    llm: Run, state: SharedState, claims: list[tuple[str, str]], outcome: str, first: list[tuple[str, str]]
) -> None:
    """The critic's rejection contradicted a measurement, or named no fault (``first``): it was asked
    again, and what it still claims against a measurement (``claims``) is set aside."""
    said = "; ".join(f"'{claim}' (code measured {measured})" for claim, measured in claims) or "nothing code measured"
    if named_no_fault(first):  # it praised the draft
        llm.display.note(f"the critic rejected the draft naming no fault in it: {outcome}; set aside: {said}")
    else:
        llm.display.note(f"the critic disputed code's measurements: {outcome}; still disputed: {said}")
    for claim, measured in claims if llm.display.chatty else []:  # set aside: the worker never hears them
        llm.display.line(f"code measured {measured}; the critic's claim '{clip(claim, 80)}' was set aside", "dim")
    llm.trace.event(
        "dispute",
        iteration=state["iteration"],
        outcome=outcome,
        claims=[list(c) for c in claims],
        first=[list(c) for c in first],
    )


def _escalation(llm: Run, state: SharedState, step: str) -> None:
    where = {"iteration": state["iteration"], "plan_version": state["plan_version"]}
    llm.trace.event("escalation", **where, worker_attempts=state["worker_attempts"], action=step)
    show_escalation(llm.display, step, state["worker_attempts"], state["plan_version"])


def _end(llm: Run, state: SharedState) -> None:
    llm.trace.event(
        "end",
        stop_reason=state["stop_reason"],
        detail=state["stop_detail"],
        approved=state["critic_approved"],
        iterations=state["iteration"],
        plan_version=state["plan_version"],
        calls=llm.ledger.calls,
        total_tokens=state["total_tokens"],
        cost_usd=state["cost_usd"],
        seconds=round(llm.elapsed(), 3),
        result=state["result"],
        best=state["best"],  # the best draft, and why: at a stop without approval it is the result
    )


def run_summary(state: SharedState, llm: Run) -> dict[str, Any]:
    return {
        "approved": state["status"] == "approved",
        "result": state["result"],
        # Without approval the result is the best draft; this says which one, and why.
        "best": None if state["best"] is None else {k: state["best"][k] for k in ("why", "passed", "checks", "failed")},
        "stop_reason": state["stop_reason"],
        "stop_detail": state["stop_detail"],
        "iterations": state["iteration"],
        "plans": state["plan_version"],
        "calls": llm.ledger.calls,
        "total_tokens": state["total_tokens"]["total"],
        "tokens": state["total_tokens"],
        "usage_estimated": llm.ledger.estimated,
        "cached_prompt_tokens": llm.ledger.cached_tokens,
        "cost_usd": state["cost_usd"],
        "demo": llm.settings.demo,
        "replayed_from": llm.settings.replay,  # --replay: the recorded run whose replies stood in for the model
        "run_id": llm.trace.run_id,
        "trace": str(llm.trace.path) if llm.trace.path else None,
    }


def show_escalation(display: Display, step: str, attempts: int, plan_version: int) -> None:
    if step == "revise":
        display.note(f"rejected {times(attempts)} on this plan: the worker revises")
    elif step == "replan":
        display.warn(f"plan v{plan_version} was rejected {times(attempts)}: escalating to the planner")
