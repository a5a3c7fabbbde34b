"""Red Team vs Blue Team, judged by a CISO: the starter for the stage 3 activity.

The game
--------
The Blue Team's model writes a web server's configuration as JSON. The Red
Team looks for weaknesses in two ways: a few plain rules in code, and its
model, which is shown the configuration. The CISO's model reads the findings
and routes: back to the Blue Team, or approved. ``AuditState`` is the run
context that carries the configuration and the findings from round to round.

This version works, and it is basic on purpose. EXERCISE.md, next to this
file, asks you to improve it, and ``python -m stages.stage3.activity.check``
tells you how far you are; ``solution_workflow.py`` is one way to do it.

::

    round n:  Blue writes the config ──> Red: schema + rules + model ──> CISO's model
                 ^                                                      │
                 └──────────── send back ───────────────────────────────┤
                                                                         └─ approve: exit 0

What code guarantees here: every key is checked against ``ServerConfig``, a
declared schema, so a setting in a shape the rules cannot read is a finding
of its own; nothing is approved while a blocking finding is open; and the
run ends, because the chapter's gate stops it when the token budget is spent.
What only a prompt asks for: everything else (look at the CISO's prompt).

Run it: ``python -m stages.stage3.activity.starter_workflow [--verbose] [--json]``
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console

import multi_agent_system as mas
from machinery.cli import ctrl_c_exits
from machinery.gateway import LLM
from machinery.verdicts import parse_verdict
from multi_agent_system import ask
from stages.stage3.activity.machinery import (
    SEVERITIES,  # "low", "medium", "high", "critical": rising
    game_parser,
    model_findings,
    play,
    read_config,
    run_cli,
    show_config,
)
from stages.stage3.activity.players import demo_responder  # the scripted players, for offline games
from stages.stage3.handoffs import STOP_REASONS as HANDOFF_STOP_REASONS
from stages.stage3.handoffs import Agent, RunRecord, Tool, run_agent

THRESHOLD = "medium"  # lowest severity that blocks approval; low findings are reported, not blocking
BLUE_MAX_TURNS = 4  # Blue's model calls per round: a few tool calls, then the config
MAX_MODEL_FINDINGS = 5  # kept per round from the Red Team's model; past that it is noise
DEFAULT_BRIEF = "A public HTTPS web server for the online shop at shop.example.com, with an admin login."
STOP_REASONS = {**HANDOFF_STOP_REASONS, "approved": "the CISO approved the configuration"}


# ---------------------------------------------------------------------------
# The configuration's schema: every key it may have, and its type
# ---------------------------------------------------------------------------


class _Exact(BaseModel):
    # extra="forbid": "Debug", "debug_mode" or "listeners" is not ignored, it is a finding.
    # strict=True: "on" is not a bool, "443" is not a port.
    model_config = ConfigDict(extra="forbid", strict=True)


class TLS(_Exact):
    min_version: Literal["1.0", "1.1", "1.2", "1.3"]


class AdminLogin(_Exact):
    username: str
    password_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")  # the NAME of a variable, never the password


class CORS(_Exact):
    allowed_origins: list[str]


class ServerConfig(_Exact):
    """The one shape a configuration may have. Add a field here before a rule about it."""

    server_name: str
    debug: bool
    listen_ports: list[int]
    redirect_http_to_https: bool = False
    tls: TLS
    headers: dict[str, str]
    admin: AdminLogin
    cors: CORS | None = None  # none: no other site may call this one
    server_tokens: bool | None = None


# ---------------------------------------------------------------------------
# Findings, and the run context
# ---------------------------------------------------------------------------


@dataclass
class Finding:
    id: str  # stable across rounds: the same problem keeps its id
    severity: str  # one of SEVERITIES
    field: str
    description: str
    source: str = "rule"  # "schema", "rule", "model", or "format" (an unreadable reply)
    found_in: int = 0  # the round it was first reported

    def line(self) -> str:
        return f"- [{self.severity}] {self.id} ({self.field}): {self.description}"


@dataclass
class AuditState:
    brief: str
    config: dict[str, Any] | None = None
    findings: list[Finding] = field(default_factory=list)  # open now, worst first
    history: dict[str, Finding] = field(default_factory=dict)  # every finding ever reported, by id
    round: int = 0
    rationale: str = ""  # the CISO's latest words
    stop_reason: str | None = None  # None while the game goes on
    stop_detail: str = ""


def blocking(findings: list[Finding], threshold: str = THRESHOLD) -> list[Finding]:
    return [f for f in findings if SEVERITIES.index(f.severity) >= SEVERITIES.index(threshold)]


# ---------------------------------------------------------------------------
# The Red Team's rules. A rule takes (config, strict) and returns findings.
# ---------------------------------------------------------------------------

DEFAULT_USERNAMES = {"admin", "root", "administrator", "user", "test", "guest"}
PLAINTEXT_PORTS = {21: "FTP", 23: "Telnet"}  # they send passwords in clear text


def check_debug(config: dict[str, Any], strict: bool) -> list[Finding]:
    if config.get("debug") is False:
        return []
    return [Finding("debug-mode", "high", "debug", "Debug mode is not off: errors would show internals.")]


def check_plaintext_ports(config: dict[str, Any], strict: bool) -> list[Finding]:
    ports = config.get("listen_ports")
    listed = ports if isinstance(ports, list) else []
    return [
        Finding(f"port-{port}", "critical", "listen_ports", f"Port {port} ({name}) is open.")
        for port, name in PLAINTEXT_PORTS.items()
        if port in listed
    ]


def check_admin(config: dict[str, Any], strict: bool) -> list[Finding]:
    admin = config.get("admin")
    name = admin.get("username") if isinstance(admin, dict) else None
    if isinstance(name, str) and name.strip() and name.strip().lower() not in DEFAULT_USERNAMES:
        return []
    return [Finding("admin-default", "critical", "admin", "The admin account has a default or missing username.")]


RULES: list[Callable[[dict[str, Any], bool], list[Finding]]] = [check_debug, check_plaintext_ports, check_admin]


def schema_findings(config: dict[str, Any]) -> list[Finding]:
    """One finding per way the config strays from ``ServerConfig``: unknown key, missing key, wrong type."""
    try:
        ServerConfig.model_validate(config)
    except ValidationError as err:
        found = {}
        for error in err.errors():
            where = ".".join(str(part) for part in error["loc"]) or "(top level)"
            problem = "is not a known key" if error["type"] == "extra_forbidden" else error["msg"].lower()
            kind = {"extra_forbidden": "unknown", "missing": "missing"}.get(error["type"], "invalid")
            fid = f"schema-{kind}-" + (re.sub(r"[^A-Za-z0-9]+", "-", where).strip("-") or "key")  # case kept
            found[fid] = Finding(fid, "high", where, f"{where!r} {problem}.", source="schema")
        return list(found.values())
    return []


def check_config(
    config: dict[str, Any], strict: bool = False, rules: Sequence[Callable[..., list[Finding]]] | None = None
) -> list[Finding]:
    """Everything code finds in a config: the schema first, then every rule."""
    found = schema_findings(config)
    for rule in RULES if rules is None else rules:
        found += rule(config, strict)
    return found


# ---------------------------------------------------------------------------
# The players, each with its prompt right above it
# ---------------------------------------------------------------------------

BLUE_PROMPT = """You are the Blue Team: you write and fix the configuration of a web server.
Reply with the whole configuration as one JSON object and nothing else, with exactly these keys:
server_name, debug (true/false), listen_ports (list of numbers), redirect_http_to_https (true/false),
tls ({"min_version": "1.2" or "1.3"}), headers (name -> value), admin ({"username": ..., "password_env":
the NAME of the environment variable holding the password}), cors ({"allowed_origins": [...]}),
server_tokens (true/false). When findings are listed, fix every one and keep earlier fixes."""


def blue_team(
    state: AuditState,
    llm: LLM,
    tools: Sequence[Tool] = (),
    prompt: str | None = None,
    tool_choice: Callable[[Any, int], str | None] | None = None,
) -> Finding | None:
    """Draft or fix the config. Writes state.config; returns a finding when the reply is unusable."""
    task = [f"Draft the configuration for: {state.brief}"]
    if state.config is not None:
        task = [f"Fix this configuration for: {state.brief}", f"```json\n{show_config(state.config)}\n```"]
    if state.findings:
        task.append("Open findings:\n" + "\n".join(f.line() for f in state.findings))
    agent = Agent("blue_team", prompt or BLUE_PROMPT, tools=list(tools), tool_choice=tool_choice, style="blue")
    reply = run_agent(agent, "\n\n".join(task), state, llm, RunRecord(BLUE_MAX_TURNS))
    config, problem = read_config(reply)
    if config is None:
        llm.display.warn(f"the Blue Team's reply is not a configuration: {problem}")
        return Finding("blue-format", "critical", "(reply)", f"The reply was unusable: {problem}.", "format")
    state.config = config  # run_agent has shown the reply
    return None


RED_PROMPT = """You are the Red Team: you attack web server configurations on paper.
Look at the configuration you are shown and report every weakness an attacker could use.
Reply with JSON only: {"findings": [{"severity": "low, medium, high or critical", "field": "...",
"description": "..."}]}. If there are none, reply {"findings": []}."""


def ask_red_model(
    state: AuditState, llm: LLM, scanner: list[Finding], prompt: str | None = None
) -> tuple[list[Finding], mas.Reply]:
    """The Red Team's model, shown the config and what the rules found."""
    task = (
        f"Configuration, round {state.round}:\n```json\n{show_config(state.config)}\n```\n\n"
        "The automatic checks found:\n" + ("\n".join(f.line() for f in scanner) or "- nothing")
    )
    messages = [{"role": "system", "content": prompt or RED_PROMPT}, {"role": "user", "content": task}]
    reply = ask(llm, "red_team", messages)
    found = [Finding(**item, source="model", found_in=state.round) for item in model_findings(reply.content)]
    if len(found) > MAX_MODEL_FINDINGS:
        llm.display.warn(f"the Red Team's model reported {len(found)} findings; the first {MAX_MODEL_FINDINGS} count")
    return found[:MAX_MODEL_FINDINGS], reply


