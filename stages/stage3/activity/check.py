"""Check your work on the stage 3 exercise, offline: one line per task, passed or not, and what is missing.

::

    python -m stages.stage3.activity.check               # every task, against starter_workflow.py
    python -m stages.stage3.activity.check --task 4      # one task
    python -m stages.stage3.activity.check --solution    # every task, against solution_workflow.py

Each check plays a short game against your code with scripted players of its
own (not the demo's), built to need a known number of rounds, and looks at
what your code does: how many rounds it ran, whether it approved, what it
wrote, which tools it offered. It never reads your code's text, so any way of
doing a task that behaves right passes. Your rules are also run over odd
shapes (``odd_shapes()``), since a model may write anything. Exit code 0 when every task checked
passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import io
import json
import os
import shutil
import tempfile
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import multi_agent_system as mas
from machinery.demo import ScriptedClient, ToolCallSpec
from machinery.gateway import request_role
from machinery.text import clip, json_objects
from stages.stage3.activity.machinery import SEVERITIES

BLOCKING = SEVERITIES.index("medium")  # findings from here up block approval, as the games are played by default

LOOP_LIMIT = 5  # what EXERCISE.md asks for in task 4
COST_LIMIT = 30  # what EXERCISE.md asks for in the first stretch task: one point per changed field
SAVED_FILE = "secure_server.json"
TOKEN_CAP = ["--max-tokens", "20000"]  # ends a game that nothing else stops, in about 25 scripted rounds

# A config every version of the rules should pass, in normal mode.
GOOD: dict[str, Any] = {
    "server_name": "shop.example.com",
    "debug": False,
    "listen_ports": [80, 443],
    "redirect_http_to_https": True,
    "tls": {"min_version": "1.3"},
    "headers": {
        "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
        "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    },
    "admin": {"username": "shop-admin", "password_env": "SHOP_ADMIN_PASSWORD"},
    "cors": {"allowed_origins": ["https://shop.example.com"]},
    "server_tokens": False,
}


def with_changes(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(GOOD)
    config.update(changes)
    return config


def without_header(name: str) -> dict[str, Any]:
    config = copy.deepcopy(GOOD)
    del config["headers"][name]
    return config


# What task 2 asks the Red Team to notice: each is GOOD with one flaw the starter's rules miss.
PICKY_PROBES = {
    "TLS 1.0 allowed": with_changes(tls={"min_version": "1.0"}),
    "TLS 1.1 allowed": with_changes(tls={"min_version": "1.1"}),
    "no Strict-Transport-Security header": without_header("Strict-Transport-Security"),
    "no Content-Security-Policy header": without_header("Content-Security-Policy"),
}


# What a model may write where GOOD has a value: the shapes a rule must read without crashing.
ODD_VALUES: dict[str, Any] = {"None": None, "a list": [None, "x"], "a string": "yes", "a number": 0, "an object": {}}
_MISSING = object()


def odd_shapes() -> Iterator[tuple[str, dict[str, Any]]]:
    """(what is odd, config): GOOD with one value missing or of another type, at the top level and one
    level down (``tls.min_version``, each header, ...), and a config with nothing in it."""
    for key, value in GOOD.items():
        paths = [[key]] + ([[key, inner] for inner in value] if isinstance(value, dict) else [])
        for path in paths:
            for kind, odd in [("is missing", _MISSING), *((f"is {name}", v) for name, v in ODD_VALUES.items())]:
                if kind == "is an object" and isinstance(_at(GOOD, path), dict):
                    continue  # an object where one belongs is not odd
                yield f"{'.'.join(path)} {kind}", _with_value(path, odd)
    yield "nothing is set", {}


def _at(config: dict[str, Any], path: list[str]) -> Any:
    return config[path[0]] if len(path) == 1 else config[path[0]][path[1]]


def _with_value(path: list[str], value: Any) -> dict[str, Any]:
    config = copy.deepcopy(GOOD)
    holder = config if len(path) == 1 else config[path[0]]
    if value is _MISSING:
        del holder[path[-1]]
    else:
        holder[path[-1]] = copy.deepcopy(value)
    return config


def crash_on_odd_shapes(module: ModuleType) -> str | None:
    """Which rule raises on which odd shape, or None. A rule reads a model's config: anything can be in it."""
    rules = [(getattr(rule, "__name__", repr(rule)), rule) for rule in getattr(module, "RULES", [])]
    rules.append(("check_config", lambda config, strict: module.check_config(config)))
    for name, rule in rules:
        for shape, config in odd_shapes():
            for strict in (False, True):
                try:
                    rule(config, strict)
                except Exception as err:  # whatever a student's rule raises is the answer
                    return (
                        f"{name} crashes on a config where {shape}: {type(err).__name__}: {clip(str(err), 60)} "
                        "(read values with dict.get and isinstance)"
                    )
    return None


