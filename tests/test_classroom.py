"""The classroom modes: --step, --show, --replay, --diagram and the --human rung."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

import multi_agent_system as mas
from conftest import LOOP_ROLES, FakeClient, completion, output, per_role
from machinery.classroom import Answers, HumanRung
from machinery.cli import exit_code_for, main
from machinery.demo import DEMO_SCENARIOS
from machinery.gateway import LLM
from machinery.output import Display
from machinery.replay import (
    MERMAID_UNSAFE,
    first_difference,
    mermaid_diagram,
    mermaid_text,
    read_trace,
    replay_setup,
    show_recorded,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.jsonl"))
# Runs of the chapter's own loop; a run of stages/variants/model_driven.py replays with that program (its tests)
CHAPTER_EXAMPLES = [p for p in EXAMPLES if '"event": "decision"' not in p.read_text()]
R = mas.REJECTIONS_BEFORE_REPLAN
HAIKU = "Write a haiku about agents"
DEMO_MODEL_NAME = mas.DEMO_MODEL


class Typed(io.StringIO):
    """Lines typed at a terminal: stdin that says it is one."""

    def isatty(self) -> bool:
        return True


def events_of(path: Path, kind: str | None = None) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in events if kind is None or e["event"] == kind]


def only_trace(folder: Path) -> Path:
    (path,) = folder.glob("*.jsonl")
    return path


def run_demo(console: Console, tmp_path: Path, *flags: str, stdin: str | None = None, monkeypatch=None) -> int:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main([HAIKU, "--log-dir", str(tmp_path / "logs"), *flags], console=console)


def fresh_console() -> Console:
    return Console(file=io.StringIO(), width=120, color_system=None)


# -- --step ----------------------------------------------------------------------


def test_step_pauses_before_every_call_and_enter_goes_on(console, tmp_path, monkeypatch) -> None:
    code = run_demo(
        console, tmp_path, "--step", "--demo-scenario", "escalate", stdin="\n" * 50, monkeypatch=monkeypatch
    )
    calls = events_of(only_trace(tmp_path / "logs"), "call")
    shown = output(console)
    assert code == mas.EXIT_APPROVED
    assert shown.count("next call: ") == len(calls) > 3
    assert [m for m in re.findall(r"next call: (\w+)", shown)] == [c["role"] for c in calls]  # the role, before each


def test_each_pause_shows_tokens_so_far_and_budget_left(console, tmp_path, monkeypatch) -> None:
    run_demo(console, tmp_path, "--step", "--max-tokens", "9000", stdin="\n" * 20, monkeypatch=monkeypatch)
    calls = events_of(only_trace(tmp_path / "logs"), "call")
    spent = [0]
    for call in calls[:-1]:
        spent.append(spent[-1] + call["prompt_tokens"] + call["completion_tokens"])
    shown = output(console)
    assert re.findall(r"(\d+) tokens so far · (\d+) of 9000 left", shown) == [(str(s), str(9000 - s)) for s in spent]
    assert "last (user): Task: Write a haiku about agents" in shown  # what is about to be sent, in short


def test_q_stops_the_run_cleanly_with_stopped_by_user(console, tmp_path, monkeypatch) -> None:
    code = run_demo(console, tmp_path, "--step", stdin="\nq\n", monkeypatch=monkeypatch)
    trace = only_trace(tmp_path / "logs")
    end = events_of(trace, "end")
    assert code == exit_code_for("stopped_by_user") == mas.EXIT_NOT_APPROVED
    assert [c["role"] for c in events_of(trace, "call")] == ["planner"]  # q came at the second pause
    assert len(end) == 1 and end[0]["stop_reason"] == "stopped_by_user"  # the trace is complete
    assert "stop reason: stopped_by_user" in output(console)
    assert "stopped_by_user" in mas.STOP_REASONS


def test_at_the_end_of_piped_input_the_run_goes_on_without_pausing(console, tmp_path, monkeypatch) -> None:
    code = run_demo(console, tmp_path, "--step", stdin="\n", monkeypatch=monkeypatch)
    shown = output(console)
    assert code == mas.EXIT_APPROVED
    assert shown.count("next call: ") == 2  # one answered pause, then one that met the end of input
    assert shown.count("end of input") == 1


# -- --show -----------------------------------------------------------------------


def from_first_panel(text: str) -> str:
    """The run as drawn, without the opening banner (live and shown runs introduce themselves differently)."""
    return text[text.index("Planner · plan v1") :]


@pytest.mark.parametrize("scenario", sorted(DEMO_SCENARIOS))
def test_show_draws_a_recorded_run_exactly_as_it_looked_live(tmp_path, monkeypatch, scenario: str) -> None:
    monkeypatch.chdir(tmp_path)
    live = fresh_console()
    main([HAIKU, "--demo-scenario", scenario], console=live)
    trace = only_trace(Path("logs"))
    again = fresh_console()
    code = main(["--show", str(trace)], console=again, client=FakeClient())  # any model call would fail
    assert code == mas.EXIT_APPROVED
    assert from_first_panel(output(again)) == from_first_panel(output(live))
    assert "no model is called" in output(again)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_show_draws_the_recorded_real_model_runs(console, example: Path) -> None:
    assert main(["--show", str(example)], console=console, client=FakeClient()) == mas.EXIT_APPROVED
    shown = output(console)
    end = events_of(example, "end")[0]
    assert f"stop reason: {end['stop_reason']}" in shown
    assert shown.count("Critic · ") == len(events_of(example, "verdict"))
    assert "Spending by role" in shown and "offline demo" not in shown


def test_show_with_step_pauses_before_each_recorded_call(console, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    main([HAIKU, "--quiet"], console=fresh_console())
    trace = only_trace(Path("logs"))
    monkeypatch.setattr("sys.stdin", io.StringIO("\n" * 20))
    assert main(["--show", str(trace), "--step"], console=console) == mas.EXIT_APPROVED
    assert output(console).count("next call: ") == len(events_of(trace, "call"))
    monkeypatch.setattr("sys.stdin", io.StringIO("q\n"))
    assert main(["--show", str(trace), "--step"], console=fresh_console()) == mas.EXIT_NOT_APPROVED


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("root:x:0:0:root:/root:/bin/bash\n", "is not a trace"),
        ('{"event": "start", "run_id": "x"}\n{"event": "call", "ro', "is cut short"),
        ('{"event": "start", "run_id": "x"}\n', "is cut short"),
        ('{"event": "call"}\n{"event": "end"}\n', "is not a trace"),
        ("", "is not a trace"),
    ],
)
@pytest.mark.parametrize("flag", ["--show", "--diagram", "--replay"])
def test_a_file_that_is_not_a_whole_trace_gets_one_clear_line(console, tmp_path, content, said, flag) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    argv = [flag, str(bad)] + (["task"] if flag == "--replay" else [])
    assert main(argv, console=console, client=FakeClient()) == mas.EXIT_USAGE
    lines = output(console).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and said in lines[0]


def test_a_missing_trace_gets_one_clear_line(console, tmp_path) -> None:
    assert main(["--show", str(tmp_path / "nope.jsonl")], console=console) == mas.EXIT_USAGE
    assert output(console).strip().startswith("error: cannot read the trace")


# -- --replay ----------------------------------------------------------------------


@pytest.mark.docs  # a recording quotes the prompts as shipped: reword one and record again
@pytest.mark.parametrize("example", CHAPTER_EXAMPLES, ids=lambda p: p.name)
def test_the_recorded_real_model_runs_replay(console, tmp_path, example: Path) -> None:
    """A recorded run on a real model is a regression test: the same requests, the same replies, the same end."""
    recorded = events_of(example)
    start, end = recorded[0], recorded[-1]
    assert not start["demo"]  # recorded from a real model, not the scripted one
    code = main(["--replay", str(example), start["task"], "--json"], console=console, client=FakeClient())
    summary = json.loads(output(console))
    assert code == exit_code_for(end["stop_reason"])
    assert (summary["stop_reason"], summary["result"]) == (end["stop_reason"], end["result"])
    assert (summary["calls"], summary["tokens"]) == (end["calls"], end["total_tokens"])
    assert summary["iterations"] == end["iterations"] and summary["replayed_from"] == str(example)
    replayed = events_of(only_trace(tmp_path / "logs"), "call")
    assert [c["prompt"] for c in replayed] == [e["prompt"] for e in recorded if e["event"] == "call"]


def test_replay_says_plainly_that_replies_are_replayed(console) -> None:
    example = CHAPTER_EXAMPLES[0]
    main(["--replay", str(example), events_of(example)[0]["task"]], console=console)
    shown = output(console)
    assert "Replayed replies, not a live model" in shown and "Scripted demo model" not in shown


@pytest.mark.docs
def test_a_changed_prompt_fails_the_replay_naming_the_role_and_message(console, monkeypatch) -> None:
    example = CHAPTER_EXAMPLES[0]
    monkeypatch.setattr(mas, "WORKER_PROMPT", mas.WORKER_PROMPT + " Be brief.")
    code = main(["--replay", str(example), events_of(example)[0]["task"], "--quiet"], console=console)
    (line,) = output(console).strip().splitlines()
    assert code == exit_code_for("replay_mismatch") == mas.EXIT_USAGE
    assert "the worker's request 1 is not the recorded one: message 1 (system)" in line


def test_a_different_task_fails_at_the_planners_first_request(console, tmp_path) -> None:
    example = CHAPTER_EXAMPLES[0]
    code = main(["--replay", str(example), "Write a limerick", "--json"], console=console)
    assert code == mas.EXIT_USAGE
    assert json.loads(output(console).split("\n", 1)[1])["stop_reason"] == "replay_mismatch"
    assert "the planner's request 1" in output(console)
    assert events_of(only_trace(tmp_path / "logs"), "end")[0]["stop_reason"] == "replay_mismatch"


def test_replay_never_falls_through_to_a_live_model(tmp_path, make_llm) -> None:
    """More calls than the recording holds: the run stops; nothing else is asked."""
    recording = tmp_path / "short.jsonl"
    main(["task", "--quiet", "--demo-scenario", "approve", "--log-dir", str(tmp_path / "rec")], console=fresh_console())
    events = events_of(only_trace(tmp_path / "rec"))
    recording.write_text(
        "\n".join(json.dumps(e) for e in events if e["event"] != "call" or e["role"] != "critic") + "\n"
    )
    _, client = replay_setup(recording, mas.Settings())
    state = mas.orchestrate("task", make_llm(client, default_model=mas.DEMO_MODEL))
    assert state["stop_reason"] == "replay_mismatch"
    assert "the critic's call 1 is not in" in (state["stop_detail"] or "")


def test_at_least_two_real_model_runs_are_shipped() -> None:
    assert len(CHAPTER_EXAMPLES) >= 2
    for example in EXAMPLES:
        start = events_of(example, "start")[0]
        assert not start["demo"] and DEMO_MODEL_NAME not in start["models"].values()


def test_a_replay_trace_holds_no_key(console, tmp_path, monkeypatch) -> None:
    secret = "sk-test-SECRET-replay-777"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    example = CHAPTER_EXAMPLES[0]
    main(["--replay", str(example), events_of(example)[0]["task"], "--quiet"], console=console)
    assert secret not in only_trace(tmp_path / "logs").read_text() and secret not in output(console)
    for recorded in EXAMPLES:  # the shipped recordings carry prompts and replies, never a key
        text = recorded.read_text()
        assert "sk-" not in text and "api_key" not in text.lower()


def test_first_difference_finds_the_first_differing_message() -> None:
    a = [mas.system("same"), mas.user("one two three")]
    assert first_difference(a, a) is None
    assert first_difference(a, [*a, mas.user("more")]) == "it has 3 messages, the recording 2"
    assert "message 2 (user) differs at character 5" in (first_difference(a, [a[0], mas.user("one TWO")]) or "")


# -- --diagram --------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_diagram_draws_every_call_verdict_escalation_and_the_stop(console, example: Path) -> None:
    assert main(["--diagram", str(example)], console=console) == mas.EXIT_APPROVED
    lines = output(console).strip().splitlines()
    events = events_of(example)
    assert lines[0] == "sequenceDiagram"
    assert {"orchestrator", *LOOP_ROLES} <= {line.split(" as ")[-1] for line in lines if "participant" in line}
    calls = [e for e in events if e["event"] == "call"]
    assert len([line for line in lines if "->>" in line and "-->>" not in line]) == len(calls)
    assert [int(n) for n in re.findall(r"(\d+) tokens out", "\n".join(lines))] == [
        c["completion_tokens"] for c in calls
    ]
    assert len([line for line in lines if "REJECTED" in line or "APPROVED" in line]) == len(
        [e for e in events if e["event"] == "verdict"]
    )
    assert sum(1 for e in events if e["event"] == "escalation") == len(
        re.findall(r"Note over O: (revise|re-plan) · ", "\n".join(lines))
    )
    assert lines[-1].startswith(f"    Note over O: stop · {events[-1]['stop_reason']}")


@given(st.text())
def test_mermaid_text_never_breaks_a_statement(text: str) -> None:
    cleaned = mermaid_text(text)
    assert not MERMAID_UNSAFE.search(cleaned) and "\n" not in cleaned and len(cleaned) <= 60


# -- --human ----------------------------------------------------------------------


def human_llm(make_llm, client: FakeClient, answers: str, **settings: Any) -> LLM:
    llm = make_llm(client, **settings)
    llm.human = HumanRung(Answers(Typed(answers), llm.display), llm)
    return llm


def test_the_human_is_asked_only_where_the_ladder_would_replan_or_give_up(make_llm, console) -> None:
    client = FakeClient(**per_role([False] * R + [True], plans=2))
    llm = human_llm(make_llm, client, "p\n")
    state = mas.orchestrate("task", llm)
    assert output(console).count("Your call") == 1  # not at the revision before it
    assert state["stop_reason"] == "approved" and state["plan_version"] == 2
    assert [h["action"] for h in state["history"] if h["kind"] == "human"] == ["replan"]


def test_a_human_can_approve_the_last_draft(make_llm, tmp_path) -> None:
    client = FakeClient(**per_role([False] * R, plans=1))
    state = mas.orchestrate("task", human_llm(make_llm, client, "a\n"))
    assert (state["status"], state["stop_reason"], state["result"]) == ("approved", "approved", f"draft {R}")
    assert "a human approved" in (state["stop_detail"] or "")
    human = events_of(tmp_path / "trace.jsonl", "human")
    assert [(h["action"], h["iteration"]) for h in human] == [("accept", R)]


def test_a_humans_feedback_reaches_the_worker(make_llm) -> None:
    client = FakeClient(**per_role([False] * R + [True], plans=1))
    state = mas.orchestrate("task", human_llm(make_llm, client, "f\nName the three agents.\n"))
    assert state["stop_reason"] == "approved" and state["plan_version"] == 1  # revised, not re-planned
    assert "Notes from the human:\nName the three agents." in client.calls_of("worker")[-1]["messages"][1]["content"]
    assert [h.get("feedback") for h in state["history"] if h["kind"] == "human"] == ["Name the three agents."]


def test_a_human_can_stop_the_run(make_llm) -> None:
    client = FakeClient(**per_role([False] * R, plans=1))
    state = mas.orchestrate("task", human_llm(make_llm, client, "s\n"))
    assert state["stop_reason"] == "stopped_by_user" and exit_code_for(state["stop_reason"]) == 1


def test_a_human_may_allow_one_more_plan_but_the_iteration_gate_still_holds(make_llm) -> None:
    client = FakeClient(**per_role([False] * (R + 1), plans=2))
    llm = human_llm(make_llm, client, "p\n", max_plans=1, max_iterations=R + 1)
    state = mas.orchestrate("task", llm)
    assert state["plan_version"] == 2  # past --max-plans: the person asked for it
    assert state["stop_reason"] == "max_iterations"  # but no round past the iteration limit


def test_feedback_is_one_more_round_under_every_gate(make_llm) -> None:
    client = FakeClient(**per_role([False] * R, plans=1))
    state = mas.orchestrate("task", human_llm(make_llm, client, "f\ntry again\n", max_iterations=R))
    assert state["stop_reason"] == "max_iterations" and state["iteration"] == R


def test_no_answer_keeps_the_ladders_step(make_llm, console) -> None:
    client = FakeClient(**per_role([False] * R, plans=1))
    state = mas.orchestrate("task", human_llm(make_llm, client, "what?\n", max_plans=1))
    assert state["stop_reason"] == "escalation_exhausted"
    assert "the ladder's own step (give_up) is kept" in output(console)


def test_human_without_a_terminal_behaves_as_without_the_flag_and_says_so_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a\n"))
    with_flag, without = fresh_console(), fresh_console()
    code = main([HAIKU, "--demo-scenario", "exhaust", "--human"], console=with_flag)
    plain = main([HAIKU, "--demo-scenario", "exhaust"], console=without)
    said = output(with_flag)
    assert code == plain == mas.EXIT_NOT_APPROVED
    assert said.count("--human needs a terminal") == 1 and "Your call" not in said
    assert main(["--show", re.findall(r"logs/\S+\.jsonl", said)[-1]], console=fresh_console()) == 0
    assert from_first_panel(said) == from_first_panel(output(without)).replace(
        *re.findall(r"logs/\S+\.jsonl", output(without))[-1:], *re.findall(r"logs/\S+\.jsonl", said)[-1:]
    )


def test_a_humans_turn_is_shown_and_drawn_again_from_the_trace(make_llm, console, tmp_path) -> None:
    client = FakeClient(**per_role([False] * R + [True], plans=1))
    mas.orchestrate("task", human_llm(make_llm, client, "x\nf\nName them.\n"))  # one unreadable answer first
    live = output(console)
    again = fresh_console()
    assert main(["--show", str(tmp_path / "trace.jsonl")], console=again) == mas.EXIT_APPROVED
    shown = output(again)
    turn = f"Your call · iteration {R}"  # asked when the one plan has been rejected R times
    assert shown.count(turn) == live.count(turn) == 1
    assert "a/f/p/s: x" in shown and "feedback for the worker: Name them." in shown
    diagram = mermaid_diagram(read_trace(tmp_path / "trace.jsonl"))
    assert "participant H as human" in diagram and "H-->>O: revise Name them." in diagram


def test_a_replay_keeps_the_recorded_limits(console, tmp_path) -> None:
    """The budget gate refuses in a replay what it refused live, whatever the flags say."""
    rec = tmp_path / "rec"
    argv = ["task", "--demo-scenario", "exhaust", "--max-plans", "1", "--log-dir", str(rec), "--quiet"]
    assert main(argv, console=fresh_console()) == mas.EXIT_NOT_APPROVED
    recording = only_trace(rec)
    code = main(["--replay", str(recording), "task", "--json", "--log-dir", str(tmp_path / "again")], console=console)
    summary = json.loads(output(console)[output(console).index("{") :])
    assert code == mas.EXIT_NOT_APPROVED and summary["stop_reason"] == "escalation_exhausted" and summary["plans"] == 1


def test_a_task_read_from_stdin_leaves_no_answers_and_says_so(console, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Write a haiku about agents"))
    assert main(["-", "--step"], console=console) == mas.EXIT_APPROVED
    shown = output(console)
    assert "nothing to read answers from" in " ".join(shown.split()) and "next call: " not in shown


def test_a_human_who_approves_a_draft_that_fails_a_check_is_told_and_it_is_traced(make_llm, console, tmp_path) -> None:
    client = FakeClient(
        planner=[completion("1. Answer briefly.")],
        worker=[completion(f"one two three four {n}") for n in range(R)],  # never a repeat
        critic=[],
    )
    llm = human_llm(make_llm, client, "a\n")
    state = mas.orchestrate("Answer in at most 3 words.", llm)
    assert state["stop_reason"] == "approved"
    warnings = [e["message"] for e in events_of(tmp_path / "trace.jsonl", "warning")]
    assert any("a human approved a draft that fails a check" in w for w in warnings)


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["event", "role", "prompt_tokens", "title", "action"]),
            st.one_of(
                st.integers(), st.text(max_size=5), st.sampled_from(["start", "call", "step", "end", "escalation"])
            ),
            max_size=4,
        ),
        max_size=5,
    )
)
def test_any_json_lines_are_read_whole_or_refused_in_one_line(tmp_path_factory, events) -> None:
    """Whatever a file holds, --show either draws it or says in one line why not; never a traceback."""
    path = tmp_path_factory.mktemp("t") / "any.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    try:
        read = read_trace(path)
    except mas.UsageError as err:
        assert "\n" not in str(err)
        return
    show_recorded(path, Display(fresh_console()))
    mermaid_diagram(read)


def test_a_trace_missing_any_one_field_is_drawn_or_refused_in_one_line(tmp_path) -> None:
    """Drop each field of each event of a real trace in turn: --show and --diagram never raise."""
    main([HAIKU, "--demo-scenario", "approve", "--quiet", "--log-dir", str(tmp_path / "rec")], console=fresh_console())
    events = events_of(only_trace(tmp_path / "rec"))
    broken = tmp_path / "broken.jsonl"
    tried = 0
    for i, event in enumerate(events):
        for key in event:
            damaged = [dict(e) for e in events]
            del damaged[i][key]
            broken.write_text("".join(json.dumps(e) + "\n" for e in damaged))
            for flag in ("--show", "--diagram"):
                console = fresh_console()
                code = main([flag, str(broken)], console=console)
                tried += 1
                assert code in (mas.EXIT_APPROVED, mas.EXIT_USAGE), (flag, event["event"], key)
                if code == mas.EXIT_USAGE:
                    assert output(console).count("error: ") == 1
    assert tried > 100


def test_show_in_verbose_mode_also_shows_the_prompts_and_raw_verdicts(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    live = Console(file=io.StringIO(), width=120, color_system=None)
    main([HAIKU, "--demo-scenario", "escalate", "--verbose"], console=live)
    again = fresh_console()
    main(["--show", str(only_trace(Path("logs"))), "--verbose"], console=again)
    shown, said = output(again), output(live)
    for needle in ("prompt → planner (max_tokens", "raw reply ← critic", "verdict read from json"):
        assert shown.count(needle) == said.count(needle) > 0, needle


@pytest.mark.docs
@pytest.mark.parametrize("doc", ["README.md", "CONCEPTS.md CONCEPTS-2.md"])  # the concepts, in their two parts
@pytest.mark.parametrize(
    "mode", ["--step", "--show", "--replay", "--diagram", "--human", "stages.variants.model_driven"]
)
def test_each_classroom_mode_is_named_with_a_command_that_shows_it(doc: str, mode: str) -> None:
    text = "\n".join((ROOT / part).read_text(encoding="utf-8") for part in doc.split())
    commands = re.findall(r"python3? (?:-m )?\S+[^`\n]*", text)
    assert any(mode in command for command in commands), f"{doc} has no command that runs {mode}"
