"""What the stage 3 programs share on the command line: flags, settings, display, model access.

The flags and environment variables are those of ``multi_agent_system.py``
(``--model``, ``--demo``, ``--verbose``, ``--log-dir``, ``--max-tokens``,
``--timeout``; ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_MODEL``), and
the settings are built by its own ``settings_from_env``, so both stages
choose a server the same way.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

import multi_agent_system as mas
from machinery.config import load_env_file, positive, settings_from_env
from machinery.demo import Responder, ScriptedClient
from machinery.gateway import LLM
from machinery.output import Display, Mode, Trace, describe_message, new_run_id

ENVIRONMENT_HELP = """real models (environment or .env):
  OPENAI_API_KEY=sk-...                      OpenAI
  OPENAI_BASE_URL=http://localhost:11434/v1  any OpenAI-compatible server:
  OPENAI_MODEL=llama3.2                      Ollama, LM Studio, llama.cpp, vLLM
without either, a scripted demo model answers (offline, free, not a real LLM)"""


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every stage 3 program takes, spelled as in multi_agent_system.py."""
    models = parser.add_argument_group("models")
    models.add_argument("--model", help=f"model for every agent (default: OPENAI_MODEL or {mas.DEFAULT_MODEL})")
    models.add_argument("--demo", action="store_true", help="use the scripted demo model even if a key is set")
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--max-tokens",
        type=positive(int),
        default=mas.MAX_TOTAL_TOKENS,
        metavar="N",
        help=f"token budget for the whole run (default {mas.MAX_TOTAL_TOKENS})",
    )
    limits.add_argument("--timeout", type=positive(float), metavar="SECONDS", help="time limit for the whole run")
    out = parser.add_argument_group("output")
    out.add_argument(
        "-v", "--verbose", action="store_true", help="show every prompt, model call, tool call and handoff"
    )
    out.add_argument(
        "--log-dir", type=Path, default=Path("logs"), metavar="DIR", help="where traces go (default logs/)"
    )


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed flags, or the exit code when argparse has already said what was wrong (or shown --help)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exit_:
        return mas.EXIT_USAGE if exit_.code else mas.EXIT_APPROVED


class Stage3Display(Display):
    """The chapter's display, with a --verbose that suits conversations which grow turn by turn.

    Each system prompt is shown in full the first time, then named; a role's
    prompt that only grew since its last call shows only the new messages.
    Without this, every turn reprinted every prompt: hundreds of lines a round.
    """

    def __init__(self, console: Console, mode: Mode = "normal", errors: Console | None = None):
        super().__init__(console, mode, errors)
        self._systems_shown: set[str] = set()
        self._last_prompt: dict[str, list[dict[str, Any]]] = {}

    def prompt(self, role: str, messages: list[dict[str, Any]], max_tokens: int) -> None:
        if self.mode != "verbose":
            return
        before = self._last_prompt.get(role, [])
        grew = len(messages) > len(before) and messages[: len(before)] == before
        new = messages[len(before) :] if grew else messages
        parts = [f"({len(before)} earlier message(s), as shown above)\n"] if grew and before else []
        for message in new:
            content = str(message.get("content") or "")
            if message["role"] == "system" and content in self._systems_shown:
                parts.append("[system] (the same system prompt as before)\n")
                continue
            if message["role"] == "system":
                self._systems_shown.add(content)
            parts.append(describe_message(message))
        self._last_prompt[role] = list(messages)
        self.panel("".join(parts), f"prompt → {role} (max_tokens {max_tokens})", "dim")


def close_run(trace: Trace, stop_reason: str, detail: str) -> None:
    """Close a run's trace. One that a refusal or a bug left without its ``end`` event gets one now:
    every trace that was opened ends with ``end``, and nothing comes after it."""
    if not trace.ended:
        trace.event("end", stop_reason=stop_reason, detail=detail)
    trace.close()


def make_display(args: argparse.Namespace, console: Console) -> Display:
    return Stage3Display(console, "verbose" if args.verbose else "normal")


def open_run(args: argparse.Namespace, display: Display, client: Any, demo_responder: Callable[[], Responder]) -> LLM:
    """Settings, trace and model access for one run. Raises UsageError for bad configuration.

    With no key and no server address, ``demo_responder()`` answers instead of a model.
    """
    load_env_file()
    settings = settings_from_env(
        dict(os.environ),
        model=args.model,
        demo=args.demo,
        max_tokens=args.max_tokens,
        timeout=args.timeout,
        log_dir=args.log_dir,
    )
    trace = Trace.in_dir(settings.log_dir, new_run_id())
    if settings.demo and client is None:
        client = ScriptedClient(demo_responder())
    return LLM(settings, display, trace, client=client)