# ---------------------------------------------------------------------------
# Scripted players with a known script, and one game played against your code
# ---------------------------------------------------------------------------


@dataclass
class Game:
    """The Blue Team sends ``configs[0]``, then ``configs[1]`` and so on (the last one repeats).

    With ``kb_topics``, when a tool is offered it asks it about each topic and
    applies the ``setting`` in the answers; without a tool it changes nothing.
    The CISO approves when your rules find nothing blocking in the current
    config (in the solution, code decides and its words do not matter).
    """

    module: ModuleType
    configs: list[dict[str, Any]]
    kb_topics: list[str] = field(default_factory=list)
    rounds: int = 0  # Red Team calls: one per round
    current: dict[str, Any] | None = None
    offered_tools: bool = False
    tool_results: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def respond(self, request: dict[str, Any]) -> str | list[ToolCallSpec]:
        self.requests.append(request)
        role = request_role(request)
        if role == "blue_team":
            return self.blue(request)
        if role == "red_team":
            self.rounds += 1
            return json.dumps({"findings": []})
        if role == "ciso":
            task = str(request["messages"][-1].get("content") or "")
            return json.dumps({"approved": self.clean(), "feedback": "checked."}) if "Decision:" not in task else "ok."
        raise mas.AgentSystemError(f"the check's players do not know the role {role!r}")

    def blue(self, request: dict[str, Any]) -> str | list[ToolCallSpec]:
        messages = request["messages"]
        results = [str(m.get("content") or "") for m in messages if m["role"] == "tool"]
        tools = request.get("tools") or []
        self.offered_tools = self.offered_tools or bool(tools)
        if self.kb_topics and tools and not results and self.current is not None:
            function = tools[0]["function"]
            params = function.get("parameters", {}).get("required") or list(
                function.get("parameters", {}).get("properties", {})
            )
            return [(function["name"], dict.fromkeys(params, topic)) for topic in self.kb_topics]
        blue_turns = sum(1 for r in self.requests if request_role(r) == "blue_team" and not _tool_turn(r))
        config = copy.deepcopy(self.configs[min(blue_turns, len(self.configs)) - 1])
        if results:
            self.tool_results += results
            config = copy.deepcopy(self.current or config)
            for setting in _settings(results):
                config.update(copy.deepcopy(setting))
        self.current = config
        return json.dumps(config)

    def clean(self) -> bool:
        found = self.module.check_config(self.current) if self.current is not None else [None]
        return not [f for f in found if f is None or SEVERITIES.index(getattr(f, "severity", "high")) >= BLOCKING]


def _tool_turn(request: dict[str, Any]) -> bool:
    return any(m["role"] == "tool" for m in request["messages"])


def _settings(results: list[str]) -> list[dict[str, Any]]:
    found = []
    for text in results:
        if not text.startswith("error:"):
            for data in json_objects(text):
                setting = data.get("setting", data)
                found += [setting] if isinstance(setting, dict) else []
    return found


@dataclass
class Outcome:
    exit_code: int
    output: str
    game: Game
    folder: Path
    saved: Path


