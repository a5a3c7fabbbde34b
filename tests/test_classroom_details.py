"""Classroom details a live class trips over: banners, hints and prompts that say what is true."""

from __future__ import annotations

import io
import json
from pathlib import Path

from conftest import output
from machinery import cli
from machinery.estimate import preview_line, spend_preview
from machinery.output import Trace
from multi_agent_system import EXIT_USAGE, Settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_a_preview_with_no_known_price_says_cost_unknown_once() -> None:
    line = preview_line(spend_preview(Settings(default_model="some-local-model"), "Write a haiku"))
    assert line.endswith("cost unknown") and "unknown-cost" not in line


def test_replay_without_a_task_suggests_the_recorded_one(console) -> None:
    example = EXAMPLES / "name-approved.jsonl"
    recorded = json.loads(example.read_text().splitlines()[0])["task"]
    assert cli.main(["--replay", str(example)], console=console) == EXIT_USAGE
    assert recorded in output(console) and "haiku about agents" not in output(console)


def test_step_under_show_does_not_pretend_to_send_anything(console, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n" * 20))
    assert cli.main(["--show", str(EXAMPLES / "name-approved.jsonl"), "--step"], console=console) == 0
    shown = output(console)
    assert "Enter shows the next call" in shown and "Enter sends it" not in shown


def test_nothing_reaches_a_trace_after_its_end_event(tmp_path: Path) -> None:
    trace = Trace(tmp_path / "t.jsonl", "run")
    trace.event("start")
    trace.event("end", stop_reason="timeout")
    trace.event("warning", message="openai SDK: Retrying request (an abandoned call, speaking late)")
    trace.close()
    kinds = [json.loads(line)["event"] for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert kinds == ["start", "end"]
