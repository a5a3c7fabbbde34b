"""Handoffs on plain function calling: agents that delegate, and get control back.

The idea
--------
A coordinator should not do every job itself. It knows a few specialists, and
its model sees each of them as one tool, ``transfer_to_<name>``, described by
that specialist's ``handoff_description``. When the model calls such a tool,
this module runs the specialist through its own short conversation and gives
the specialist's answer back to the coordinator as the tool's result. The
coordinator then picks the next specialist, or answers the user.

A handoff here is a call, not a jump: control always comes back. (In the
original workshop code it did not, so the coordinator never saw what its
specialists produced.)

The flow
--------
::

    run(coordinator, request)
      model turn ─┬─ plain text ──────> the answer: the run ends
        ^         ├─ a tool call ─────> tool(context, **args) ───> its result, as a "tool" message ─┐
        │         └─ transfer_to_X ───> run_agent(X, task) ──────> X's answer, as a "tool" message ─┤
        └───────────────────────────────────────────────────────────────────────────────────────────┘

Every tool receives the run context: a mutable object of your choosing that
the model never sees unless a tool returns part of it. A model's mistakes in
calling tools (arguments that are not JSON, a tool that does not exist, a
missing argument) go back to it as the tool's result, so it can try again;
they never end the run. An agent may also carry ``check_answer``, a guardrail
in code that sends a premature answer back ("you have not asked research
yet"). One limit ends the run: ``max_turns``, the number of model calls in
the whole run, the specialists' included.

Small local models often write a tool call as JSON text instead of using the
API's tool_calls field. ``calls_written_as_text`` recognises that and treats
it as the call it was meant to be.

Left out on purpose
-------------------
Parallel specialists, streaming, passing the whole conversation along on a
handoff (a specialist gets only the task it is handed), and the agents SDK,
whose machinery this file shows in the open.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

from rich.text import Text

import multi_agent_system as mas
from machinery.gateway import LLM
from machinery.text import JSON_MAX_DEPTH, clip, json_objects, nesting_depth
from multi_agent_system import ask

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

DEFAULT_MAX_TURNS = 12  # model calls per run; the stage 3 demo needs 6 when all goes well, so 2 retries each
HANDOFF_PREFIX = "transfer_to_"  # the naming convention models have seen most in training
TOOL_RESULT_MAX_CHARS = 2_000  # a tool result as the model sees it; the context keeps everything
SHOWN_CHARS = 160  # tool arguments and results in --verbose lines; the trace keeps them whole
UNUSABLE_REPLIES_MAX = 2  # a specialist's refused answers before it hands back what it has: asking a third time
# in the same words gets the same reply, and the coordinator can ask again differently

STOP_REASONS = {
    **mas.STOP_REASONS,
    "answered": "the coordinator answered",
    "max_turns": "the run used every model turn it was allowed without finishing",
    "usage_error": "a mistake in the command line (a path, an input) was refused after the run had started",
}


# ---------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------


class ToolError(mas.AgentSystemError):
    """A mistake the model can fix. Its message goes back to the model as the tool's result."""


class HandBack(mas.AgentSystemError):
    """A specialist gives up: ``UNUSABLE_REPLIES_MAX`` of its answers were refused. Carries what it has."""

    def __init__(self, agent: str, last: str, objection: str):
        super().__init__(f"{agent} gave up: {objection}")
        self.agent, self.last, self.objection = agent, last, objection

    def report(self) -> str:
        """What the coordinator is told: what the specialist has (its last reply, unchecked), or plainly nothing."""
        tries = f"after {UNUSABLE_REPLIES_MAX} replies that could not be used"
        if self.last.strip():
            has = f"Its last reply, which could not be used as it is: {clip(self.last.strip(), SHOWN_CHARS * 2)}"
        else:
            has = f"{self.agent} wrote nothing usable, so it hands back nothing."
        return (
            f"{self.agent} could not finish {tries} (it was told: {self.objection}). {has} "
            "Decide what to do next: hand off again with a clearer task, or go on without it."
        )


@dataclass(frozen=True)
class Tool:
    """A Python function the model may call. ``run(context, **arguments)`` returns text for the model."""

    name: str
    description: str
    run: Callable[..., str]
    parameters: dict[str, str] = field(default_factory=dict)
    """Argument name -> what it means. Every argument is a required string: small models cope best."""

    def schema(self) -> dict[str, Any]:
        return _function_schema(self.name, self.description, self.parameters, required=list(self.parameters))

    def invoke(self, context: Any, arguments: dict[str, Any]) -> str:
        missing = [name for name in self.parameters if name not in arguments]
        if missing:
            raise ToolError(f"{self.name} needs the argument(s) {', '.join(missing)}")
        # Models sometimes send 3 for "3" or a list for a sentence: accept, as text.
        given = {
            name: value if isinstance(value, str) else json.dumps(value)
            for name, value in arguments.items()
            if name in self.parameters  # extra arguments are ignored rather than refused
        }
        return self.run(context, **given)


