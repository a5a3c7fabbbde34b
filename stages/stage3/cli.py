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

ENVIRONMENT_HELP = """real models (environment or .env):
  OPENAI_API_KEY=sk-...                                            OpenAI
  OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.2  Ollama, LM Studio, llama.cpp, vLLM
without either, a scripted demo model answers (offline, free, not a real LLM)"""


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every stage 3 program takes, spelled as in multi_agent_system.py."""
    models = parser.add_argument_group("models")
    models.add_argument("--model", help=f"model for every agent (default: OPENAI_MODEL or {mas.DEFAULT_MODEL})")
    models.add_argument("--demo", action="store_true", help="use the scripted demo model even if a key is set")
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--max-tokens",
        type=mas.positive(int),
        default=mas.MAX_TOTAL_TOKENS,
        metavar="N",
        help=f"token budget for the whole run (default {mas.MAX_TOTAL_TOKENS})",
    )
    limits.add_argument("--timeout", type=mas.positive(float), metavar="SECONDS", help="time limit for the whole run")
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


def make_display(args: argparse.Namespace, console: Console) -> mas.Display:
    return mas.Display(console, "verbose" if args.verbose else "normal")


def open_run(
    args: argparse.Namespace, display: mas.Display, client: Any, demo_responder: Callable[[], mas.Responder]
) -> mas.LLM:
    """Settings, trace and model access for one run. Raises UsageError for bad configuration.

    With no key and no server address, ``demo_responder()`` answers instead of a model.
    """
    mas.load_env_file()
    settings = mas.settings_from_env(
        dict(os.environ),
        model=args.model,
        demo=args.demo,
        max_tokens=args.max_tokens,
        timeout=args.timeout,
        log_dir=args.log_dir,
    )
    trace = mas.Trace.in_dir(settings.log_dir, mas.new_run_id())
    if settings.demo and client is None:
        client = mas.ScriptedClient(demo_responder())
    return mas.LLM(settings, display, trace, client=client)
