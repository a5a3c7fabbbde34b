"""The command line of a run whose agents are services (stages/variants/message_passing.py).

``"task" [--broker URL]``       the orchestrator: the chapter's flags, the loop's agents reached as services
``--resume RUN_ID``            continue a saved run; steps already answered are not asked again
``--batch FILE [--broker URL]`` many runs at once, spread over whatever services are running
``serve ROLE --broker URL``     one role's service: takes its requests from the broker's work queue

Without ``--broker`` the three services run as threads in this process, over the
in-process bus, and the run's state is saved under ``--log-dir``. The broker's URL
may carry a user and password or a token (``nats://user:pass@host:4222``); they are
sent to the broker only, never shown, traced or exported. ``NATS_URL`` is the default.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from machinery import cli, telemetry
from machinery.batch import BatchBudget, BatchProgress, batch_exit_code, batch_table, run_batch
from machinery.bus import ACK_WAIT_S, Bus, BusBase, BusError, Service, open_bus
from machinery.classroom import attach_classroom
from machinery.config import (
    check_output_path,
    load_env_file,
    positive,
    read_batch,
    read_task,
    settings_from_args,
    settings_from_env,
)
from machinery.estimate import main_estimate
from machinery.gateway import openai_sdk
from machinery.output import Display, Mode, Trace, new_run_id
from machinery.replay import show_or_draw
from machinery.services import AGENTS, AgentService, RemoteGateway, load_run, saved_settings
from multi_agent_system import EXIT_APPROVED, EXIT_USAGE, Gateway, Settings, SharedState, UsageError

if TYPE_CHECKING:
    from rich.console import Console

PROG = "python -m stages.variants.message_passing"
Loop = Callable[[str, Gateway], SharedState]


def add_arguments(p: argparse.ArgumentParser) -> None:
    where = p.add_argument_group("services (agents as services over a broker)")
    where.add_argument(
        "--broker",
        default=os.environ.get("NATS_URL"),
        metavar="URL",
        help="NATS server with JetStream, e.g. nats://127.0.0.1:4222 (default: NATS_URL; none: services run in this process)",
    )
    where.add_argument("--resume", metavar="RUN_ID", help="continue a saved run that was killed or stopped")


def main(
    argv: list[str] | None = None,
    *,
    loop: Loop,
    console: Console | None = None,
    client: Any = None,
    stdin: Any = None,
) -> int:
    """The orchestrator's command line, or ``serve ROLE``. ``client`` is a test's fake model, for in-process services."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve(argv[1:], client=client)
    parser = cli.build_parser()
    parser.prog = PROG
    parser.description = (
        "The chapter's loop with each agent a service it sends the state to. "
        f"`{PROG} serve ROLE --broker URL` runs one role's service."
    )
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_APPROVED
    from rich.console import Console

    stdin = stdin or sys.stdin
    mode: Mode = "verbose" if args.verbose else "quiet" if args.quiet else "json" if args.json else "normal"
    display = Display(console or Console(), mode)
    if args.show or args.diagram:
        return show_or_draw(args, display, stdin)
    if args.estimate:
        return main_estimate(args, display)
    chosen = [flag for flag in ("step", "replay", "stream", "compare") if getattr(args, flag)]
    if chosen:
        flags = ", ".join(f"--{flag}" for flag in chosen)
        display.error(f"{flags}: not here, where the model calls happen in the services; the chapter has it")
        return EXIT_USAGE
    try:
        load_env_file(display.warn)
        settings = settings_from_args(args, dict(os.environ))
        tasks = read_batch(args.batch) if args.batch else []
        task = read_task(args.task, stdin) if not (args.batch or args.resume) else ""
        if args.output:
            check_output_path(args.output)
        if args.broker:
            telemetry.enable("multi-agent-orchestrator")
        bus = open_bus(args.broker, store=settings.log_dir / "state")
    except (UsageError, BusError) as err:
        display.error(str(err))
        return EXIT_USAGE
    services = [] if args.broker else local_services(bus, settings, client)
    try:
        if args.batch:
            return batch(args, display, settings, bus, loop, tasks)
        return run(args, display, settings, bus, loop, task)
    finally:
        for service in services:
            service.stop()
        bus.close()
        telemetry.shutdown()