@contextlib.contextmanager
def _inside(folder: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def play(module: ModuleType, game: Game, argv: Sequence[str] = ()) -> Outcome:
    """One game of your code against ``game``'s players, in a fresh folder (traces and saved files go there)."""
    from rich.console import Console

    folder = Path(tempfile.mkdtemp(prefix="stage3-check-"))
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, color_system=None)
    with _inside(folder):
        code = module.main(list(argv), console=console, client=ScriptedClient(game.respond))
    return Outcome(code, buffer.getvalue(), game, folder, folder / SAVED_FILE)


def planted(count: int, *, churn: bool = False) -> list[dict[str, Any]]:
    """Configs that need ``count + 1`` rounds: round 1 has ``count`` unknown keys, and each round drops one."""
    rounds = []
    for done in range(count + 1):
        config = with_changes(**{f"legacy_option_{i}": True for i in range(done, count)})
        rounds.append(config)
    if churn:  # every round rewrites about a dozen fields, and never fixes the last problem
        rounds = [_churned(n) for n in range(1, 12)]
    return rounds


def _churned(n: int) -> dict[str, Any]:
    odd = n % 2 == 1
    config = with_changes(
        server_name=f"shop-{n}.example.com",
        server_tokens=False,
        legacy_option_0=n,  # an unknown key: a blocking finding that stays open
        admin={"username": "shop-admin" if odd else "ops-admin", "password_env": "PW_A" if odd else "PW_B"},
        cors={"allowed_origins": ["https://shop.example.com"] if odd else ["https://www.example.com"]},
        listen_ports=[80, 443] if odd else [443, 80],
    )
    headers = config["headers"]
    headers["Strict-Transport-Security"] = f"max-age={63072000 if odd else 31536000}; includeSubDomains"
    headers["Content-Security-Policy"] = "default-src 'self'" + ("; frame-ancestors 'none'" if odd else "")
    headers["X-Frame-Options"] = "DENY" if odd else "SAMEORIGIN"
    headers["Referrer-Policy"] = "no-referrer" if odd else "same-origin"
    headers["Permissions-Policy"] = "camera=()" if odd else "geolocation=()"
    return config


# ---------------------------------------------------------------------------
# The tasks
# ---------------------------------------------------------------------------

Result = tuple[bool, str]


def _good_passes(module: ModuleType) -> str | None:
    found = module.check_config(copy.deepcopy(GOOD))
    if found:
        return "your rules flag a config with nothing wrong in it: " + ", ".join(str(f.id) for f in found)
    return None


def task_run(module: ModuleType) -> Result:
    from rich.console import Console

    folder = Path(tempfile.mkdtemp(prefix="stage3-check-"))
    with _inside(folder):
        code = module.main(["--demo", *TOKEN_CAP], console=Console(file=io.StringIO()))
    traces = list((folder / "logs").glob("*.jsonl"))
    if code not in (mas.EXIT_APPROVED, mas.EXIT_NOT_APPROVED):
        return False, f"the offline game ended with exit code {code}, not 0 or 1"
    events = [json.loads(line) for trace in traces for line in trace.read_text().splitlines()]
    ends = [e for e in events if e.get("event") == "end"]
    if not ends:
        return False, "the game left no trace with an 'end' event in logs/"
    end = ends[-1]
    if code != mas.EXIT_APPROVED:  # the scripted players fix what a finding says: a sound game ends approved
        still = [f"{f.get('id')} ({f.get('field')})" for f in end.get("open_findings") or [] if isinstance(f, dict)]
        return False, (
            f"the offline game ended without approval: {end.get('stop_reason')} ({end.get('detail')}) "
            f"after {end.get('rounds')} rounds"
            + (f"; still open: {clip(', '.join(still), 120)}" if still else "")
            + ". The offline Blue Team fixes the field a finding names, with the value its description gives"
        )
    return True, f"the offline game ran and was approved in round {end.get('rounds')}"


