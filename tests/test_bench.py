"""A quick run of the loopback benchmark (python -m bench), small enough for every test run."""

from __future__ import annotations

import json

import pytest

import multi_agent_system as mas
from bench import run as bench
from machinery.gateway import estimate_text_tokens


def quick_run() -> bench.Results:
    return bench.run(
        latency=0.002, iterations=4, batch_latency=0.02, tasks=4, levels=(1, 2), repeats=1, in_process=True
    )


def test_the_benchmark_runs_and_the_paths_take_the_fewest_calls() -> None:
    r = quick_run()
    assert r.paths is not None and r.speedups is not None and r.per_call is not None
    for path, (calls, _tokens) in r.paths.items():
        assert calls == bench.fewest_calls(path)
    assert r.overhead >= 1.0 and r.overhead_calls >= 4 * 2
    assert set(r.per_call) == set(mas.ROLES)
    assert all(last <= estimate_text_tokens("x" * mas.PROMPT_MAX_CHARS) for _, last in r.per_call.values())
    assert r.speedups[2][1] > 1.2  # two at a time is clearly faster, even on a busy machine
    assert 0 < r.help_ratio < 1  # --help never pays for importing the SDK
    table = bench.rows(r, 0.002, 4, 0.02, 4)
    assert len(table) == 3 + len(r.per_call) + len(r.paths) + len(r.speedups) + 1


def test_the_fewest_calls_follow_the_ladder() -> None:
    roles, planning = len(mas.ROLES), len(mas.ROLES) - 2  # all but the worker and the critic plan
    assert [bench.fewest_calls(p) for p in bench.PATHS] == [
        roles,  # every role once
        roles + 2,  # one revision: the worker and the critic again
        roles + 2 * mas.REJECTIONS_BEFORE_REPLAN + planning,  # and a re-plan: the planning roles again
    ]


@pytest.mark.docs
def test_the_textbook_paths_spend_no_more_than_the_original_course_code() -> None:
    """Token counts depend on the prompts' wording: a student who rewords a prompt changes them, so this
    lives with the documents' numbers (bench/README.md quotes them), outside ``-m "not docs"``."""
    r = quick_run()
    assert r.paths is not None
    for path, (_calls, tokens) in r.paths.items():
        assert tokens <= bench.ORIGINAL_TOKENS[path], path


def test_the_revision_shapes_differ_only_in_how_the_rejected_draft_comes_back(tmp_path) -> None:
    from bench import revision_shapes as rs

    task = "Write a haiku about rain."
    draft = "Rain taps the window\nthe gutter sings all night long\nmorning smells of earth\nand a fourth line"
    said = f"{mas.REJECTED_HEADING} (plan v1, draft 1):\nCode measured the draft: 4 non-empty lines.\n\n{mas.REVISE}"
    prompt = [mas.system(mas.WORKER_PROMPT), mas.user(task), {"role": "assistant", "content": draft}, mas.user(said)]
    trace = tmp_path / "run.jsonl"
    events = [{"event": "start", "task": task}, {"event": "call", "role": "worker", "prompt": prompt, "max_tokens": 99}]
    trace.write_text("".join(json.dumps(e) + "\n" for e in events))
    [call] = rs.recorded([tmp_path])
    assert rs.shaped(call["prompt"], "turn") == prompt
    pasted, afresh = (rs.shaped(call["prompt"], s)[1]["content"] for s in ("pasted", "afresh"))
    assert draft in pasted and draft not in afresh
    assert "- Code measured the draft: 4 non-empty lines." in afresh.split(mas.LESSONS_HEADING)[1]
    assert rs.failed(task, prompt, draft) == ["lines", "new_draft"]  # the same draft sent back
    rows = [{"shape": "afresh", "failed": [], "tokens": 10}, {"shape": "turn", "failed": ["new_draft"], "tokens": 5}]
    assert "| afresh | 1/1 | 0 | 10 |" in rs.summary(rows) and "| turn | 0/1 | 1 | 5 |" in rs.summary(rows)
