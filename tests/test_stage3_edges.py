"""Stage 3 at its edges: bytes in argv that are not UTF-8, refusals after a trace was opened, a server that hangs.

Every stage 3 entry point (the handoff demo, the audit's starter and solution) must meet these the way the
chapter does: one ``error:`` line and exit 2 for a user's mistake, never a traceback, and a trace that, once
opened, ends with its ``end`` event, with nothing after it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import multi_agent_system as mas
from conftest import output
from fault_server import FAULTS, FaultServer
from machinery.output import Trace
from stages.stage3 import demo
from stages.stage3.activity import solution_workflow as solution
from stages.stage3.activity import starter_workflow as starter
from stages.stage3.activity.players import demo_responder as demo_players

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = {
    "handoffs": "stages.stage3.demo",
    "starter": "stages.stage3.activity.starter_workflow",
    "solution": "stages.stage3.activity.solution_workflow",
}


def run(module: str, *args: str | bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """The program as a real process, offline, from ``cwd`` (traces go to cwd/logs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PYTEST_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, timeout=60, env=env, cwd=cwd)


def traces(folder: Path) -> list[list[dict[str, Any]]]:
    """The events of every trace under ``folder``, one list per trace file."""
    found = sorted(folder.rglob("*.jsonl"))
    return [[json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] for path in found]


def assert_every_trace_ends(folder: Path) -> None:
    for events in traces(folder):
        assert events, "a trace was opened and left empty"
        assert events[-1]["event"] == "end", f"the trace stops at {events[-1]['event']!r}, not at its end event"
        assert [e["event"] for e in events].count("end") == 1


@pytest.mark.parametrize("program", PROGRAMS)
def test_invalid_utf8_in_argv_is_one_line_and_exit_2(program: str, tmp_path: Path) -> None:
    """Python turns the byte 0xff into a lone surrogate, which no request can carry: refused before any call."""
    done = run(PROGRAMS[program], b"Plan a shop \xff server", cwd=tmp_path)
    shown = done.stdout.decode() + done.stderr.decode()
    assert "Traceback" not in shown, shown
    assert done.returncode == mas.EXIT_USAGE, shown
    errors = [line for line in shown.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "not UTF-8" in errors[0], shown
    assert not traces(tmp_path), "a trace was written for a run that never started"


# -- a refusal after the trace was opened --------------------------------------


def test_an_out_path_under_a_regular_file_leaves_no_trace_without_an_end(console, tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("a file, not a folder")
    code = solution.main(["--out", str(tmp_path / "plain.txt" / "secure_server.json")], console=console)
    shown = output(console)
    assert code == mas.EXIT_USAGE and "Traceback" not in shown
    assert [line for line in shown.splitlines() if line.startswith("error: ")] == [
        f"error: cannot write the result to {tmp_path / 'plain.txt' / 'secure_server.json'}: "
        f"{tmp_path / 'plain.txt'} is a file, not a folder"
    ]
    assert_every_trace_ends(tmp_path)
    assert not traces(tmp_path), "the path is checked before the run opens its trace"


def refuse(*args: Any, **kwargs: Any) -> Any:
    raise mas.UsageError("cannot write the result to out.json: the disk is full")


@pytest.mark.parametrize("program", ["handoffs", "starter"])
def test_a_refusal_once_the_trace_is_open_still_ends_the_trace(console, monkeypatch, tmp_path: Path, program) -> None:
    """What a student's own save (stretch 2) or a later check may raise: one line, exit 2, and an ended trace."""
    module, name = (demo, "run") if program == "handoffs" else (starter, "run_audit")
    monkeypatch.setattr(module, name, refuse)
    code = module.main([], console=console)
    shown = output(console)
    assert code == mas.EXIT_USAGE and "Traceback" not in shown
    assert [line for line in shown.splitlines() if line.startswith("error: ")] == [
        "error: cannot write the result to out.json: the disk is full"
    ]
    (events,) = traces(tmp_path)
    assert_every_trace_ends(tmp_path)
    assert events[-1]["stop_reason"] == "usage_error" and "disk is full" in events[-1]["detail"]


# -- a server that hangs: the run stops on time, and its trace ends with its end event ------------------

HANG_LIMIT_S = 1.0  # --timeout: the SDK's own read timeout on the hung request is this long too, so the two race


@pytest.mark.parametrize("program", ["handoffs", "solution"])
def test_a_hung_server_stops_the_run_and_nothing_follows_the_end_event(monkeypatch, tmp_path: Path, program) -> None:
    """The abandoned call's SDK thread times out and retries (and says so) at about the moment the run ends."""
    main, responder = (demo.main, demo.demo_responder) if program == "handoffs" else (solution.main, demo_players)
    with FaultServer(responder(), FAULTS["hang"], key="sk-test-hang-0123456789") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-hang-0123456789")
        console = Console(file=io.StringIO(), width=100, color_system=None)
        started = time.monotonic()
        code = main(["--timeout", str(HANG_LIMIT_S), "--verbose", "--log-dir", str(tmp_path / "logs")], console=console)
        seconds = time.monotonic() - started
        time.sleep(HANG_LIMIT_S + 0.5)  # the abandoned call's retry, had it anywhere to go, has spoken by now
    assert code == mas.EXIT_NOT_APPROVED and seconds < HANG_LIMIT_S + 2
    (events,) = traces(tmp_path)
    assert_every_trace_ends(tmp_path)
    assert events[-1]["stop_reason"] == "timeout"


class _Slow:
    """A field whose text takes a while to write: an event that is being written while the run ends."""

    def __init__(self) -> None:
        self.inside, self.go = threading.Event(), threading.Event()

    def __str__(self) -> str:
        self.inside.set()
        self.go.wait(5)
        return "openai SDK: Retrying request to /chat/completions"


def test_an_event_written_while_the_run_ends_never_lands_after_the_end_event(tmp_path: Path) -> None:
    """The abandoned call's thread and the run's thread write to one trace: the end event stays the last line."""
    trace = Trace(tmp_path / "t.jsonl", "run")
    slow = _Slow()
    late = threading.Thread(target=lambda: trace.event("warning", message=slow))
    late.start()
    assert slow.inside.wait(5)
    trace.event("end", stop_reason="timeout")
    slow.go.set()
    late.join(5)
    trace.close()
    kinds = [json.loads(line)["event"] for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert kinds[-1] == "end", kinds
