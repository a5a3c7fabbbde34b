"""Red Team vs Blue Team, judged by a CISO: one solution to the stage 3 exercise.

It is the starter, improved the way EXERCISE.md asks, and it imports the
starter's pieces rather than copying them: the schema, the findings, the
three plain rules, the Blue Team, the Red Team's model call, the round loop
and the command line. What it adds, task by task:

1. (run it): nothing to add.
2. A pickier Red Team: more rules (HTTP without a redirect, ports other than
   80 and 443, old TLS, missing or weak security headers, wildcard CORS in
   any of its spellings) and ``--strict`` (TLS 1.3 only, six headers with sane
   values). A model finding about a field the rules own is never dropped: if
   the rules find nothing there, the CISO sees it marked *disputed*.
3. A smarter Blue Team: the ``lookup_secure_default`` tool reads
   ``secure_defaults.json``.
4. A limit in code: ``ciso_decision()`` decides; after ``--max-loops`` rounds
   (5) it rejects. The CISO's model only explains the decision.

Stretch: a change budget (every field a fix changes costs a point; past
``--max-cost`` the CISO rejects), and the approved config saved to
``secure_server.json``, atomically, and only on approval.

Run it: ``python -m stages.stage3.activity.solution_workflow [--strict] [--no-kb] [-v]``
"""

from __future__ import annotations

import argparse
import copy
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from machinery.config import check_output_path, positive, write_atomically
from machinery.gateway import LLM
from multi_agent_system import ask
from stages.stage3.activity import starter_workflow as starter
from stages.stage3.activity.machinery import game_parser, play, result_of, run_cli
from stages.stage3.activity.starter_workflow import SEVERITIES, AuditState, Finding
from stages.stage3.handoffs import Tool, ToolError

MAX_LOOPS = 5  # rounds before the CISO calls it off: two sides that cannot agree in 5 will not in 50
MAX_FIX_COST = 30  # change points: about two full rewrites of a typical config
OUT_FILE = Path("secure_server.json")
KB_FILE = Path(__file__).with_name("secure_defaults.json")
STOP_REASONS = {
    **starter.STOP_REASONS,
    "max_loops": "the round limit was reached with blocking findings still open",
    "cost_ceiling": "the fixes cost more change points than the budget allows",
}

# What the extra rules know. Each value is the textbook one; secure_defaults.json gives the reasons.
WEB_PORTS = {80, 443}  # anything else on a public web server needs a reason the config cannot give
HSTS_MIN_AGE = 31_536_000  # one year, in seconds: the minimum for browsers' HSTS preload lists
REQUIRED_HEADERS = ("Strict-Transport-Security", "Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options")
STRICT_HEADERS = (*REQUIRED_HEADERS, "Referrer-Policy", "Permissions-Policy")
SAFE_REFERRER_POLICIES = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")  # "X-Frame-Options " with a space is another header, or none
HTTPS_ORIGIN = re.compile(r"^https://[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:\d{1,5})?$")
# Fields the rules check. A model finding about one of them that the rules do not confirm is "disputed".
RULE_FIELDS = {"debug", "listen_ports", "redirect_http_to_https", "tls", "headers", "admin", "cors"}


# ---------------------------------------------------------------------------
# Task 2: a pickier Red Team. Each rule reads the raw config defensively; the
# schema (in the starter) makes any shape a rule cannot read a finding anyway.
# ---------------------------------------------------------------------------


def _ports(config: dict[str, Any]) -> list[int]:
    ports = config.get("listen_ports")
    return [p for p in ports if isinstance(p, int)] if isinstance(ports, list) else []


def check_web_ports(config: dict[str, Any], strict: bool) -> list[Finding]:
    ports, found = _ports(config), []
    if 80 in ports and config.get("redirect_http_to_https") is not True:
        found.append(Finding("http-no-redirect", "high", "redirect_http_to_https", "Port 80 serves plain HTTP."))
    if 443 not in ports:
        found.append(Finding("https-missing", "high", "listen_ports", "Nothing listens on 443 for HTTPS."))
    for port in sorted(set(ports) - WEB_PORTS - set(starter.PLAINTEXT_PORTS)):
        found.append(Finding(f"port-{port}", "medium", "listen_ports", f"Port {port} is open: what serves it?"))
    return found


