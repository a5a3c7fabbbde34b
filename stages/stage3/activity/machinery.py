"""The table the audit game is played on: reading replies, running rounds, the command line.

``starter_workflow.py`` is the game: the schema, the rules, the players and
their prompts. This file is what any version of the game needs and students
need not change: reading a config or findings out of a model's reply without
trusting its shape, running rounds until something stops them while keeping
the trace and the best work so far, and the command line around it. The
solution uses it unchanged.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, Protocol, TypeVar

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

import multi_agent_system as mas
from machinery.cli import exit_code_for
from machinery.config import clean_task
from machinery.demo import Responder
from machinery.gateway import LLM, sdk_retries_shown
from machinery.output import Display
from machinery.prices import format_cost
from machinery.text import clip, json_objects, nesting_depth
from stages.stage3 import cli

CONFIG_MAX_CHARS = 4_000  # a config as a model is shown it; a sensible one is under 1,000
MAX_DEPTH = 8  # nesting a config may have (the schema needs 3); stricter than the chapter's JSON_MAX_DEPTH
SEVERITIES = (
    "low",
    "medium",
    "high",
    "critical",
)  # rising: the one scale every version of the game and the checker use


class GameState(Protocol):
    """What this file reads of a game's run context (``AuditState`` in starter_workflow.py, which imports
    this file: the state is described here, not imported, so the two files do not import each other)."""

    brief: str
    round: int
    config: dict[str, Any] | None
    findings: list[Any]  # the open findings: dataclasses with an ``id`` and a ``line()``
    history: dict[str, Any]  # every finding ever recorded, by id
    stop_reason: str | None
    stop_detail: str


State = TypeVar("State", bound=GameState)

# ---------------------------------------------------------------------------
# Reading model replies: tolerant of form, never of content
# ---------------------------------------------------------------------------


def read_config(text: str) -> tuple[dict[str, Any] | None, str]:
    """The config in a Blue Team reply, or None and why not. Fences and chatter are fine.

    >>> read_config('Here:\\n```json\\n{"debug": false}\\n```')
    ({'debug': False}, '')
    >>> read_config('{"config": {"debug": false}}')[0]
    {'debug': False}
    >>> read_config("I would switch debug off.")
    (None, 'the reply holds no JSON object')
    """
    objects = json_objects(text)
    if not objects:
        return None, "the reply holds no JSON object"
    config = max(objects, key=lambda obj: len(str(obj)))  # the config, not an example in the prose
    if len(config) == 1 and isinstance(next(iter(config.values())), dict) and "tls" not in config:
        config = next(iter(config.values()))  # {"config": {...}}
    if nesting_depth(config) > MAX_DEPTH:
        return None, f"the JSON nests more than {MAX_DEPTH} levels deep"
    return config, ""


def model_findings(text: str) -> list[dict[str, str]]:
    """The findings in a Red Team model's reply, as id/severity/field/description, one per id.

    {"findings": [...]} or finding objects anywhere in the reply; an unknown
    severity counts as medium, so an unsure finding still blocks.

    >>> model_findings('{"findings": [{"severity": "bad", "field": "Server Tokens", "description": "leaks"}]}')
    [{'id': 'red-server-tokens', 'severity': 'medium', 'field': 'Server Tokens', 'description': 'leaks'}]
    """
    objects = json_objects(text)
    listed = next((o["findings"] for o in objects if isinstance(o.get("findings"), list)), None)
    found: dict[str, dict[str, str]] = {}
    for item in listed if listed is not None else objects:
        if isinstance(item, dict) and str(item.get("description") or "").strip():
            where = str(item.get("field") or "general").strip() or "general"
            severity = str(item.get("severity", "")).strip().lower()
            fid = "red-" + (re.sub(r"[^a-z0-9]+", "-", where.lower()).strip("-") or "general")
            found.setdefault(
                fid,
                {
                    "id": fid,
                    "severity": severity if severity in SEVERITIES else "medium",
                    "field": clip(where, 80),
                    "description": clip(str(item["description"]).strip(), 300),
                },
            )
    return list(found.values())


def show_config(config: dict[str, Any] | None) -> str:
    """A config as JSON, one top-level key per line: short enough for a projector, exact for a model.

    >>> print(show_config({"debug": False, "tls": {"min_version": "1.3"}}))
    {
      "debug": false,
      "tls": {"min_version": "1.3"}
    }
    """
    if not isinstance(config, dict) or not config:
        return json.dumps(config)
    lines = [
        f"  {json.dumps(key, ensure_ascii=False)}: {json.dumps(value, ensure_ascii=False)}"
        for key, value in config.items()
    ]
    return clip("{\n" + ",\n".join(lines) + "\n}", CONFIG_MAX_CHARS)


# ---------------------------------------------------------------------------
# Running rounds, and what a run leaves behind however it ends
# ---------------------------------------------------------------------------


def result_of(state: GameState) -> dict[str, Any]:
    """The outcome as plain data: for --json, the trace's end event, and the final panel."""
    return {
        "approved": state.stop_reason == "approved",
        "stop_reason": state.stop_reason,
        "detail": state.stop_detail,
        "rounds": state.round,
        "config": state.config,
        "open_findings": [asdict(f) for f in state.findings],
        "all_findings": [asdict(f) for f in state.history.values()],
    }


