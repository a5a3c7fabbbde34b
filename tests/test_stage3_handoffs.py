"""Stage 3 handoffs: routing, control coming back, tool errors, the turn limit, the run context, the demo CLI."""

from __future__ import annotations

import doctest
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import multi_agent_system as mas
from conftest import FakeClient, completion, output
from fake_server import LoopbackServer, error_body
from machinery.demo import ScriptedClient
from machinery.gateway import request_role
from stages.stage3 import demo, handoffs
from stages.stage3.handoffs import Agent, Tool, ToolError, run


@dataclass
class Notebook:
    notes: list[str] = field(default_factory=list)


def save_note(context: Notebook, note: str) -> str:
    if note == "forbidden":
        raise ToolError("that note is not allowed")
    context.notes.append(note)
    return f"saved note {len(context.notes)}"


NOTE_TOOL = Tool("record_note", "Save a note.", save_note, {"note": "the note"})


def calls(*specs: tuple[str, object]) -> object:
    """A reply that calls tools, as a server would send it."""
    return completion(None, tool_calls=list(specs))


def team() -> Agent:
    research = Agent("research", "You research.", "Finds facts; call it first.", tools=[NOTE_TOOL])
    planner = Agent("planner", "You plan.", "Turns facts into a plan.")
    return Agent("coordinator", "You coordinate.", handoffs=[research, planner])


def systems(client: FakeClient) -> list[str]:
    return [request["messages"][0]["content"] for request in client.calls]


def test_coordinator_hands_off_and_gets_control_back(make_llm):
    client = FakeClient(
        calls(("transfer_to_research", {"task": "find facts"})),
        calls(("record_note", {"note": "fact A"})),
        completion("research done"),
        calls(("transfer_to_planner", {"task": "plan it"})),
        completion("1. do it"),
        completion("final answer"),
    )
    context = Notebook()
    result = run(team(), "the question", context, make_llm(client))

    assert result.answered and result.output == "final answer"
    assert result.handoffs == ["coordinator -> research", "coordinator -> planner"]
    assert systems(client) == [
        "You coordinate.",
        "You research.",
        "You research.",
        "You coordinate.",
        "You plan.",
        "You coordinate.",
    ]
    assert client.calls[1]["messages"][1] == {"role": "user", "content": "find facts"}  # the task handed over
    # Control came back: the coordinator's next turn holds research's answer as the tool's result.
    back = client.calls[3]["messages"]
    assert back[-1]["role"] == "tool" and back[-1]["content"] == "research done"
    assert back[-1]["tool_call_id"] == back[-2]["tool_calls"][0]["id"]
    assert client.calls[-1]["messages"][-1]["content"] == "1. do it"
    assert context.notes == ["fact A"]


def test_the_coordinator_sees_one_transfer_tool_per_specialist(make_llm):
    client = FakeClient(completion("I can answer directly."))
    run(team(), "q", Notebook(), make_llm(client))
    tools = {t["function"]["name"]: t["function"]["description"] for t in client.calls[0]["tools"]}
    assert tools == {
        "transfer_to_research": "Finds facts; call it first.",
        "transfer_to_planner": "Turns facts into a plan.",
    }


@pytest.mark.parametrize(
    "bad_call, error",
    [
        (("record_note", '{"note": '), "error: the arguments are not valid JSON"),
        (("record_note", '["a list"]'), "error: the arguments must be a JSON object"),
        (("delete_everything", {}), "error: there is no tool named 'delete_everything'; you can call: record_note"),
        (("record_note", {"text": "wrong name"}), "error: record_note needs the argument(s) note"),
        (("record_note", {"note": "forbidden"}), "error: that note is not allowed"),
    ],
)
def test_tool_mistakes_go_back_to_the_model_and_the_run_continues(make_llm, bad_call, error):
    client = FakeClient(calls(bad_call), calls(("record_note", {"note": "fixed"})), completion("done"))
    context = Notebook()
    result = run(Agent("research", "You research.", tools=[NOTE_TOOL]), "q", context, make_llm(client))

    assert result.answered and result.output == "done"
    answer = client.calls[1]["messages"][-1]
    assert answer["role"] == "tool" and answer["content"].startswith(error)
    assert context.notes == ["fixed"]