def task_pickier(module: ModuleType) -> Result:
    problem = _good_passes(module) or crash_on_odd_shapes(module)
    if problem:
        return False, problem
    caught = {name: module.check_config(copy.deepcopy(config)) for name, config in PICKY_PROBES.items()}
    flagged = [name for name, found in caught.items() if found]
    if not flagged:
        return False, "no rule catches any of: " + "; ".join(PICKY_PROBES) + " (add one to RULES)"
    probe = flagged[0]
    outcome = play(module, Game(module, [PICKY_PROBES[probe], GOOD]), TOKEN_CAP)
    missing = [f.id for f in caught[probe] if str(f.id) not in outcome.output]
    if missing:
        return False, f"the rules find {', '.join(missing)} in a config with {probe}, but the game never reports it"
    missed = [name for name in PICKY_PROBES if name not in flagged]
    return True, f"caught: {'; '.join(flagged)}" + (f" (not yet: {'; '.join(missed)})" if missed else "")


def task_knowledge_base(module: ModuleType) -> Result:
    problem = _good_passes(module)
    if problem:
        return False, problem
    flawed = with_changes(debug=True, admin={"username": "admin", "password_env": "ADMIN_PASSWORD"})
    game = Game(module, [flawed], kb_topics=["debug", "credentials"])
    outcome = play(module, game, TOKEN_CAP)
    if not game.offered_tools:
        return False, "the Blue Team was offered no tool: give it one that looks up secure_defaults.json"
    if not game.tool_results:
        return False, "the Blue Team's tool was offered but its results never came back to the model"
    errors = [r for r in game.tool_results if r.startswith("error:")]
    if not _settings(game.tool_results):
        detail = f" (it said: {clip(errors[0], 100)})" if errors else ""
        return False, f"asked about debug and credentials, the tool sent back no JSON setting to apply{detail}"
    if outcome.exit_code != mas.EXIT_APPROVED:
        return False, "the Blue Team applied what the tool sent back, but the config was still not approved"
    return True, f"the tool was called {len(game.tool_results)} time(s) and its settings fixed the config"


def task_limit(module: ModuleType) -> Result:
    problem = _good_passes(module)
    if problem:
        return False, problem
    fits = play(module, Game(module, planted(LOOP_LIMIT - 1)), TOKEN_CAP)
    over = play(module, Game(module, planted(LOOP_LIMIT)), TOKEN_CAP)
    if over.exit_code == mas.EXIT_APPROVED or over.game.rounds > LOOP_LIMIT:
        return False, (
            f"a config that needs {LOOP_LIMIT + 1} rounds ran {over.game.rounds} rounds"
            f"{' and was approved' if over.exit_code == 0 else ''}: the game must stop after {LOOP_LIMIT}, in code"
        )
    if fits.exit_code != mas.EXIT_APPROVED or fits.game.rounds != LOOP_LIMIT:
        return False, f"a config that needs exactly {LOOP_LIMIT} rounds was not approved in round {LOOP_LIMIT}"
    if over.game.rounds != LOOP_LIMIT:
        return False, f"a config that needs {LOOP_LIMIT + 1} rounds stopped after {over.game.rounds}, not {LOOP_LIMIT}"
    return True, f"{LOOP_LIMIT} rounds are allowed and the {LOOP_LIMIT + 1}th never starts"


def task_cost(module: ModuleType) -> Result:
    problem = _good_passes(module)
    if problem:
        return False, problem
    cheap = play(module, Game(module, planted(1)), TOKEN_CAP)
    if cheap.exit_code != mas.EXIT_APPROVED:
        return False, "a cheap fix (one field, round 2) was not approved"
    costly = play(module, Game(module, planted(0, churn=True)), TOKEN_CAP)
    if costly.exit_code == mas.EXIT_APPROVED:
        return False, "a Blue Team that rewrites a dozen fields a round was approved"
    if costly.game.rounds >= LOOP_LIMIT:
        return False, (
            f"a Blue Team that changes about 12 fields a round ran {costly.game.rounds} rounds: past "
            f"{COST_LIMIT} change points (round 4) the CISO should reject"
        )
    return True, f"rejected after {costly.game.rounds} rounds of costly fixes; a cheap fix still passes"