def run(args: argparse.Namespace, display: Display, settings: Settings, bus: BusBase, loop: Loop, task: str) -> int:
    """One run (or a resumed one): the chapter's banner, the loop, the chapter's report."""
    run_id, resumed = new_run_id(), 0
    if args.resume:
        try:
            saved = load_run(bus, args.resume)
        except BusError as err:
            display.error(str(err))
            return EXIT_USAGE
        run_id, task, resumed = args.resume, saved["task"], saved["step"]
        settings = saved_settings(saved, settings)
        set_aside(settings.log_dir / f"{run_id}.jsonl")
    try:
        trace = Trace.in_dir(settings.log_dir, run_id)
    except UsageError as err:
        display.error(str(err))
        return EXIT_USAGE
    llm = RemoteGateway(settings, display, trace, bus, resumed=resumed)
    attach_classroom(llm, args, sys.stdin)  # --human: the loop asks, in this process
    try:
        display.banner(settings, run_id, trace.path)
        if display.chatty:
            where = f"the broker at {bus.url}" if isinstance(bus, Bus) else "threads in this process"
            display.line(f"agents: planner, worker and critic services, reached through {where}", "dim")
        with telemetry.span(
            "invoke_agent orchestrator",
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "orchestrator", "agents.run_id": run_id},
        ):
            state = loop(task, llm)
        return cli.report(state, llm, args, display.mode)
    finally:
        trace.close()


def set_aside(trace: Path) -> None:
    """A resumed run writes its whole trace again; the trace of the attempt that was cut short is kept beside it."""
    if trace.exists():
        n = 1
        while (aside := trace.with_name(f"{trace.stem}.before-resume-{n}.jsonl")).exists():
            n += 1
        trace.rename(aside)


def local_services(bus: BusBase, settings: Settings, client: Any = None) -> list[Service]:
    """Without a broker: one service per role, as threads, on the in-process bus."""
    client_for = (lambda request: client) if client is not None else None
    return [bus.serve(role, AgentService(role, settings, client_for).handle) for role in AGENTS]


def batch(
    args: argparse.Namespace, display: Display, settings: Settings, bus: BusBase, loop: Loop, tasks: list[str]
) -> int:
    """--batch: every task a run of its own, ``--concurrency`` at a time; the batch's ceilings are reserved per request."""
    budget = BatchBudget(args.batch_max_tokens, args.batch_max_cost)

    def gateway(s: Settings, d: Display, t: Trace) -> RemoteGateway:
        return RemoteGateway(s, d, t, bus, budget=budget)

    if display.chatty:
        display.line(
            f"batch of {len(tasks)} tasks · {args.concurrency} at a time · agents reached through {bus.url}", "dim"
        )
    with BatchProgress(display, len(tasks), budget) as progress:
        outcomes = run_batch(
            tasks,
            settings,
            lambda: None,
            concurrency=args.concurrency,
            budget=budget,
            on_done=progress.finished,
            gateway=gateway,
            loop=loop,
        )
    if display.mode == "json":
        for o in outcomes:
            display.line(json.dumps(o.summary, ensure_ascii=False, default=str), soft_wrap=True)
    elif display.chatty:
        display.console.print(batch_table(outcomes))
        approved = sum(bool(o.summary.get("approved")) for o in outcomes)
        display.line(f"{approved} of {len(outcomes)} approved · {progress.spending()}", "bold")
    return batch_exit_code(outcomes)


def serve(argv: list[str], client: Any = None) -> int:
    """``serve ROLE --broker URL``: one copy of one role's service, until Ctrl-C or SIGTERM."""
    p = argparse.ArgumentParser(prog=f"{PROG} serve", description="Run one agent as a service on a NATS broker.")
    p.add_argument("role", choices=sorted(AGENTS), help="the only role this service runs")
    p.add_argument(
        "--broker", default=os.environ.get("NATS_URL"), metavar="URL", help="the NATS server (default: NATS_URL)"
    )
    p.add_argument(
        "--ack-wait",
        type=positive(float),
        default=ACK_WAIT_S,
        metavar="SECONDS",
        help=f"a request this service took and did not answer goes to another copy after this long (default {ACK_WAIT_S:g})",
    )
    try:
        args = p.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_APPROVED
    if not args.broker:
        print(
            "error: serve needs --broker URL (or NATS_URL); without a broker the services run inside the orchestrator",
            file=sys.stderr,
        )
        return EXIT_USAGE
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        load_env_file(lambda text: print(f"warning: {text}", file=sys.stderr))
        model = settings_from_env(dict(os.environ))
        telemetry.enable(f"multi-agent-{args.role}")
        bus = Bus.connect(args.broker)
    except (UsageError, BusError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if not model.demo:
        openai_sdk()  # imported now, not during the first request (it takes about a second)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    service = bus.serve(
        args.role, AgentService(args.role, model, (lambda r: client) if client else None).handle, args.ack_wait
    )
    where = "scripted demo model only" if model.demo else model.server()
    print(
        f"{args.role} service ready: taking requests from {bus.url} (model server: {where}); Ctrl-C stops it",
        flush=True,
    )
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
        bus.close()
        telemetry.shutdown()
    return EXIT_APPROVED