@dataclass
class Agent:
    """Instructions, tools, and the agents it may hand off to."""

    name: str
    instructions: str
    handoff_description: str = ""
    """What a coordinator's model reads to decide whether to call this agent."""
    tools: list[Tool] = field(default_factory=list)
    handoffs: list[Agent] = field(default_factory=list)
    check_answer: Callable[[Any, str], str | None] | None = None
    """A guardrail in code: (context, answer) -> None to accept, or what to tell the model instead.
    It may also keep what the answer holds: when a reply is the work (a list of notes), no tool is needed."""
    tool_choice: Callable[[Any, int], str | None] | None = None
    """(context, tool results so far) -> "required", "none", or None to let the model choose.
    Small models call tools well when they must and answer well when they cannot; choosing is what they get wrong."""
    ready: Callable[[Any], str | None] | None = None
    """For a specialist: (context) -> None if a handoff to it makes sense now, or why not (sent back as an error)."""
    report: Callable[[Any, str], str] | None = None
    """For a specialist: (context, answer) -> what the caller is told when it finishes; by default its answer."""
    answer_schema: dict[str, Any] | None = None
    """Structured output for the answer (``LLM.complete``'s ``schema``), when a tool call would be overkill."""
    style: str = "white"  # the colour of this agent's panels


@dataclass(frozen=True)
class Call:
    """One tool call, from the API's tool_calls field or recovered from the reply's text."""

    id: str
    name: str
    arguments: str

    def as_message(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class RunRecord:
    """What the whole run has used, shared by the coordinator and every specialist."""

    max_turns: int
    turns: int = 0
    handoffs: list[str] = field(default_factory=list)  # "coordinator -> research", in order

    def take_turn(self, who: str) -> None:
        if self.turns >= self.max_turns:
            raise mas.StopRun("max_turns", f"all {self.max_turns} model turns were used; {who} had not finished")
        self.turns += 1


@dataclass
class RunResult:
    output: str
    stop_reason: str
    detail: str
    turns: int
    handoffs: list[str]

    @property
    def answered(self) -> bool:
        return self.stop_reason == "answered"


# ---------------------------------------------------------------------------
# Reading tool calls
# ---------------------------------------------------------------------------


def _function_schema(name: str, description: str, parameters: dict[str, str], required: list[str]) -> dict[str, Any]:
    properties = {arg: {"type": "string", "description": meaning} for arg, meaning in parameters.items()}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def _ready(target: Tool | Agent | None, context: Any) -> bool:
    return not (isinstance(target, Agent) and target.ready and target.ready(context))


def call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """A tool call as structured output: {"name": one of the tools, "arguments": {...}}."""
    names = [tool["function"]["name"] for tool in tools]
    return {
        "name": "tool_call",
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string", "enum": names}, "arguments": {"type": "object"}},
            "required": ["name", "arguments"],
        },
    }


def handoff_schema(agent: Agent) -> dict[str, Any]:
    """The tool a coordinator's model sees for one specialist. The task is optional: small models forget it."""
    return _function_schema(
        HANDOFF_PREFIX + agent.name,
        agent.handoff_description or f"Hand the task to {agent.name}.",
        {"task": "what you want done, with everything the specialist needs to know"},
        required=[],
    )


def parse_arguments(raw: str | None) -> dict[str, Any]:
    """Tool arguments as a dict, or a ToolError that tells the model what to send instead.

    >>> parse_arguments('{"note": "hi"}')
    {'note': 'hi'}
    >>> parse_arguments("")  # some servers send nothing for a call without arguments
    {}
    >>> parse_arguments('{"note": ')
    Traceback (most recent call last):
    ...
    stages.stage3.handoffs.ToolError: the arguments are not valid JSON (Expecting value at char 9): send one JSON object
    """
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as err:
        reason = f"{err.msg} at char {err.pos}" if isinstance(err, json.JSONDecodeError) else str(err)
        raise ToolError(f"the arguments are not valid JSON ({reason}): send one JSON object") from None
    except RecursionError:  # thousands of nested brackets: no tool takes that
        raise ToolError("the arguments are nested too deeply to read: send one flat JSON object") from None
    if not isinstance(value, dict):
        raise ToolError(f"the arguments must be a JSON object, not {type(value).__name__}")
    if nesting_depth(value) > JSON_MAX_DEPTH:
        raise ToolError("the arguments are nested too deeply to read: send one flat JSON object")
    return value


