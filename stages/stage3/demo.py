"""Stage 3 demo: a coordinator delegates to Research, then to Planner, and answers.

The idea
--------
The coordinator owns the conversation with the user but does none of the
work. Its model sees two tools, ``transfer_to_research`` and
``transfer_to_planner``, and chooses which to call. Each specialist runs,
its work lands in the run context, and control comes back with a short
report. When both have reported, the coordinator answers with the plan.

The flow
--------
::

    coordinator ─transfer_to_research─> research: a numbered list -> notes ─┐
        ^  <──────────────── report (control returns) ─────────────────────┘
        │
        ├─────transfer_to_planner──> planner: read_notes, a numbered list -> steps ─┐
        ^  <──────────────── report (control returns) ─────────────────────────────┘
        │
        └─> answer: the ordered plan

The run context (``ResearchContext``) is plain Python. The model never sees
it, except what ``read_notes`` returns to the planner: that is how the
planner learns what research found without the coordinator copying it along.

Sized for small models
----------------------
A 1.5B model on a laptop could not run the first version of this demo to the
end: it answered before saving a note, saved one and stopped, or refused to
plan. So each job is now one a small model does well. A specialist's reply
*is* its work (a numbered list, read by ``list_items()``), instead of one tool
call per note; the planner has one tool, and must call it on its first turn
(``tool_choice="required"``); the coordinator must hand off until there is a
plan, and may only answer once there is (``"none"``). The model still picks
which specialist to call, and a handoff out of order goes back as an error.

Run it
------
::

    python -m stages.stage3.demo --verbose                       # no key: scripted demo model
    python -m stages.stage3.demo "How do we move our team's CI to GitHub Actions?"
    OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.2 python -m stages.stage3.demo

Left out on purpose
-------------------
Real research (no web search: "research" here means the model's own
knowledge), specialists that run in parallel, and a coordinator that loops
back to research when the plan has gaps; stage3/README.md suggests that one
as a stretch task.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

import multi_agent_system as mas
from machinery.cli import ctrl_c_exits, exit_code_for
from machinery.config import clean_task, positive
from machinery.demo import Responder, ToolCallSpec
from machinery.gateway import sdk_retries_shown
from machinery.prices import format_cost
from machinery.text import clip
from stages.stage3 import cli
from stages.stage3.handoffs import DEFAULT_MAX_TURNS, Agent, Tool, calls_written_as_text, run

DEFAULT_QUESTION = "How should a team of four start adding automated tests to an old Python web app that has none?"
MAX_NOTES = 8  # research notes kept; more would crowd the planner's prompt
MAX_ACTION_ITEMS = 8  # a plan longer than this is a backlog, not a plan
NOTE_MAX_CHARS = 400  # one note or action item; a paragraph, not an essay
ITEM_MIN_CHARS = 25  # a sentence, not "read_notes": small models otherwise list tool-like names as steps


# ---------------------------------------------------------------------------
# The run context: written by code and tools, read by tools, never sent whole to a model
# ---------------------------------------------------------------------------


@dataclass
class ResearchContext:
    question: str
    notes: list[str] = field(default_factory=list)
    action_items: list[str] = field(default_factory=list)


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')  # one complete JSON string
_ITEM = re.compile(r"^\s*(?:\d{1,2}\s*[.):]|[-*•])\s+(.+)$")  # "1. x", "2) x", "- x", "* x"


def list_items(answer: str) -> list[str]:
    """The items of a numbered or bulleted list in a reply, or of a JSON list of strings.

    Small models number, bullet, or write JSON; all three are read. Lines that are
    not items (an intro, "Here are the notes:") are left out.

    >>> list_items("Here they are:\\n1. Tests first.\\n2) CI next.\\n- Then review.")
    ['Tests first.', 'CI next.', 'Then review.']
    >>> list_items('["one", "two"]'), list_items('{"steps": ["one"]}'), list_items('{"steps": ["one", "tw')
    (['one', 'two'], ['one'], ['one'])
    >>> list_items("No list here.")
    []
    """
    text = answer.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    if text.startswith(("[", "{")):
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, dict) and len(value) == 1:  # {"notes": [...]}: structured output
            value = next(iter(value.values()))
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return [item.strip() for item in value if item.strip()]
        if value is None and "[" in text:  # cut off at max_tokens: the items that were finished still count
            finished = [_string(q) for q in _QUOTED.findall(text[text.index("[") :])]
            return [item.strip() for item in finished if item.strip()]
    items = []
    for line in answer.splitlines():
        match = _ITEM.match(line)
        if match and match.group(1).strip(" *"):
            items.append(match.group(1).strip().strip("*").strip())
    return items


def _string(quoted: str) -> str:
    try:
        return str(json.loads(quoted))
    except ValueError:  # a bad escape: keep the text as written
        return quoted[1:-1]


def read_notes(context: ResearchContext) -> str:
    if not context.notes:
        return "There are no research notes yet."
    return "\n".join(f"{i}. {note}" for i, note in enumerate(context.notes, 1))


# Each specialist's reply is its work: code reads the list out of it into the
# run context. A tool call per note was the step small models got wrong most.


def list_schema(name: str, least: int, most: int) -> dict[str, Any]:
    """Structured output for a specialist's answer: {name: [least..most short strings]}."""
    sentence = {"type": "string", "minLength": ITEM_MIN_CHARS, "maxLength": NOTE_MAX_CHARS}
    items = {"type": "array", "items": sentence, "minItems": least}
    return {
        "name": name,
        "schema": {
            "type": "object",
            "properties": {name: {**items, "maxItems": most}},
            "required": [name],
            "additionalProperties": False,
        },
    }


