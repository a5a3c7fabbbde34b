"""tools/trace_walkthrough.py replays traces the kit wrote before a change of behaviour, not only today's.

Students keep their logs/ and replay them (EXPERIMENTS.md). Until 11dc9c5 a planner reply that was no usable
plan was sent back once; the trace in tests/data was written by that code (df0bbee, with the suite's fake
client), and still replays: the first planner call is titled as the retry it was.
"""

from __future__ import annotations

from conftest import ROOT, tool

OLD_TRACE = ROOT / "tests" / "data" / "trace-before-11dc9c5-planner-retry.jsonl"


def test_a_trace_with_an_old_planner_retry_replays() -> None:
    trace_walkthrough = tool("trace_walkthrough")
    text = trace_walkthrough.render(trace_walkthrough.read_events(OLD_TRACE))  # raises if the replay disagrees
    assert "gets no usable plan (it plans the review process" in text and "and asks again" in text
    assert "call 2: `planner_agent()` writes plan v1" in text