def check_tls(config: dict[str, Any], strict: bool) -> list[Finding]:
    tls = config.get("tls")
    version = tls.get("min_version") if isinstance(tls, dict) else None
    floor = "1.3" if strict else "1.2"
    if isinstance(version, str) and version in ("1.2", "1.3") and version >= floor:
        return []
    return [Finding("tls-old", "high", "tls.min_version", f"TLS below {floor} is allowed (or unreadable).")]


def weak_header(name: str, value: str) -> str | None:
    """Why a security header's value is too weak for the strict policy, or None if it is sane.

    >>> weak_header("Strict-Transport-Security", "max-age=300")
    'max-age is under a year and subdomains are not covered'
    >>> weak_header("Content-Security-Policy", "default-src 'self'") is None
    True
    """
    lowered = value.strip().lower()
    if name == "Strict-Transport-Security":
        age = re.search(r"max-age\s*=\s*(\d+)", lowered)
        problems = [] if age and int(age.group(1)) >= HSTS_MIN_AGE else ["max-age is under a year"]
        problems += [] if "includesubdomains" in lowered else ["subdomains are not covered"]
        return " and ".join(problems) or None
    if name == "Content-Security-Policy":
        if "default-src" not in lowered:
            return "there is no default-src"
        if "unsafe-inline" in lowered or "unsafe-eval" in lowered or re.search(r"(^|\s)\*(\s|;|$)", lowered):
            return "it allows inline code, eval or any origin"
        return None
    if name == "X-Content-Type-Options":
        return None if lowered == "nosniff" else "the only useful value is nosniff"
    if name == "X-Frame-Options":
        return None if lowered in ("deny", "sameorigin") else "use DENY or SAMEORIGIN"
    if name == "Referrer-Policy":
        return None if lowered in SAFE_REFERRER_POLICIES else "it sends full URLs to other sites"
    return None if lowered else "it is empty"  # Permissions-Policy: any deliberate value beats none


def check_headers(config: dict[str, Any], strict: bool) -> list[Finding]:
    given = config.get("headers")
    headers = given if isinstance(given, dict) else {}
    found, by_name = [], {}
    for name, value in headers.items():
        if not HEADER_NAME.match(str(name)) or str(name).lower() in by_name:
            found.append(Finding("header-names", "medium", "headers", f"Header name {name!r} is odd or repeated."))
        by_name[str(name).lower()] = value
    for name in STRICT_HEADERS if strict else REQUIRED_HEADERS:
        value = by_name.get(name.lower())
        if not isinstance(value, str) or not value.strip():
            problem: str | None = "it is missing"
        elif strict or name in ("X-Content-Type-Options", "X-Frame-Options"):  # these two have one right value
            problem = weak_header(name, value)
        else:
            problem = None
        if problem:
            found.append(Finding(f"header-{name.lower()}", "medium", f"headers.{name}", f"{name}: {problem}."))
    allow = by_name.get("access-control-allow-origin")
    if allow is not None and (not isinstance(allow, str) or not HTTPS_ORIGIN.match(allow.strip())):
        found.append(Finding("cors-header", "high", "headers", "Access-Control-Allow-Origin is not one https origin."))
    return found


def check_cors(config: dict[str, Any], strict: bool) -> list[Finding]:
    cors = config.get("cors")
    origins = cors.get("allowed_origins") if isinstance(cors, dict) else [] if cors is None else None
    if isinstance(origins, list) and all(isinstance(o, str) and HTTPS_ORIGIN.match(o) for o in origins):
        return []
    return [Finding("cors-wildcard", "high", "cors", "CORS lets in more than a list of exact https:// origins.")]


RULES = [*starter.RULES, check_web_ports, check_tls, check_headers, check_cors]