def take_notes(context: ResearchContext, answer: str) -> str | None:
    notes = list_items(answer)
    if not notes:
        return "Write your findings as a numbered list: 1. ... 2. ... 3. ..., one sentence each, and nothing else."
    context.notes = [clip(note, NOTE_MAX_CHARS) for note in notes[:MAX_NOTES]]
    return None


def take_plan(context: ResearchContext, answer: str) -> str | None:
    steps = list_items(answer)
    if not steps:
        return "Write the plan as a numbered list: 1. ... 2. ... 3. ..., one action per line, and nothing else."
    context.action_items = [clip(step, NOTE_MAX_CHARS) for step in steps[:MAX_ACTION_ITEMS]]
    return None


# Guardrails: the workflow is linear, so a move out of order goes back.


def research_ready(context: ResearchContext) -> str | None:
    if context.notes:
        return f"research has already reported {len(context.notes)} notes: call transfer_to_planner now"
    return None


def planner_ready(context: ResearchContext) -> str | None:
    if not context.notes:
        return "the planner needs research notes first: call transfer_to_research"
    return None


def coordinator_choice(context: ResearchContext, results: int) -> str:
    """Until there is a plan a handoff is the only sensible move; once there is one, answering is."""
    return "none" if context.action_items else "required"


def coordinator_check(context: ResearchContext, answer: str) -> str | None:
    if not context.notes:
        return "Do not answer yet: call the transfer_to_research tool first."
    if not context.action_items:
        return "Do not answer yet: research has reported; call the transfer_to_planner tool."
    if not answer.strip() or calls_written_as_text(answer, 0):  # a call written as text is not the plan
        return 'The plan is ready. Answer the user now, with JSON only: {"plan": ["step", "..."]}.'
    return None


# ---------------------------------------------------------------------------
# The agents, each with its prompt right above it
# ---------------------------------------------------------------------------

RESEARCH_PROMPT = """You are the research specialist on a small team.
List the 3 to 5 facts, risks or constraints that matter most for the question you are given.
Reply with JSON only: {"notes": ["one sentence", "..."]}. Do not write a plan."""

