"""The command line: ``python multi_agent_system.py "task"`` and every flag, dispatched to the module that does it."""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from machinery.batch import BATCH_CONCURRENCY, main_batch
from machinery.classroom import add_classroom_flags, attach_classroom
from machinery.compare import compare_table, plain_call, side_by_side
from machinery.config import (
    check_output_path,
    load_env_file,
    positive,
    read_task,
    save_beside_trace,
    settings_from_args,
    write_atomically,
)
from machinery.demo import DEMO_SCENARIOS, Responder, ScriptedClient, demo_script
from machinery.estimate import main_estimate, preview_line, spend_preview
from machinery.gateway import LLM, openai_client, sdk_retries_shown
from machinery.output import Display, Mode, Trace, new_run_id, run_summary
from machinery.replay import recorded_task, replay_setup, show_or_draw
from machinery.stream import StreamingClient
from multi_agent_system import (
    DEFAULT_MODEL,
    EXIT_APPROVED,
    EXIT_INTERRUPTED,
    EXIT_NOT_APPROVED,
    EXIT_USAGE,
    MAX_ITERATIONS,
    MAX_PLANS,
    MAX_TOTAL_TOKENS,
    ROLES,
    Gateway,
    SharedState,
    UsageError,
    orchestrate,
)

if TYPE_CHECKING:
    from rich.console import Console

EPILOG = """quickstart:
  pip install -r requirements.txt
  python multi_agent_system.py "Write a haiku about agents"     (no key: scripted demo model)

real models (environment or .env):
  OPENAI_API_KEY=sk-...                                          OpenAI
  OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.2  Ollama (no key needed)
  OPENAI_BASE_URL=http://localhost:1234/v1                       LM Studio
  OPENAI_BASE_URL=http://localhost:8080/v1                       llama.cpp server
  {role_envs}{pad}one model per role

exit codes: 0 approved, 1 stopped without approval, 2 usage or configuration error, 130 interrupted
  --batch: 0 every task approved, 1 some task not, 2 bad file or a configuration error, 130 interrupted
traces: one JSON line per event in logs/<run id>.jsonl"""