def calls_written_as_text(content: str, turn: int) -> list[Call]:
    """Tool calls a model wrote as text, ``{"name": ..., "arguments": {...}}``, one or several.

    >>> calls_written_as_text('```json\\n{"name": "record_note", "arguments": {"note": "x"}}\\n```', 3)
    [Call(id='text_call_3_0', name='record_note', arguments='{"note": "x"}')]
    >>> calls_written_as_text("The plan has three steps.", 3)
    []
    """
    calls: list[Call] = []
    for data in json_objects(content):
        if not isinstance(data.get("name"), str) or not ("arguments" in data or "parameters" in data):
            continue  # an ordinary JSON answer, not a call
        arguments = data.get("arguments", data.get("parameters"))
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        calls.append(Call(f"text_call_{turn}_{len(calls)}", data["name"], arguments))
    return calls


# ---------------------------------------------------------------------------
# Running agents
# ---------------------------------------------------------------------------


def _say(llm: LLM, text: str, style: str = "bold") -> None:
    if llm.display.chatty:
        llm.display.console.print(Text(text, style=style))


def run_agent(agent: Agent, task: str, context: Any, llm: LLM, record: RunRecord, *, tries: int | None = None) -> str:
    """Run one agent until it replies without calling a tool, and return that reply.

    Raises StopRun when the run's turns or a budget run out, or the server fails; with ``tries``
    (a specialist's), HandBack once that many of its answers were refused by ``check_answer``.
    """
    tools: dict[str, Tool | Agent] = {tool.name: tool for tool in agent.tools}
    tools.update({HANDOFF_PREFIX + specialist.name: specialist for specialist in agent.handoffs})
    schemas = [tool.schema() for tool in agent.tools] + [handoff_schema(a) for a in agent.handoffs]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": agent.instructions},
        {"role": "user", "content": task},
    ]
    insist = False  # after a refused answer, the next turn must call a tool
    results = 0  # tool results this agent has had, for its tool_choice
    refused = 0  # answers check_answer sent back
    while True:
        record.take_turn(agent.name)
        choice = "required" if insist else agent.tool_choice(context, results) if agent.tool_choice else None
        if not schemas:
            choice = None
        # Servers that ignore tool_choice (llama.cpp without a tool grammar) still honour a JSON schema,
        # so a required call is also asked for as structured output: a call written as text, read below.
        schema = None  # while the model may choose between calling and answering, its reply is free
        if choice == "required":  # only the moves that make sense now: a handoff that is not ready is left out
            schema = call_schema([t for t in schemas if _ready(tools.get(t["function"]["name"]), context)] or schemas)
        elif choice == "none" or not schemas:
            schema = agent.answer_schema
        reply = ask(  # a snapshot of the messages: the list grows on
            llm, agent.name, list(messages), tools=schemas or None, tool_choice=choice, schema=schema
        )
        calls = [Call(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in reply.tool_calls]
        message = reply.message
        if not calls and schemas and choice != "none":  # told not to call a tool, JSON in the text is the answer
            calls = calls_written_as_text(reply.content, record.turns)
            if calls:
                llm.display.note(f"{agent.name} wrote its tool call as text; treating it as a call")
                message = {"role": "assistant", "tool_calls": [call.as_message() for call in calls]}
        messages.append(message)
        if calls:
            insist = False
            llm.display.note(f"{agent.name} (turn {record.turns}/{record.max_turns}) calls {len(calls)} tool(s)")
            for call in calls:
                result = _answer(call, tools, agent, context, llm, record)
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": clip(result, TOOL_RESULT_MAX_CHARS)}
                )
                results += 1
            continue
        objection = agent.check_answer(context, reply.content) if agent.check_answer else None
        if objection is None:
            llm.display.step(f"{agent.name} · answer", reply.content or "(no text)", reply, agent.style)
            return reply.content.strip()
        _say(llm, f"✗ {agent.name} tried to answer too early: {objection}", "yellow")
        llm.trace.event("answer_refused", agent=agent.name, answer=reply.content, reason=objection)
        refused += 1
        if tries is not None and refused >= tries:
            raise HandBack(agent.name, reply.content, objection)
        insist = bool(schemas) and choice != "none"  # told to answer, it must answer again, not call
        messages.pop()  # a refused answer would anchor the next try, and the prompt would grow with each
        if messages[-1] != {"role": "user", "content": objection}:
            messages.append({"role": "user", "content": objection})