PLANNER_PROMPT = """You are the planning specialist on a small team.
First call read_notes to get what the research specialist found.
Then reply with 3 to 6 concrete steps for the team, in the order they should happen.
Each step is one plain sentence that starts with a verb, such as "Set up pytest and run it in CI on every pull request."
Never name a tool in a step. Reply with JSON only: {"steps": ["...", "..."]}."""

COORDINATOR_PROMPT = """You coordinate two specialists and never do their work yourself.
Step 1: call transfer_to_research with the user's question.
Step 2: when research reports back, call transfer_to_planner and ask for an ordered plan.
Step 3: when the planner reports back, answer the user with the plan: {"plan": ["step", "..."]}."""


def build_agents() -> Agent:
    """The coordinator, with the two specialists it may hand off to."""
    research = Agent(
        name="research",
        instructions=RESEARCH_PROMPT,
        handoff_description="Research specialist: lists the key facts, risks and constraints for a question. "
        "Call it first.",
        check_answer=take_notes,  # no tools: its list is the notes
        answer_schema=list_schema("notes", 3, 5),
        report=lambda context, answer: f"Research saved {len(context.notes)} notes; the planner can read them.",
        ready=research_ready,
        style="cyan",
    )
    planner = Agent(
        name="planner",
        instructions=PLANNER_PROMPT,
        handoff_description="Planning specialist: turns the research notes into an ordered action plan. "
        "Call it after research has reported.",
        tools=[Tool("read_notes", "Read every note the research specialist saved.", read_notes)],
        tool_choice=lambda context, results: "required" if results == 0 else "none",  # read first, then write
        check_answer=take_plan,
        answer_schema=list_schema("steps", 3, 6),
        report=lambda context, answer: "\n".join(f"{i}. {s}" for i, s in enumerate(context.action_items, 1)),
        ready=planner_ready,
        style="yellow",
    )
    return Agent(
        name="coordinator",
        instructions=COORDINATOR_PROMPT,
        handoffs=[research, planner],
        tool_choice=coordinator_choice,
        check_answer=coordinator_check,
        answer_schema=list_schema("plan", 3, MAX_ACTION_ITEMS),  # once there is a plan, the answer is it
        style="green",
    )


# ---------------------------------------------------------------------------
# The scripted demo model: a believable run, offline
# ---------------------------------------------------------------------------

_NOTES = [
    "With no tests at all, the safest first tests are characterization tests: they pin down what the app "
    "does today, right or wrong, so refactoring cannot change it silently.",
    "Old web apps usually mix request handling, business rules and database calls, which makes unit tests "
    "hard; end-to-end tests through the HTTP layer need no refactoring to start.",
    "A test suite nobody runs decays: tests must run on every pull request in CI from the first week.",
    "A team of four cannot pause feature work; a rule such as 'every bug fix comes with a test' grows "
    "coverage where the risk is.",
]
_STEPS = [
    "Set up pytest and a CI job that runs it on every pull request, starting with one trivial test.",
    "Write characterization tests for the three most used pages, through the HTTP layer.",
    "Agree on the team rule: every bug fix and every new feature comes with a test.",
    "Measure coverage weekly and pick the riskiest untested module for the next round of tests.",
    "Refactor business rules out of request handlers once the tests around them pass.",
]