def test_max_turns_stops_a_run_that_would_loop(make_llm):
    client = ScriptedClient(lambda request: [("record_note", {"note": "again"})])
    context = Notebook()
    result = run(Agent("research", "You research.", tools=[NOTE_TOOL]), "q", context, make_llm(client), max_turns=3)

    assert result.stop_reason == "max_turns" and not result.answered
    assert len(client.requests) == 3 and result.turns == 3
    assert context.notes == ["again"] * 3


def test_specialists_turns_count_against_the_same_limit(make_llm):
    client = FakeClient(calls(("transfer_to_research", {"task": "t"})), calls(("record_note", {"note": "n"})))
    result = run(team(), "q", Notebook(), make_llm(client), max_turns=2)
    assert result.stop_reason == "max_turns" and "research had not finished" in result.detail


def test_a_tool_call_written_as_text_is_treated_as_a_call(make_llm):
    text = 'Sure!\n```json\n{"name": "record_note", "arguments": {"note": "from text"}}\n```'
    client = FakeClient(completion(text), completion("done"))
    context = Notebook()
    result = run(Agent("research", "You research.", tools=[NOTE_TOOL]), "q", context, make_llm(client))

    assert result.answered and context.notes == ["from text"]
    assistant, tool = client.calls[1]["messages"][-2:]
    assert assistant["tool_calls"][0]["function"]["name"] == "record_note"
    assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"]


def test_check_answer_sends_a_premature_answer_back(make_llm, console):
    def needs_a_note(context: Notebook, answer: str) -> str | None:
        return None if context.notes else "Save a note first."

    agent = Agent("research", "You research.", tools=[NOTE_TOOL], check_answer=needs_a_note)
    client = FakeClient(
        completion("too early"), completion("still early"), calls(("record_note", {"note": "n"})), completion("done")
    )
    result = run(agent, "q", Notebook(), make_llm(client))

    assert result.answered and result.output == "done"
    second = client.calls[1]["messages"]
    assert second[-1] == {"role": "user", "content": "Save a note first."}
    assert all(m.get("content") != "too early" for m in second)  # the refused answer is not kept
    assert client.calls[2]["messages"] == second  # a repeated objection is not stacked
    assert "research tried to answer too early" in output(console)
    # only the turns right after a refusal insist on a tool call
    assert [c.get("tool_choice") for c in client.calls] == [None, "required", "required", None]


def test_the_run_context_is_written_by_tools_and_shown_to_models_only_through_them(make_llm):
    client = ScriptedClient(demo.demo_responder())
    context = demo.ResearchContext(demo.DEFAULT_QUESTION)
    result = run(demo.build_agents(), demo.DEFAULT_QUESTION, context, make_llm(client))

    assert result.answered and result.handoffs == ["coordinator -> research", "coordinator -> planner"]
    assert len(context.notes) == 4 and len(context.action_items) == 5
    first_note = context.notes[0]
    seen_by = [
        (request["messages"][0]["content"], message["role"])
        for request in client.requests
        for message in request["messages"]
        if first_note in str(message.get("content")) or first_note in json.dumps(message.get("tool_calls", ""))
    ]
    # Research wrote it (its answer, read into the context by code); only the planner was shown it, through
    # read_notes. The coordinator was told how many notes there are, never what they say.
    assert seen_by == [(demo.PLANNER_PROMPT, "tool")]
    assert demo.list_items(result.output) == context.action_items


def test_a_specialists_list_is_read_into_the_context_or_sent_back():
    context = demo.ResearchContext("q")
    assert demo.take_notes(context, "I could not think of anything.") is not None and context.notes == []
    many = json.dumps({"notes": [f"note {i}" for i in range(demo.MAX_NOTES + 3)]})
    assert demo.take_notes(context, many) is None and len(context.notes) == demo.MAX_NOTES
    assert demo.take_plan(context, "1. Do this.\n2) Then that.\n- And this.") is None
    assert context.action_items == ["Do this.", "Then that.", "And this."]
    assert demo.list_items("[" * 1500 + "]" * 1500) == []  # nested absurdly deep: no list, no RecursionError