def exit_code_for(stop_reason: str | None, success: str = "approved") -> int:
    """0 for success, 130 for Ctrl-C, 2 for a configuration error, 1 for any other stop."""
    if stop_reason == success:
        return EXIT_APPROVED
    if stop_reason == "interrupted":
        return EXIT_INTERRUPTED
    if stop_reason in ("config_error", "replay_mismatch"):
        return EXIT_USAGE
    return EXIT_NOT_APPROVED


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="multi_agent_system.py",
        description="A Planner, a Worker and a Critic work one task together, under hard budgets.",
        epilog=EPILOG.format(role_envs=" / ".join(r.env for r in ROLES.values()), pad="  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("task", nargs="?", help='what to do, in quotes; "-" reads it from standard input')
    models = p.add_argument_group("models")
    models.add_argument("--model", help=f"model for every role (default: OPENAI_MODEL or {DEFAULT_MODEL})")
    for role in ROLES.values():
        models.add_argument(role.flag, help=f"model for the {role.name} (default: {role.env} or --model)")
    models.add_argument("--demo", action="store_true", help="use the scripted demo model even if a key is set")
    models.add_argument(
        "--demo-scenario",
        choices=sorted(DEMO_SCENARIOS),
        help="which path the demo plays (implies --demo; default revise)",
    )
    limits = p.add_argument_group("limits")
    for flag, default, help_text in (
        ("--max-iterations", MAX_ITERATIONS, "worker/critic rounds"),
        ("--max-tokens", MAX_TOTAL_TOKENS, "token budget for the whole run"),
        ("--max-plans", MAX_PLANS, "plans before giving up"),
    ):
        limits.add_argument(
            flag, type=positive(int), default=default, metavar="N", help=f"{help_text} (default {default})"
        )
    limits.add_argument(
        "--max-cost",
        type=positive(float),
        metavar="USD",
        help="cost ceiling in dollars (needs a model with a known price)",
    )
    limits.add_argument("--timeout", type=positive(float), metavar="SECONDS", help="time limit for the whole run")
    out = p.add_argument_group("output")
    shown = out.add_mutually_exclusive_group()
    shown.add_argument("-v", "--verbose", action="store_true", help="show full prompts, replies, retries and clamps")
    shown.add_argument("-q", "--quiet", action="store_true", help="print only the approved result")
    shown.add_argument("--json", action="store_true", help="print one JSON object describing the run")
    out.add_argument("--output", type=Path, metavar="FILE", help="also write the approved result to FILE")
    out.add_argument(
        "--log-dir", type=Path, default=Path("logs"), metavar="DIR", help="where traces go (default logs/)"
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="also send the task once, unplanned and unreviewed, and show both results side by side",
    )
    add_batch_stream_estimate_arguments(p)
    add_classroom_flags(p)  # --step, --human, --show, --replay, --diagram
    return p


def add_batch_stream_estimate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stream", action="store_true", help="show the worker's reply as it is written")
    p.add_argument(
        "--estimate",
        action="store_true",
        help="print the fewest and most calls, tokens and dollars the run can spend, then exit (no call, no key)",
    )
    batch = p.add_argument_group("batch (many tasks, one key)")
    batch.add_argument(
        "--batch", type=Path, metavar="FILE", help='run every task in FILE: one per line, or JSONL {"task": ...}'
    )
    batch.add_argument(
        "--concurrency",
        type=positive(int),
        default=BATCH_CONCURRENCY,
        metavar="N",
        help=f"tasks running at once (default {BATCH_CONCURRENCY})",
    )
    batch.add_argument("--batch-max-tokens", type=positive(int), metavar="N", help="token ceiling for the whole batch")
    batch.add_argument("--batch-max-cost", type=positive(float), metavar="USD", help="cost ceiling for the whole batch")
    batch.add_argument("--rpm", type=positive(int), metavar="N", help="requests per minute, all tasks together")
    batch.add_argument("--tpm", type=positive(int), metavar="N", help="tokens per minute, all tasks together")


def ctrl_c_exits(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a program's ``main`` so that Ctrl-C where no run catches it (start-up, the last
    lines of output) exits 130 with one line instead of a traceback. A run that is under
    way catches Ctrl-C itself, to write its trace's ``end`` event and keep its work."""

    @functools.wraps(main)
    def guarded(*args: Any, **kwargs: Any) -> int:
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            sys.stderr.write("interrupted: stopped with Ctrl-C\n")
            return EXIT_INTERRUPTED

    return guarded


@ctrl_c_exits
def main(
    argv: list[str] | None = None,
    *,
    console: Console | None = None,
    client: Any = None,
    loop: Callable[[str, Gateway], SharedState] = orchestrate,
    script: Callable[[str], Responder] = demo_script,
) -> int:
    """The command line. ``console`` and ``client`` let tests capture output and fake the API;
    ``loop`` and ``script`` let a variant (stages/variants/) swap the orchestrator and its demo replies."""
    try:
        args = build_parser().parse_args(argv)  # before rich is imported: --help stays fast
    except SystemExit as exit_:  # argparse has printed its message; --help exits 0
        return EXIT_USAGE if exit_.code else EXIT_APPROVED
    from rich.console import Console

    console = console or Console()
    mode: Mode = "verbose" if args.verbose else "quiet" if args.quiet else "json" if args.json else "normal"
    display = Display(console, mode)
    if args.show or args.diagram:  # a recorded run: no task, no model, no key
        return show_or_draw(args, display, sys.stdin)
    if args.estimate or args.batch:
        return main_estimate(args, display) if args.estimate else main_batch(args, display, client)
    try:
        load_env_file(display.warn)
        if args.replay and not args.task:  # the one task a recording can replay is its own
            raise UsageError(
                f"--replay needs the recorded task: try  --replay {args.replay} {shlex.quote(recorded_task(args.replay))}"
            )
        task = read_task(args.task, sys.stdin)
        if args.output:
            check_output_path(args.output)
        settings = settings_from_args(args, dict(os.environ))
        if args.replay:
            settings, client = replay_setup(args.replay, settings)
        run_id = new_run_id()
        trace = Trace.in_dir(settings.log_dir, run_id)
    except UsageError as err:
        display.error(str(err))
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C while the task was still being typed into stdin
        display.error("interrupted before the run started: nothing was sent")
        return EXIT_INTERRUPTED
    if settings.demo and client is None:
        client = ScriptedClient(script(settings.demo_scenario or "revise"))
    if args.stream:
        client = StreamingClient(client or openai_client(settings), display)
    state: SharedState | None = None
    single, in_plain_call = None, False
    try:
        display.banner(settings, run_id, trace.path)  # says plainly when the scripted model stands in
        if display.chatty:
            free = f" on {settings.default_model} (the demo itself is free)" if settings.demo else ""
            display.line(preview_line(spend_preview(settings, task)) + free, "dim")
        if settings.demo and set(settings.models.values()) != {DEFAULT_MODEL}:
            why = "--demo was given" if args.demo or args.demo_scenario else "no OPENAI_API_KEY or OPENAI_BASE_URL"
            display.warn(f"model names are ignored: the scripted demo model runs ({why})")
        with sdk_retries_shown(display, trace):
            if args.compare:  # before the loop, and before its gateway: what one plain call would do
                in_plain_call = True
                single = plain_call(task, settings, display, trace, client)
                in_plain_call = False
            llm = LLM(settings, display, trace, client=client)
            attach_classroom(llm, args, sys.stdin)
            state = loop(task, llm)
        return report(state, llm, args, mode, single)
    except KeyboardInterrupt:  # the loop ends its own run on Ctrl-C: this is the plain call, the banner or the report
        if in_plain_call:
            display.error("interrupted during the plain call for --compare: the loop did not start")
        else:
            display.error(f"interrupted; the trace is kept in {trace.path}")
        return EXIT_INTERRUPTED
    except OSError as err:  # the result could not be written: it is kept beside the trace
        rescued = save_beside_trace(trace, (state["result"] or "") + "\n") if state else None
        kept = f"; the result was saved to {rescued}" if rescued else ""
        where = err.filename or "the output"  # no file name: writing to the terminal or a pipe failed
        display.error(f"cannot write {where}: {err.strerror}{kept}")
        return EXIT_USAGE
    finally:
        trace.close()


def report(
    state: SharedState, llm: LLM, args: argparse.Namespace, mode: Mode, single: dict[str, Any] | None = None
) -> int:
    """Show how the run ended (beside one plain call, with --compare), write the approved result, return the exit code."""
    both = None if single is None else side_by_side(state["task"], single, state, llm)
    display, console = llm.display, llm.display.console
    server_fault = state["stop_reason"] in ("config_error", "api_error", "replay_mismatch")
    if server_fault:
        display.error(state["stop_detail"] or str(state["stop_reason"]))
    approved = state["status"] == "approved"
    if args.output and approved:
        write_atomically(args.output, (state["result"] or "") + "\n")
    if mode == "json":
        console.print_json(json.dumps(run_summary(state, llm) | ({"compare": both} if both else {})))
    elif mode == "quiet":
        if approved:
            display.line(state["result"] or "", soft_wrap=True)
        elif not server_fault:  # that one line is already out
            display.error(f"stopped without approval: {state['stop_reason']} ({state['stop_detail']})")
    else:
        display.summary(state, llm.ledger, llm.trace.path)
        if both is not None:
            console.print(compare_table(both))
        if args.output and approved:
            display.line(f"result written to {args.output}", "dim")
    return exit_code_for(state["stop_reason"])