def record_findings(state: AuditState, found: list[Finding]) -> None:
    """This round's findings become the open ones; every finding is also kept in the history."""
    unique = {f.id: f for f in found}
    for finding in unique.values():
        finding.found_in = state.history[finding.id].found_in if finding.id in state.history else state.round
        state.history[finding.id] = finding
    state.findings = sorted(unique.values(), key=lambda f: -SEVERITIES.index(f.severity))


def red_team(state: AuditState, llm: LLM, unusable: Finding | None) -> None:
    found, reply = [unusable] if unusable else [], None
    if state.config is not None:
        scanner = check_config(state.config)
        from_model, reply = ask_red_model(state, llm, scanner)
        found += scanner + from_model
    record_findings(state, found)
    body = "\n".join(f.line() for f in state.findings) or "No findings."
    llm.display.step(f"Red Team · {len(state.findings)} finding(s) · round {state.round}", body, reply, "red")


CISO_PROMPT = """You are the CISO. You read the Red Team's findings and decide.
If any finding is medium, high or critical, return the configuration to the Blue Team for fixing.
When none is left, approve it. Stop the game after 5 rounds if the teams cannot agree.
Reply with JSON only: {"approved": true or false, "feedback": "what to fix first, or why it may ship"}."""


def ciso(state: AuditState, llm: LLM) -> None:
    """The CISO's model routes. Code adds one thing: no approval while a blocking finding is open."""
    task = f"Round {state.round}. Findings:\n" + ("\n".join(f.line() for f in state.findings) or "- none")
    reply = ask(llm, "ciso", [{"role": "system", "content": CISO_PROMPT}, {"role": "user", "content": task}])
    verdict = parse_verdict(reply.content)
    approved = verdict.approved and not blocking(state.findings)
    state.rationale = verdict.feedback or reply.content.strip()
    if approved:
        state.stop_reason, state.stop_detail = "approved", f"approved in round {state.round}"
    title = f"CISO · {'APPROVE' if approved else 'SEND BACK'} · round {state.round}"
    llm.display.step(title, state.rationale or "(no words)", reply, "green" if approved else "yellow")


# ---------------------------------------------------------------------------
# The game loop, and what it leaves behind however it ends
# ---------------------------------------------------------------------------


def starter_round(state: AuditState, llm: LLM) -> None:
    red_team(state, llm, blue_team(state, llm))
    ciso(state, llm)


def run_audit(brief: str, llm: LLM) -> AuditState:
    return play(AuditState(brief), llm, starter_round)


# ---------------------------------------------------------------------------
# The command line (machinery.py holds the parts every version shares)
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    return game_parser("python -m stages.stage3.activity.starter_workflow", DEFAULT_BRIEF)


@ctrl_c_exits
def main(argv: Sequence[str] | None = None, *, console: Console | None = None, client: Any = None) -> int:
    """``console`` and ``client`` let tests and check.py capture the output and stand in for the API."""

    def game(args: argparse.Namespace, llm: LLM) -> AuditState:
        return run_audit(args.brief.strip(), llm)

    return run_cli(argv, console, client, build_parser(), game, demo_responder)


if __name__ == "__main__":
    raise SystemExit(main())