def play(
    state: State,
    llm: LLM,
    one_round: Callable[[State, LLM], None],
    result: Callable[[State], dict[str, Any]] = result_of,
) -> State:
    """Run rounds until one sets ``state.stop_reason``, or a limit, a fault or Ctrl-C ends the run.

    The state comes back in every case, and the trace's ``end`` event holds the
    result: the last config and every finding ever recorded.
    """
    llm.trace.event("start", game="security_audit", brief=state.brief, demo=llm.settings.demo)
    try:
        while state.stop_reason is None:
            state.round += 1
            if llm.display.chatty:
                llm.display.console.rule(Text(f"Round {state.round}"))
            one_round(state, llm)
            llm.trace.event("round", round=state.round, open=[f.id for f in state.findings], config=state.config)
    except mas.StopRun as halt:
        state.stop_reason, state.stop_detail = halt.stop_reason, halt.detail
    except KeyboardInterrupt:
        state.stop_reason, state.stop_detail = "interrupted", "stopped with Ctrl-C"
    finally:
        if state.stop_reason is None:  # a bug on its way up: the trace still says where it got to
            state.stop_reason, state.stop_detail = "crashed", "an unexpected error ended the run"
        llm.trace.event("end", **result(state), total_tokens=llm.ledger.total_tokens, calls=llm.ledger.calls)
    return state


def show_outcome(console: Console, state: GameState) -> None:
    """The config, plainly marked approved or NOT, with every finding the run recorded."""
    approved = state.stop_reason == "approved"
    body = show_config(state.config) if state.config is not None else "(no usable configuration was written)"
    open_ids = {f.id for f in state.findings}
    if not approved and state.history:
        body += "\n\nEvery finding recorded (open ones first):\n" + "\n".join(
            f.line() + ("" if f.id in open_ids else "  (fixed)")
            for f in sorted(state.history.values(), key=lambda f: f.id not in open_ids)
        )
    title = "APPROVED configuration" if approved else "NOT approved: the best work so far"
    console.print(Panel(Text(body), title=title, border_style="green" if approved else "red"))


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def game_parser(prog: str, default_brief: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Red Team vs Blue Team: a server configuration is attacked and fixed\nuntil a CISO approves it.",
        epilog=cli.ENVIRONMENT_HELP + "\n\nexit codes: 0 approved, 1 not approved, 2 usage or configuration "
        "error,\n130 interrupted",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("brief", nargs="?", default=default_brief, help="the server to configure")
    parser.add_argument("--json", action="store_true", help="print only the outcome, as JSON")
    cli.add_model_flags(parser)
    return parser


def run_cli(
    argv: Sequence[str] | None,
    console: Console | None,
    client: Any,
    parser: argparse.ArgumentParser,
    game: Callable[[argparse.Namespace, LLM], State],
    responder: Callable[[], Responder],
    result: Callable[[State], dict[str, Any]] = result_of,
    check_args: Callable[[argparse.Namespace], None] | None = None,
) -> int:
    """Parse, open the run, play, report; returns the exit code. A user's or server's mistake is one line.

    ``check_args`` refuses (with a UsageError) what can be refused before the run opens its trace: an output
    path that cannot be written, say. A refusal later still ends the trace with an ``end`` event.
    """
    console = console or Console()
    args = cli.parse_args(parser, argv)
    if isinstance(args, int):
        return args
    display = Display(console, "json") if args.json else cli.make_display(args, console)
    try:
        if not args.brief.strip():
            raise mas.UsageError("the brief is empty: describe the server to configure")
        args.brief = clean_task(args.brief, "the brief")  # the chapter's checks: bytes argv could not decode, NUL
        if check_args is not None:
            check_args(args)
        llm = cli.open_run(args, display, client, responder)
    except mas.UsageError as err:
        display.error(str(err))
        return mas.EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C before the run has a trace: nothing to keep yet
        return mas.EXIT_INTERRUPTED
    outcome = ("crashed", "an unexpected error ended the run")  # what the trace's end says if play() never did
    try:
        display.banner(llm.settings, llm.trace.run_id, llm.trace.path, roles=("blue_team", "red_team", "ciso"))
        with sdk_retries_shown(display, llm.trace):
            state = game(args, llm)
        if state.stop_reason in ("config_error", "api_error"):
            display.error(state.stop_detail)
        if args.json:
            spent = {"calls": llm.ledger.calls, "total_tokens": llm.ledger.total_tokens}
            console.print_json(json.dumps({**result(state), **spent}, ensure_ascii=False))
        else:
            display.spending(llm.ledger, "agent")
            show_outcome(console, state)
            style = "bold green" if state.stop_reason == "approved" else "bold red"
            ledger = llm.ledger
            display.line(
                f"stop reason: {state.stop_reason} ({state.stop_detail}) · {state.round} round(s), "
                f"{ledger.calls} calls, {ledger.total_tokens} tokens, {format_cost(ledger.cost_usd)}, "
                f"{llm.elapsed():.1f}s",
                style,
            )
        return exit_code_for(state.stop_reason, "approved")
    except (mas.UsageError, OSError) as err:  # a bad --out path, a full disk: one line, no traceback
        message = str(err) if isinstance(err, mas.UsageError) else f"cannot write {err.filename}: {err.strerror}"
        display.error(message)
        outcome = ("usage_error", message)
        return mas.EXIT_USAGE
    finally:
        cli.close_run(llm.trace, *outcome)