def test_each_agent_is_told_when_it_must_call_and_when_it_must_answer(make_llm):
    client = ScriptedClient(demo.demo_responder())
    run(demo.build_agents(), demo.DEFAULT_QUESTION, demo.ResearchContext(demo.DEFAULT_QUESTION), make_llm(client))
    by_agent = [(request_role(r), r.get("tool_choice"), r.get("response_format")) for r in client.requests]
    names = [
        (role, choice, fmt and fmt["json_schema"]["schema"]["properties"].get("name", {}).get("enum"))
        for role, choice, fmt in by_agent
    ]
    assert names == [
        ("coordinator", "required", ["transfer_to_research"]),  # the planner is not ready: it is not offered
        ("research", None, None),  # no tools: its answer is structured output
        ("coordinator", "required", ["transfer_to_planner"]),
        ("planner", "required", ["read_notes"]),
        ("planner", "none", None),
        ("coordinator", "none", None),
    ]
    schemas = [fmt["json_schema"]["name"] for _, _, fmt in by_agent if fmt]
    assert schemas == ["tool_call", "notes", "tool_call", "tool_call", "steps", "plan"]


def test_a_handoff_out_of_order_goes_back_as_an_error(make_llm):
    client = FakeClient(
        calls(("transfer_to_planner", {"task": "plan"})),
        calls(("transfer_to_research", {"task": "look"})),
        completion('{"notes": ["a", "b", "c"]}'),
        calls(("transfer_to_research", {"task": "again"})),
    )
    context = demo.ResearchContext("q")
    result = run(demo.build_agents(), "q", context, make_llm(client), max_turns=4)
    refused = client.calls[1]["messages"][-1]
    assert refused["role"] == "tool" and refused["content"].startswith("error: the planner needs research notes")
    assert context.notes == ["a", "b", "c"] and result.stop_reason == "max_turns"
    # What came back to the coordinator is the report code wrote, not the notes.
    assert client.calls[3]["messages"][-1]["content"] == "Research saved 3 notes; the planner can read them."


def test_a_run_that_stops_early_shows_and_traces_what_was_gathered(console):
    assert demo.main(["--max-turns", "3"], console=console) == mas.EXIT_NOT_APPROVED
    text = output(console)
    assert "NOT FINISHED: gathered so far" in text and demo._NOTES[0][:40] in text
    trace = next(Path("logs").glob("*.jsonl"))
    end = json.loads(trace.read_text().splitlines()[-1])
    assert end["event"] == "end" and end["context"]["notes"] == demo._NOTES


def test_demo_verbose_shows_each_system_prompt_once(console):
    assert demo.main(["--verbose"], console=console) == 0
    text = output(console)
    for prompt in (demo.COORDINATOR_PROMPT, demo.RESEARCH_PROMPT, demo.PLANNER_PROMPT):
        assert text.count(prompt.splitlines()[0]) == 1


@pytest.mark.parametrize(
    "program",
    ["stages.stage3.demo", "stages.stage3.activity.starter_workflow", "stages.stage3.activity.solution_workflow"],
)
def test_help_fits_80_columns(program, monkeypatch, capsys):
    import importlib

    monkeypatch.setenv("COLUMNS", "80")
    assert importlib.import_module(program).main(["--help"]) == 0
    wide = [line for line in capsys.readouterr().out.splitlines() if len(line) > 80]
    assert wide == []


def test_demo_runs_offline_and_says_it_is_scripted(console):
    assert demo.main(["--verbose"], console=console) == mas.EXIT_APPROVED
    text = output(console)
    assert "Scripted demo model, not a real LLM" in text
    assert "coordinator hands off to research" in text and "research hands control back to coordinator" in text
    assert "run context at the end" in text and "stop reason: answered" in text
    trace = next(Path("logs").glob("*.jsonl"))
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [e["target"] for e in events if e["event"] == "handoff"] == ["research", "planner"]
    assert events[-1]["event"] == "end" and events[-1]["stop_reason"] == "answered" and events[-1]["calls"] == 6


def test_demo_accepts_a_question(console):
    assert demo.main(["How do we rotate our API keys?"], console=console) == 0
    assert "rotate our API keys" in output(console)


