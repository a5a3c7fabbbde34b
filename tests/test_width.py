"""Output fits 80 columns, and what is shortened to fit is cut after a whole word, never inside one.

Each place that prints something that can grow (a real model's long name, large counts, a long task,
a critic's long feedback) is drawn at 80 columns: with rich's ``Console(width=80)``, and in a real
subprocess with ``COLUMNS=80``. No line may be wider, and the parts that matter (the seconds, the
tokens, a model's name, every word of a checker's advice) must still be there whole.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

import multi_agent_system as mas
from machinery.batch import BatchBudget, BatchOutcome, BatchProgress, batch_table
from machinery.cli import main
from machinery.output import Display
from machinery.prices import format_cost
from machinery.replay import mermaid_diagram, read_trace
from stages.stage3.activity import check

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 80
LONG_MODEL = "qwen2.5-coder-1.5b-instruct"


def narrow() -> Console:
    return Console(file=io.StringIO(), width=WIDTH, color_system=None, legacy_windows=False)


def shown(console: Console) -> list[str]:
    return [line.rstrip() for line in console.file.getvalue().splitlines()]  # type: ignore[attr-defined]


def too_wide(lines: list[str]) -> list[str]:
    return [f"{len(line)}: {line}" for line in lines if len(line) > WIDTH]


def words_kept(original: str, shortened: str) -> bool:
    """Whether ``shortened`` is ``original`` cut after a whole word (a trailing "…" marks the cut)."""
    whole, kept = " ".join(original.split()), shortened.removesuffix("…")
    return whole.startswith(kept) and (len(kept) == len(whole) or not whole[len(kept)].isalnum())


def reply(
    model: str = LONG_MODEL, seconds: float = 1234.5, finish: str = "stop", tokens: tuple[int, int] = (123_456, 7_890)
) -> mas.Reply:
    return mas.Reply("worker", model, "text", {}, [], *tokens, True, None, seconds, finish, 1200)


@pytest.mark.parametrize("finish", ["stop", "length"])
def test_a_panel_footer_keeps_its_tokens_and_seconds_at_80_columns(finish: str) -> None:
    console = narrow()
    Display(console).step("Worker · plan v1 · draft 1 · iteration 1", "a draft", reply(finish=finish), "yellow")
    lines = shown(console)
    assert not too_wide(lines), too_wide(lines)
    bottom = lines[-1]
    assert "1234.5s" in bottom and "~131346 tokens" in bottom and "…" not in bottom, bottom
    assert ("cut off at max_tokens" in bottom) == (finish == "length")
    assert LONG_MODEL in bottom or LONG_MODEL not in "".join(lines)  # the name is whole, or left out whole


def test_a_short_footer_is_shown_whole() -> None:
    console = narrow()
    Display(console).step("Planner · plan v1", "1. a step", reply(mas.DEMO_MODEL, 0.0, tokens=(167, 38)), "cyan")
    assert f"{mas.DEMO_MODEL} · ~205 tokens (167 in / 38 out) · cost unknown · 0.0s" in shown(console)[-1]


def outcomes() -> list[BatchOutcome]:
    task = "Name 3 fruits, one per line, in ALL CAPITAL LETTERS, with no numbering and nothing else at all."
    summary = {"stop_reason": "escalation_exhausted", "calls": 18, "total_tokens": 1_234_567, "cost_usd": 12.3456}
    return [BatchOutcome(n, task, dict(summary, seconds=9876.5)) for n in (1, 99, 100)]


def test_batch_progress_lines_fit_and_keep_the_counts_and_seconds() -> None:
    display = Display(narrow())
    budget = BatchBudget()
    budget.spent_tokens = 98_765_432
    progress = BatchProgress(display, 100, budget, clock=iter([0.0, 12345.6, 12345.6]).__next__)
    progress.done, progress.approved = 99, 42
    line = progress.line("task 100: escalation_exhausted")
    assert len(line) < WIDTH, line
    assert line.startswith("task 100: escalation_exhausted · 99/100 tasks done · 42 approved") and "12345.6s" in line


def test_the_batch_table_fits_and_cuts_tasks_after_a_whole_word() -> None:
    console = narrow()
    console.print(batch_table(outcomes(), WIDTH))
    lines = shown(console)
    assert not too_wide(lines), too_wide(lines)
    rows = [line for line in lines if re.match(r"\s+\d+\s", line)]
    assert len(rows) == 3
    for row in rows:
        cells = re.split(r"\s{2,}", row.strip())
        assert words_kept(outcomes()[0].task, cells[1]), cells
        assert cells[2:] == ["escalation_exhausted", "18", "1,234,567", format_cost(12.3456), "9876.5"], cells


@pytest.mark.parametrize("trace", sorted((ROOT / "examples").glob("*.jsonl")), ids=lambda p: p.name)
def test_diagrams_fit_and_notes_are_cut_after_a_whole_word(trace: Path) -> None:
    events = read_trace(trace)
    lines = mermaid_diagram(events).splitlines()
    assert not too_wide(lines), too_wide(lines)
    said = [e.get("feedback") or "" for e in events if e["event"] == "verdict"]
    notes = [line.split(" · ", 1)[1] for line in lines if re.search(r"Note over \w+: (APPROVED|REJECTED) by", line)]
    assert len(notes) == len(said)
    for feedback, note in zip(said, notes, strict=True):
        assert words_kept(re.sub(r"[;#<>{}\[\]]", " ", feedback), note), (feedback, note)


def test_the_estimate_table_fits_with_a_long_local_model_name() -> None:
    console = narrow()
    argv = ["--estimate", "--model", "gpt-4o-mini", "--planner-model", LONG_MODEL]
    assert main(argv, console=console) == mas.EXIT_APPROVED
    lines = shown(console)
    assert not too_wide(lines), too_wide(lines)
    assert any(LONG_MODEL in line and "cost unknown" in line for line in lines), lines


DETAILS = {
    2: "no rule catches any of: TLS 1.0 allowed; TLS 1.1 allowed; no Strict-Transport-Security header; "
    "no Content-Security-Policy header (add one to RULES)",
    5: "a Blue Team that changes about 12 fields a round ran 21 rounds: past 30 change points (round 4) "
    "the CISO should reject",
}


@pytest.mark.parametrize("number", sorted(DETAILS))
@pytest.mark.parametrize("passed", [True, False])
def test_the_checker_wraps_its_advice_at_word_boundaries(number: int, passed: bool) -> None:
    lines = check.report_line(number, passed, DETAILS[number], WIDTH).splitlines()
    assert not too_wide(lines), too_wide(lines)
    assert len(lines) > 1 and all(line.startswith("    ") for line in lines[1:])
    verdict = "passed" if passed else "NOT YET"
    assert " ".join(" ".join(lines).split()).endswith(f"{verdict} · {DETAILS[number]}")


def run_at_80_columns(*argv: str, cwd: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and not k.endswith("_MODEL")}
    env.update(COLUMNS=str(WIDTH), NO_COLOR="1")
    done = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    return (done.stdout + done.stderr).splitlines()


@pytest.mark.parametrize(
    "argv",
    [
        [str(ROOT / "multi_agent_system.py"), "Write a haiku about agents", "--demo-scenario", "escalate"],
        [str(ROOT / "multi_agent_system.py"), "--batch", str(ROOT / "bench" / "tasks.txt")],
        [str(ROOT / "multi_agent_system.py"), "--estimate"],
        [str(ROOT / "multi_agent_system.py"), "--diagram", str(ROOT / "examples" / "coffee-model-driven.jsonl")],
        ["-m", "stages.stage3.activity.check"],
    ],
    ids=["run", "batch", "estimate", "diagram", "checker"],
)
def test_a_terminal_of_80_columns_gets_no_longer_line(argv: list[str], tmp_path: Path) -> None:
    if argv[0] == "-m":  # the checker runs from the repository root, as EXERCISE.md says
        lines = run_at_80_columns(*argv, cwd=ROOT)
    else:
        lines = run_at_80_columns(*argv, "--log-dir", str(tmp_path), cwd=tmp_path)
    assert lines and not too_wide(lines), too_wide(lines)