def task_save(module: ModuleType) -> Result:
    problem = _good_passes(module)
    if problem:
        return False, problem
    approved = play(module, Game(module, planted(1)), TOKEN_CAP)
    if approved.exit_code != mas.EXIT_APPROVED:
        return False, "the game did not approve a config that needs 2 rounds, so nothing could be saved"
    if not approved.saved.exists():
        return False, f"an approved config was not written to {SAVED_FILE}"
    try:
        saved = json.loads(approved.saved.read_text(encoding="utf-8"))
    except ValueError as err:
        return False, f"{SAVED_FILE} is not valid JSON ({err})"
    if saved != approved.game.current:
        return False, f"{SAVED_FILE} does not hold the approved config"
    rejected = play(module, Game(module, planted(LOOP_LIMIT + 5)), TOKEN_CAP)
    if rejected.exit_code == mas.EXIT_APPROVED:
        return False, "a config that never gets fixed was approved"
    if rejected.saved.exists():
        return False, f"{SAVED_FILE} was written although the config was not approved"
    return True, "written, valid JSON, only on approval"


TASKS: dict[int, tuple[str, Callable[[ModuleType], Result]]] = {
    1: ("run it", task_run),
    2: ("a pickier Red Team", task_pickier),
    3: ("a knowledge base for the Blue Team", task_knowledge_base),
    4: ("a round limit in code", task_limit),
    5: ("stretch: a change budget", task_cost),
    6: ("stretch: save the approved config", task_save),
}


def run_task(module: ModuleType, number: int) -> Result:
    """A task's result; your code raising is a failed task with the error, not a crashed checker."""
    try:
        return TASKS[number][1](module)
    except Exception as err:  # anything the student's code raises is reported, whatever it is
        return False, f"your code raised {type(err).__name__}: {clip(str(err), 160)}"


def main(argv: Sequence[str] | None = None, *, out: Any = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.stage3.activity.check",
        description="Check the stage 3 exercise offline: one line per task.",
    )
    parser.add_argument("--task", type=int, choices=sorted(TASKS), help="check one task only")
    parser.add_argument("--solution", action="store_true", help="check solution_workflow.py instead")
    args = parser.parse_args(argv)
    out = out or __import__("sys").stdout
    name = "solution_workflow" if args.solution else "starter_workflow"
    try:
        module = importlib.import_module(f"stages.stage3.activity.{name}")
    except Exception as err:  # a syntax error in the student's file is the most likely one
        out.write(f"cannot import {name}.py: {type(err).__name__}: {err}\n")
        return 1
    results = {n: run_task(module, n) for n in ([args.task] if args.task else sorted(TASKS))}
    width = shutil.get_terminal_size((80, 24)).columns  # the terminal's, or COLUMNS, or 80 when piped
    for number, (passed, detail) in results.items():
        out.write(report_line(number, passed, detail, width) + "\n")
    return 0 if all(passed for passed, _ in results.values()) else 1


def report_line(number: int, passed: bool, detail: str, width: int = 80) -> str:
    """One task's result: its number, name and verdict on the first line, the detail wrapped after it
    at word boundaries, each further line indented, so that no line is wider than ``width``.

    >>> print(report_line(2, False, "no rule catches any of: TLS 1.0 allowed; no Strict-Transport-Security header", 60))
    task 2 · a pickier Red Team                 NOT YET · no rule
        catches any of: TLS 1.0 allowed; no
        Strict-Transport-Security header
    """
    title = f"task {number} · {TASKS[number][0]}".ljust(TITLE_WIDTH)
    text = f"{title} {'passed' if passed else 'NOT YET'} · {detail}"
    lines = textwrap.wrap(
        text, max(width, TITLE_WIDTH + 20), subsequent_indent=" " * 4, break_long_words=False, break_on_hyphens=False
    )
    return "\n".join(lines)


TITLE_WIDTH = max(len(f"task {n} · {title}") for n, (title, _) in TASKS.items())  # the verdicts line up


if __name__ == "__main__":
    raise SystemExit(main())