def check_config(config: dict[str, Any], strict: bool = False) -> list[Finding]:
    """The starter's schema and rules (yours too, if you added some), and the ones above."""
    return starter.check_config(config, strict, rules=RULES)


def mark_disputed(from_model: list[Finding], scanner: list[Finding]) -> list[Finding]:
    """A model finding on a field the rules checked and passed is kept, marked, and still blocks."""
    flagged = {_root(f.field) for f in scanner}
    for finding in from_model:
        if _root(finding.field) in RULE_FIELDS and _root(finding.field) not in flagged:
            finding.source = "disputed"
            finding.description = f"(disputed: the rules find nothing wrong here) {finding.description}"
    return from_model


def _root(path: str) -> str:
    return re.split(r"[.\[ /]", path.strip().lower(), maxsplit=1)[0]


# ---------------------------------------------------------------------------
# Task 3: the Blue Team's knowledge base
# ---------------------------------------------------------------------------


def load_knowledge_base(path: Path = KB_FILE) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def lookup_secure_default(knowledge: dict[str, Any], state: SolutionState, topic: str) -> str:
    """The secure setting for a topic, as JSON with the reason; a ToolError lists the topics there are."""
    wanted = topic.strip().lower()
    names = {key: [key, *entry.get("aliases", [])] for key, entry in knowledge.items()}
    match = next((key for key, words in names.items() if wanted in words), None) or next(
        (key for key, words in names.items() if wanted and any(w in wanted or wanted in w for w in words)), None
    )
    if match is None:
        raise ToolError(f"nothing on {topic!r}; topics: {', '.join(knowledge)}")
    state.kb_lookups.append(match)
    entry = knowledge[match]
    return json.dumps({"topic": match, "setting": entry["setting"], "why": entry["why"]}, ensure_ascii=False)


def knowledge_base_tool(knowledge: dict[str, Any]) -> Tool:
    return Tool(
        "lookup_secure_default",
        f"Look up the secure value for one topic. Topics: {', '.join(knowledge)}.",
        lambda state, topic: lookup_secure_default(knowledge, state, topic),
        {"topic": "one topic, e.g. tls or headers"},
    )


# ---------------------------------------------------------------------------
# Task 4 and the stretch: the CISO's decision, the round limit, the change budget
# ---------------------------------------------------------------------------


@dataclass
class SolutionState(AuditState):
    cost: int = 0  # change points spent on fixes so far
    kb_lookups: list[str] = field(default_factory=list)
    saved_to: str | None = None


@dataclass(frozen=True)
class AuditOptions:
    strict: bool = False
    threshold: str = starter.THRESHOLD
    max_loops: int = MAX_LOOPS
    max_cost: int = MAX_FIX_COST
    knowledge_base: bool = True


@dataclass(frozen=True)
class Decision:
    verdict: Literal["approve", "send back", "reject"]
    stop_reason: str | None  # None while the game goes on
    detail: str
    blocking: list[Finding]


def count_changes(old: Any, new: Any) -> int:
    """How many leaf fields differ between two configs: added, removed or changed. A list counts as one.

    >>> count_changes({"debug": True, "tls": {"min_version": "1.2"}}, {"debug": False, "tls": {"min_version": "1.2"}, "x": 1})
    2
    """
    before, after, missing = _leaves(old), _leaves(new), object()
    return sum(before.get(key, missing) != after.get(key, missing) for key in before.keys() | after.keys())


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:  # read_config keeps configs a few levels deep, so this recursion ends
        found: dict[str, Any] = {}
        for key, inner in value.items():
            found.update(_leaves(inner, f"{prefix}.{key}" if prefix else str(key)))
        return found
    return {prefix: value}