def demo_responder() -> Responder:
    """Replies for the three agents, told apart by their system prompts, in the order a good model would give."""

    def respond(request: dict[str, Any]) -> str | list[ToolCallSpec]:
        messages = request["messages"]
        agent, task = messages[0]["content"], messages[1]["content"]
        results = [m["content"] for m in messages if m["role"] == "tool"]
        if agent == COORDINATOR_PROMPT:
            if not results:
                return [("transfer_to_research", {"task": task})]
            if len(results) == 1:
                return [("transfer_to_planner", {"task": f"Make an ordered plan for: {task}"})]
            return json.dumps({"plan": list_items(results[-1])}, indent=2)
        if agent == RESEARCH_PROMPT:
            notes = (
                _NOTES
                if task == DEFAULT_QUESTION
                else [
                    f"(scripted note) The question is: {clip(task, 120)}",
                    "(scripted note) A canned model cannot research other questions; set a key to use a real one.",
                ]
            )
            return json.dumps({"notes": notes})
        if agent == PLANNER_PROMPT:
            if not results:
                return [("read_notes", {})]
            return json.dumps({"steps": _STEPS})
        raise mas.AgentSystemError("the scripted demo model only knows the stage 3 demo's prompts")

    return respond


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def show_partial(console: Console, context: ResearchContext) -> None:
    """What the team gathered before the run stopped: paid for, so shown, but marked as unfinished."""
    lines = [f"research notes ({len(context.notes)}):", *(f"  {i}. {n}" for i, n in enumerate(context.notes, 1))]
    if context.action_items:
        lines += [f"plan steps ({len(context.action_items)}):"]
        lines += [f"  {i}. {s}" for i, s in enumerate(context.action_items, 1)]
    console.print(Panel(Text("\n".join(lines)), title="NOT FINISHED: gathered so far", border_style="red"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stages.stage3.demo",
        description="A coordinator hands a question to Research, then to Planner,\nand answers with the plan.",
        epilog=cli.ENVIRONMENT_HELP + "\n\nexit codes: 0 answered, 1 stopped early, 2 usage or configuration error,\n"
        "130 interrupted",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("question", nargs="?", default=DEFAULT_QUESTION, help="what to plan for (default: %(default)s)")
    parser.add_argument(
        "--max-turns",
        type=positive(int),
        default=DEFAULT_MAX_TURNS,
        metavar="N",
        help=f"model calls allowed in the whole run (default {DEFAULT_MAX_TURNS})",
    )
    cli.add_model_flags(parser)
    return parser


@ctrl_c_exits
def main(argv: Sequence[str] | None = None, *, console: Console | None = None, client: Any = None) -> int:
    """The command line. ``console`` and ``client`` let tests capture output and fake the API."""
    console = console or Console()
    args = cli.parse_args(build_parser(), argv)
    if isinstance(args, int):
        return args
    display = cli.make_display(args, console)
    try:
        question = clean_task(args.question, "the question")  # the chapter's checks: undecodable bytes, NUL, length
        llm = cli.open_run(args, display, client, demo_responder)
    except mas.UsageError as err:
        display.error(str(err))
        return mas.EXIT_USAGE
    outcome = ("crashed", "an unexpected error ended the run")  # what the trace's end says if run() never did
    try:
        display.banner(llm.settings, llm.trace.run_id, llm.trace.path, roles=("coordinator", "research", "planner"))
        context = ResearchContext(question)
        with sdk_retries_shown(display, llm.trace):
            result = run(build_agents(), question, context, llm, max_turns=args.max_turns)
        if args.verbose:
            console.print(
                Panel(
                    Text(json.dumps(asdict(context), indent=2, ensure_ascii=False)),
                    title="run context at the end",
                    border_style="dim",
                )
            )
        elif not result.answered and (context.notes or context.action_items):
            show_partial(console, context)
        display.spending(llm.ledger, "agent")
        ok = result.answered  # the answer itself was the coordinator's last panel
        if result.stop_reason in ("config_error", "api_error"):
            display.error(result.detail)
        console.print(
            Text(
                f"stop reason: {result.stop_reason} ({result.detail}) · "
                f"{result.turns} turn(s), {len(result.handoffs)} handoff(s), {len(context.notes)} note(s), "
                f"{len(context.action_items)} step(s), {llm.ledger.total_tokens} tokens, "
                f"{format_cost(llm.ledger.cost_usd)}, {llm.elapsed():.1f}s",
                style="bold green" if ok else "bold red",
            )
        )
        return exit_code_for(result.stop_reason, "answered")
    except mas.UsageError as err:
        display.error(str(err))
        outcome = ("usage_error", str(err))
        return mas.EXIT_USAGE
    finally:
        cli.close_run(llm.trace, *outcome)


if __name__ == "__main__":
    raise SystemExit(main())