def test_demo_exit_codes(console, monkeypatch):
    assert demo.main(["--max-turns", "0"], console=console) == mas.EXIT_USAGE
    assert demo.main(["   "], console=console) == mas.EXIT_USAGE
    assert demo.main(["--help"], console=console) == 0
    assert demo.main(["--max-turns", "2"], console=console) == mas.EXIT_NOT_APPROVED
    assert "stop reason: max_turns" in output(console)

    interrupted = FakeClient(KeyboardInterrupt())
    assert demo.main([], console=console, client=interrupted) == mas.EXIT_INTERRUPTED


def test_demo_configuration_error_is_one_line_and_exit_2(console, monkeypatch):
    with LoopbackServer() as server:  # the real SDK over real HTTP, refusing the key
        server.answers.append((401, error_body("Incorrect API key provided"), {}))
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
        assert demo.main([], console=console) == mas.EXIT_USAGE
    errors = [line for line in output(console).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "rejected the API key" in errors[0]
    assert "Traceback" not in output(console)


def test_doctests_of_the_stage3_modules_pass():
    from stages.stage3.activity import check, machinery, players, solution_workflow

    for module in (handoffs, demo, machinery, solution_workflow, players, check):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


@pytest.mark.parametrize("program", ["demo", "audit"])
def test_the_walkthrough_tool_says_in_one_line_that_it_cannot_read_a_stage3_trace(program, console, capsys):
    import importlib
    import sys

    from stages.stage3.activity import starter_workflow

    main = demo.main if program == "demo" else starter_workflow.main
    assert main(["--demo"], console=console) == 0
    (trace,) = Path("logs").glob("*.jsonl")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    try:
        walkthrough = importlib.import_module("trace_walkthrough")
    finally:
        sys.path.pop(0)
    assert walkthrough.main([str(trace)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "stage 3" in err[0] and "Traceback" not in err[0]


NOTES = (
    '{"notes": ["Old apps have no seams: start with end-to-end tests.", "Run the tests in CI on every pull request."]}'
)


def test_a_specialist_with_nothing_usable_hands_back_after_two_replies_and_the_coordinator_decides(make_llm, console):
    client = FakeClient(
        calls(("transfer_to_research", {"task": "What matters?"})),
        completion(""),  # research: nothing at all
        completion("I am not able to list facts about that."),  # research: prose, no list
        calls(("transfer_to_research", {"task": "List three risks of adding tests to an old app."})),  # a new ask
        completion(NOTES),
        calls(("transfer_to_planner", {"task": "Plan it."})),
        calls(("read_notes", {})),
        completion('{"steps": ["Set up pytest and run it in CI on every pull request."]}'),
        completion('{"plan": ["Set up pytest and run it in CI on every pull request."]}'),
    )
    context = demo.ResearchContext("q")
    result = run(demo.build_agents(), "q", context, make_llm(client))

    assert result.answered and len(client.calls) == 9
    assert [request_role(c) for c in client.calls[:4]] == ["coordinator", "research", "research", "coordinator"]
    back = client.calls[3]["messages"][-1]  # what the coordinator is told when research hands back
    assert back["role"] == "tool"
    assert f"after {handoffs.UNUSABLE_REPLIES_MAX} replies" in back["content"]
    assert "nothing usable" not in back["content"] and "not able to list facts" in back["content"]
    assert result.handoffs == ["coordinator -> research", "coordinator -> research", "coordinator -> planner"]
    assert "research hands control back to coordinator without usable work" in output(console)


def test_a_specialist_that_wrote_nothing_says_so_plainly(make_llm):
    client = FakeClient(
        calls(("transfer_to_research", {"task": "What matters?"})),
        completion(""),
        completion("   "),
        calls(("transfer_to_research", {"task": "List three risks."})),
    )
    result = run(demo.build_agents(), "q", demo.ResearchContext("q"), make_llm(client), max_turns=4)

    assert result.stop_reason == "max_turns" and len(client.calls) == 4
    back = client.calls[3]["messages"][-1]["content"]
    assert "research wrote nothing usable" in back and "hands back nothing" in back
    events = [json.loads(line) for line in Path("trace.jsonl").read_text().splitlines()]
    (returned,) = [e for e in events if e["event"] == "handoff_return"]
    assert returned["gave_up"] is True and returned["answer"] == back
