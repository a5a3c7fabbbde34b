"""What the stage 3 programs share on the command line: flags, settings, banner, spending table.

The flags and environment variables are those of ``multi_agent_system.py``
(``--model``, ``--demo``, ``--verbose``, ``--log-dir``, ``--max-tokens``,
``--timeout``; ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_MODEL``), and
the settings are built by its own ``settings_from_args``, so both stages
choose a server the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dotenv import find_dotenv, load_dotenv
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

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
    limits.add_argument("--max-tokens", type=mas._positive(int), default=mas.MAX_TOTAL_TOKENS, metavar="N",
                        help=f"token budget for the whole run (default {mas.MAX_TOTAL_TOKENS})")
    limits.add_argument("--timeout", type=mas._positive(float), metavar="SECONDS", help="time limit for the whole run")
    out = parser.add_argument_group("output")
    out.add_argument("-v", "--verbose", action="store_true", help="show every prompt, model call, tool call and handoff")
    out.add_argument("--log-dir", type=Path, default=Path("logs"), metavar="DIR", help="where traces go (default logs/)")


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed flags, or the exit code when argparse has already said what was wrong (or shown --help)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exit_:
        return mas.EXIT_USAGE if exit_.code else mas.EXIT_APPROVED


def settings_for(args: argparse.Namespace, environ: Mapping[str, str]) -> mas.Settings:
    """Settings from our flags, through multi_agent_system's own rules; raises UsageError."""
    # Start from that parser's defaults, so flags we do not offer keep their usual values.
    base = vars(mas.build_parser().parse_args([]))
    base.update(model=args.model, demo=args.demo, max_tokens=args.max_tokens, timeout=args.timeout,
                log_dir=args.log_dir, max_cost=None)
    return mas.settings_from_args(argparse.Namespace(**base), dict(environ))


def make_display(args: argparse.Namespace, console: Console) -> mas.Display:
    """Output to ``console``; one-line errors to stderr when ``console`` is the terminal's stdout."""
    errors = Console(stderr=True) if console.file is sys.stdout else console
    return mas.Display(console, "verbose" if args.verbose else "normal", errors)


def open_run(
    args: argparse.Namespace, display: mas.Display, client: Any, demo_responder: Callable[[], mas.Responder]
) -> mas.LLM:
    """Settings, trace and model access for one run. Raises UsageError for bad configuration.

    With no key and no server address, ``demo_responder()`` answers instead of a model.
    """
    dotenv_path = find_dotenv(usecwd=True)
    if dotenv_path:
        load_dotenv(dotenv_path)  # real environment variables win over .env
    settings = settings_for(args, os.environ)
    trace = mas.Trace.in_dir(settings.log_dir, mas.new_run_id())
    if settings.demo and client is None:
        client = mas.ScriptedClient(demo_responder())
    return mas.LLM(settings, display, trace, client=client)


def banner(llm: mas.LLM) -> None:
    settings, console = llm.settings, llm.display.console
    if settings.demo:
        console.print(Panel(
            Text("Scripted demo model, not a real LLM: its replies are canned so the workflow can be "
                 "watched offline. Set OPENAI_API_KEY or OPENAI_BASE_URL to use a real model."),
            title="offline demo", border_style="red",
        ))
    console.print(Text(f"run {llm.trace.run_id} · {settings.server()} · model {settings.model_for('any')}", style="dim"))
    if llm.trace.path:
        console.print(Text(f"trace: {llm.trace.path}", style="dim"))


def spending_table(ledger: mas.Ledger) -> Table:
    """Calls, tokens, cost and time per agent, with a total row."""
    table = Table(title="Spending by agent")
    for column in ("agent", "calls", "tokens in", "tokens out", "cost", "seconds"):
        table.add_column(column, justify="left" if column == "agent" else "right")
    rows = [(name, stats) for name, stats in ledger.roles.items()]
    for name, stats in rows:
        mark = "~" if stats.estimated else ""
        table.add_row(name, str(stats.calls), f"{mark}{stats.prompt_tokens}", f"{mark}{stats.completion_tokens}",
                      mas.format_cost(stats.cost_usd), f"{stats.seconds:.1f}")
    table.add_row("total", str(ledger.calls), str(ledger.prompt_tokens), str(ledger.completion_tokens),
                  mas.format_cost(ledger.cost_usd), f"{sum(s.seconds for _, s in rows):.1f}", style="bold")
    return table


def exit_code_for(stop_reason: str, success: str) -> int:
    """0 for ``success``, 130 for Ctrl-C, 2 for configuration errors, 1 for any other stop."""
    if stop_reason == success:
        return mas.EXIT_APPROVED
    if stop_reason == "interrupted":
        return mas.EXIT_INTERRUPTED
    if stop_reason == "config_error":
        return mas.EXIT_USAGE
    return mas.EXIT_NOT_APPROVED
