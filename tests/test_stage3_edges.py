"""Stage 3 at its edges: bytes in argv that are not UTF-8, refusals after a trace was opened, a server that hangs.

Every stage 3 entry point (the handoff demo, the audit's starter and solution) must meet these the way the
chapter does: one ``error:`` line and exit 2 for a user's mistake, never a traceback, and a trace that, once
opened, ends with its ``end`` event, with nothing after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import multi_agent_system as mas
from conftest import output
from stages.stage3 import demo
from stages.stage3.activity import solution_workflow as solution
from stages.stage3.activity import starter_workflow as starter

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