def _answer(
    call: Call, tools: dict[str, Tool | Agent], caller: Agent, context: Any, llm: LLM, record: RunRecord
) -> str:
    """The text that goes back to the model for one tool call; a ToolError becomes an error message."""
    llm.display.note(f"{caller.name} → {call.name}({clip(call.arguments, SHOWN_CHARS)})")
    try:
        target = tools.get(call.name)
        if target is None:
            raise ToolError(f"there is no tool named {call.name!r}; you can call: {', '.join(tools) or 'none'}")
        arguments = parse_arguments(call.arguments)
        if isinstance(target, Agent):
            return _hand_off(caller, target, str(arguments.get("task") or ""), context, llm, record)
        result = target.invoke(context, arguments)
    except ToolError as err:
        llm.display.note(f"  ↳ error sent back to {caller.name}: {err}")
        llm.trace.event("tool_error", agent=caller.name, tool=call.name, arguments=call.arguments, error=str(err))
        return f"error: {err}"
    llm.display.note(f"  ↳ {clip(result, SHOWN_CHARS)}")
    llm.trace.event("tool", agent=caller.name, tool=call.name, arguments=call.arguments, result=result)
    return result


def _hand_off(caller: Agent, specialist: Agent, task: str, context: Any, llm: LLM, record: RunRecord) -> str:
    not_now = specialist.ready(context) if specialist.ready else None
    if not_now:
        raise ToolError(not_now)
    task = task.strip() or f"Do your part of the job for {caller.name}."
    record.handoffs.append(f"{caller.name} -> {specialist.name}")
    llm.trace.event("handoff", source=caller.name, target=specialist.name, task=task)
    _say(llm, f"⇢ {caller.name} hands off to {specialist.name}: {clip(task, SHOWN_CHARS)}", specialist.style)
    try:
        answer = run_agent(specialist, task, context, llm, record, tries=UNUSABLE_REPLIES_MAX)
    except HandBack as gave_up:  # the caller decides what next, with what the specialist has
        answer = gave_up.report()
        llm.trace.event("handoff_return", source=specialist.name, target=caller.name, answer=answer, gave_up=True)
        _say(llm, f"⇠ {specialist.name} hands control back to {caller.name} without usable work", "yellow")
        return answer
    if specialist.report:
        answer = specialist.report(context, answer)
    llm.trace.event("handoff_return", source=specialist.name, target=caller.name, answer=answer, gave_up=False)
    _say(llm, f"⇠ {specialist.name} hands control back to {caller.name}", specialist.style)
    return answer or f"({specialist.name} finished without a written answer)"


def run(agent: Agent, request: str, context: Any, llm: LLM, *, max_turns: int = DEFAULT_MAX_TURNS) -> RunResult:
    """Run ``agent`` (usually a coordinator) on ``request``. It stops when:

    answered      the coordinator replied without calling a tool
    max_turns     ``max_turns`` model calls were made, the specialists' included
    token_budget  the next call would not fit in the token budget
    cost_budget   the next call would not fit in the cost budget
    timeout       the run's time limit was reached
    config_error  the server refused the key, the model or the request, or could not be reached
    api_error     the server kept failing after the SDK's retries
    interrupted   Ctrl-C

    Whatever the tools wrote into ``context`` stays there however the run ends,
    and the trace's ``end`` event holds it too (when it is a dataclass).
    A bug in a tool is not caught: it is the code that is wrong, not the run.
    """
    record = RunRecord(max_turns)
    llm.trace.event(
        "start",
        agent=agent.name,
        request=request,
        demo=llm.settings.demo,
        server=llm.settings.server(),
        max_turns=max_turns,
    )
    result = RunResult("", "crashed", "an unexpected error ended the run", 0, record.handoffs)
    try:
        output = run_agent(agent, request, context, llm, record)
        result = RunResult(
            output, "answered", f"{agent.name} answered after {record.turns} turn(s)", record.turns, record.handoffs
        )
    except mas.StopRun as halt:
        result = RunResult("", halt.stop_reason, halt.detail, record.turns, record.handoffs)
    except KeyboardInterrupt:
        result = RunResult("", "interrupted", "stopped with Ctrl-C", record.turns, record.handoffs)
    finally:
        llm.trace.event(
            "end",
            stop_reason=result.stop_reason,
            detail=result.detail,
            turns=record.turns,
            handoffs=record.handoffs,
            calls=llm.ledger.calls,
            total_tokens=llm.ledger.total_tokens,
            cost_usd=llm.ledger.cost_usd,
            seconds=round(llm.elapsed(), 3),
            output=result.output,
            context=asdict(context) if is_dataclass(context) and not isinstance(context, type) else None,
        )
    return result