def ciso_decision(open_findings: list[Finding], round_: int, cost: int, options: AuditOptions) -> Decision:
    """The CISO's rule, in code. The model is never asked whether to approve.

    >>> low = Finding("red-x", "low", "x", "minor")
    >>> ciso_decision([low], 1, 0, AuditOptions()).verdict     # below the threshold: approve
    'approve'
    >>> ciso_decision([], 2, 31, AuditOptions()).stop_reason   # over the change budget, even if clean
    'cost_ceiling'
    """
    stuck = starter.blocking(open_findings, options.threshold)
    if cost > options.max_cost:
        return Decision(
            "reject", "cost_ceiling", f"fixes cost {cost} change points; the budget is {options.max_cost}", stuck
        )
    if not stuck:
        return Decision(
            "approve", "approved", f"no open finding at or above {options.threshold} after round {round_}", stuck
        )
    if round_ >= options.max_loops:
        disputed = sum(f.source == "disputed" for f in stuck)
        human = f", {disputed} of them disputed: a human should rule on those" if disputed else ""
        detail = f"{len(stuck)} blocking finding(s) still open after {round_} of {options.max_loops} rounds{human}"
        return Decision("reject", "max_loops", detail, stuck)
    return Decision("send back", None, f"{len(stuck)} finding(s) at or above {options.threshold}", stuck)


# ---------------------------------------------------------------------------
# The players: the starter's, with better prompts and the pieces above
# ---------------------------------------------------------------------------

BLUE_PROMPT = starter.BLUE_PROMPT + "\nBefore you write the JSON, look up secure values with the tool you are given."

RED_PROMPT = """You are the Red Team: you attack web server configurations on paper, and you are picky.
An automatic scanner has already checked the configuration; its findings are listed under it. Add only
weaknesses it missed that you can point to in the configuration: a leaking server banner, a risky value,
anything an attacker could use. Reply with JSON only: {"findings": [{"severity": "low, medium, high or
critical", "field": "the key", "description": "..."}]}. If the scanner missed nothing, reply {"findings": []}."""


def red_team(state: SolutionState, llm: LLM, options: AuditOptions, unusable: Finding | None) -> None:
    found, reply = [unusable] if unusable else [], None
    if state.config is not None:
        scanner = check_config(state.config, options.strict)
        from_model, reply = starter.ask_red_model(state, llm, scanner, RED_PROMPT)
        found += scanner + mark_disputed(from_model, scanner)
    was_open = {f.id for f in state.findings}
    for finding in found:
        if finding.id in state.history and finding.id not in was_open and state.round > 1:
            llm.display.warn(f"regression: {finding.id} was fixed in an earlier round and is back")
    starter.record_findings(state, found)
    fixed = sorted(was_open - {f.id for f in state.findings})
    body = "\n".join(f.line() for f in state.findings) or "No findings."
    body += f"\n\nFixed this round: {', '.join(fixed)}" if fixed else ""
    llm.display.step(f"Red Team · {len(state.findings)} finding(s) · round {state.round}", body, reply, "red")


CISO_PROMPT = """You are the CISO. The decision below was made by company policy, in code, and it is final.
In two or three sentences, explain it to the team: what blocks approval and what to fix first,
or why the configuration may ship. Do not change or question the decision."""


def explain(state: SolutionState, llm: LLM, decision: Decision, options: AuditOptions) -> None:
    task = "\n".join(
        [
            f"Decision: {decision.verdict.upper()}",
            f"Reason: {decision.detail}",
            f"Round {state.round} of {options.max_loops}; change cost {state.cost} of {options.max_cost} points.",
            "Blocking findings:",
            "\n".join(f.line() for f in decision.blocking) or "- none",
        ]
    )
    reply = ask(llm, "ciso", [{"role": "system", "content": CISO_PROMPT}, {"role": "user", "content": task}])
    state.rationale = reply.content.strip() or decision.detail
    style = {"approve": "green", "send back": "yellow", "reject": "red"}[decision.verdict]
    title = f"CISO · {decision.verdict.upper()} · round {state.round} · change cost {state.cost}/{options.max_cost}"
    llm.display.step(title, state.rationale, reply, style)


def solution_round(state: SolutionState, llm: LLM, options: AuditOptions, knowledge: dict[str, Any] | None) -> None:
    before = copy.deepcopy(state.config)
    tools = [knowledge_base_tool(knowledge)] if knowledge else []
    looked_up = len(state.kb_lookups)
    unusable = starter.blue_team(state, llm, tools, BLUE_PROMPT, look_up_first if state.findings else None)
    if len(state.kb_lookups) > looked_up and llm.display.chatty:
        llm.display.line(f"Blue Team looked up: {', '.join(state.kb_lookups[looked_up:])}", "blue")
    if before is not None and state.config is not None:
        state.cost += count_changes(before, state.config)
    red_team(state, llm, options, unusable)
    decision = ciso_decision(state.findings, state.round, state.cost, options)
    explain(state, llm, decision, options)
    if decision.stop_reason:
        state.stop_reason, state.stop_detail = decision.stop_reason, decision.detail


def look_up_first(state: Any, results: int) -> str:
    """With findings to fix, a lookup first is the sensible move, and small models skip it unless made to."""
    return "required" if results == 0 else "none"


def solution_result(state: AuditState) -> dict[str, Any]:
    extra = {k: v for k, v in asdict(state).items() if k in ("cost", "kb_lookups", "saved_to")}
    return {**result_of(state), **extra}


def run_audit(brief: str, llm: LLM, options: AuditOptions, knowledge: dict[str, Any] | None) -> SolutionState:
    state = SolutionState(brief)
    play(state, llm, lambda s, m: solution_round(s, m, options, knowledge), solution_result)
    return state


def save_if_approved(state: SolutionState, out: Path) -> None:
    """The approved config goes to ``out``, written atomically; nothing is written otherwise."""
    if state.stop_reason == "approved" and state.config is not None:
        write_atomically(out, json.dumps(state.config, indent=2, ensure_ascii=False) + "\n")
        state.saved_to = str(out)


# ---------------------------------------------------------------------------
# The command line: the starter's, with the game's options
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = game_parser("python -m stages.stage3.activity.solution_workflow", starter.DEFAULT_BRIEF)
    game = parser.add_argument_group("the game")
    game.add_argument("--strict", action="store_true", help="TLS 1.3 only, six headers with sane values")
    game.add_argument("--no-kb", action="store_true", help="take away the Blue Team's knowledge base")
    game.add_argument(
        "--threshold",
        choices=SEVERITIES,
        default=starter.THRESHOLD,
        metavar="LEVEL",
        help=f"lowest severity that blocks approval: {', '.join(SEVERITIES)} (default %(default)s)",
    )
    game.add_argument(
        "--max-loops", type=positive(int), default=MAX_LOOPS, metavar="N", help="round limit (default %(default)s)"
    )
    game.add_argument(
        "--max-cost",
        type=positive(int),
        default=MAX_FIX_COST,
        metavar="POINTS",
        help="change budget: each field a fix changes costs 1 point (default %(default)s)",
    )
    game.add_argument(
        "--out", type=Path, default=OUT_FILE, metavar="FILE", help="where an approved config goes (default %(default)s)"
    )

    return parser


def main(argv: Sequence[str] | None = None, *, console: Console | None = None, client: Any = None) -> int:
    parser = build_parser()

    def play_game(args: argparse.Namespace, llm: LLM) -> AuditState:
        options = AuditOptions(args.strict, args.threshold, args.max_loops, args.max_cost, not args.no_kb)
        state = run_audit(args.brief.strip(), llm, options, load_knowledge_base() if options.knowledge_base else None)
        save_if_approved(state, args.out)
        if llm.display.chatty:
            llm.display.line(
                f"approved config written to {args.out}" if state.saved_to else f"nothing written to {args.out}"
            )
        return state

    def check_out(args: argparse.Namespace) -> None:
        check_output_path(args.out)  # before the run starts: no call paid for, no trace opened

    return run_cli(argv, console, client, parser, play_game, starter.demo_responder, solution_result, check_out)


if __name__ == "__main__":
    raise SystemExit(main())
