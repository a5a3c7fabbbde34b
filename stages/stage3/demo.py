"""Stage 3 demo: a coordinator delegates to Research, then to Planner, and answers.

The idea
--------
The coordinator owns the conversation with the user but does none of the
work. Its model sees two tools, ``transfer_to_research`` and
``transfer_to_planner``, and chooses which to call. Each specialist runs,
writes what it finds into the run context with its own tools, and hands
control back with a short report. When both have reported, the coordinator
answers with the plan.

The flow
--------
::

    coordinator ─transfer_to_research─> research: record_note x N ─┐
        ^  <──────────────── report (control returns) ─────────────┘
        │
        ├─────transfer_to_planner──> planner: read_notes, add_action_item x N ─┐
        ^  <──────────────── report (control returns) ─────────────────────────┘
        │
        └─> answer: the ordered plan

The run context (``ResearchContext``) is plain Python. The model never sees
it, except what ``read_notes`` returns to the planner: that is how the
planner learns what research found without the coordinator copying it along.

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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

import multi_agent_system as mas
from stages.stage3 import cli
from stages.stage3.handoffs import DEFAULT_MAX_TURNS, Agent, Tool, ToolError, run

DEFAULT_QUESTION = "How should a team of four start adding automated tests to an old Python web app that has none?"
MAX_NOTES = 8  # research notes kept; more would crowd the planner's prompt
MAX_ACTION_ITEMS = 8  # a plan longer than this is a backlog, not a plan
NOTE_MAX_CHARS = 400  # one note or action item; a paragraph, not an essay


# ---------------------------------------------------------------------------
# The run context: written by tools, read by tools, never sent whole to a model
# ---------------------------------------------------------------------------


@dataclass
class ResearchContext:
    question: str
    notes: list[str] = field(default_factory=list)
    action_items: list[str] = field(default_factory=list)


def record_note(context: ResearchContext, note: str) -> str:
    note = note.strip()
    if not note:
        raise ToolError("the note is empty: write the fact you want to keep")
    if len(context.notes) >= MAX_NOTES:
        raise ToolError(f"there are already {MAX_NOTES} notes: stop researching and report back")
    context.notes.append(mas.clip(note, NOTE_MAX_CHARS))
    return f"saved as note {len(context.notes)}"


def read_notes(context: ResearchContext) -> str:
    if not context.notes:
        return "There are no research notes yet."
    return "\n".join(f"{i}. {note}" for i, note in enumerate(context.notes, 1))


def add_action_item(context: ResearchContext, step: str) -> str:
    step = step.strip()
    if not step:
        raise ToolError("the step is empty: write the action to take")
    if len(context.action_items) >= MAX_ACTION_ITEMS:
        raise ToolError(f"the plan already has {MAX_ACTION_ITEMS} steps: stop and report back")
    context.action_items.append(mas.clip(step, NOTE_MAX_CHARS))
    return f"saved as step {len(context.action_items)}"


# Guardrails: the workflow is linear, so an answer that skips a step goes back.


def coordinator_check(context: ResearchContext, answer: str) -> str | None:
    if not context.notes:
        return (
            "Do not answer yet: the research specialist has not been asked. Call the transfer_to_research "
            'tool, like this: {"name": "transfer_to_research", "arguments": {"task": "..."}}'
        )
    if not context.action_items:
        return (
            "Do not answer yet: research has reported, but there is no plan. Call the transfer_to_planner "
            'tool, like this: {"name": "transfer_to_planner", "arguments": {"task": "..."}}'
        )
    if not answer.strip():
        return "Now answer the user: write the plan as a numbered list."
    return None


def research_check(context: ResearchContext, answer: str) -> str | None:
    if context.notes:
        return None
    return (
        "Nothing is saved yet. Call the record_note tool once per finding, "
        'like this: {"name": "record_note", "arguments": {"note": "..."}}'
    )


def planner_check(context: ResearchContext, answer: str) -> str | None:
    if context.action_items:
        return None
    return (
        "No steps are saved yet. Call read_notes, then add_action_item once per step, "
        'like this: {"name": "add_action_item", "arguments": {"step": "..."}}'
    )


# ---------------------------------------------------------------------------
# The agents, each with its prompt right above it
# ---------------------------------------------------------------------------

RESEARCH_PROMPT = """You are the research specialist on a small team.
Work out the 3 to 5 facts, risks or constraints that matter most for the question you are given.
Save each one with the record_note tool, one call per note, one or two sentences each.
When they are saved, reply with a single sentence saying what you found. Do not write a plan."""

PLANNER_PROMPT = """You are the planning specialist on a small team.
First call read_notes to get what the research specialist found.
Then turn the notes into 3 to 6 concrete steps in the order they should happen, saving each with add_action_item.
When they are saved, reply with the steps as a numbered list and nothing else."""

COORDINATOR_PROMPT = """You coordinate two specialists and never do their work yourself.
Step 1: call transfer_to_research with the user's question.
Step 2: when research reports back, call transfer_to_planner and ask for an ordered plan.
Step 3: when the planner reports back, answer the user with the plan as a numbered list, and nothing else."""


def build_agents() -> Agent:
    """The coordinator, with the two specialists it may hand off to."""
    research = Agent(
        name="research",
        instructions=RESEARCH_PROMPT,
        handoff_description="Research specialist: gathers the key facts, risks and constraints for a question "
        "and saves them as notes. Call it first.",
        tools=[
            Tool(
                "record_note",
                "Save one research finding for the planner.",
                record_note,
                {"note": "one fact, risk or constraint, in one or two sentences"},
            )
        ],
        check_answer=research_check,
        style="cyan",
    )
    planner = Agent(
        name="planner",
        instructions=PLANNER_PROMPT,
        handoff_description="Planning specialist: turns the research notes into an ordered action plan. "
        "Call it after research has reported.",
        tools=[
            Tool("read_notes", "Read every note the research specialist saved.", read_notes),
            Tool(
                "add_action_item",
                "Append one step to the plan, in order.",
                add_action_item,
                {"step": "one concrete action, starting with a verb"},
            ),
        ],
        check_answer=planner_check,
        style="yellow",
    )
    return Agent(
        name="coordinator",
        instructions=COORDINATOR_PROMPT,
        handoffs=[research, planner],
        check_answer=coordinator_check,
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


def demo_responder() -> mas.Responder:
    """Replies for the three agents, told apart by their system prompts, in the order a good model would give."""

    def respond(request: dict[str, Any]) -> str | list[mas.ToolCallSpec]:
        messages = request["messages"]
        agent, task = messages[0]["content"], messages[1]["content"]
        results = [m["content"] for m in messages if m["role"] == "tool"]
        if agent == COORDINATOR_PROMPT:
            if not results:
                return [("transfer_to_research", {"task": task})]
            if len(results) == 1:
                return [("transfer_to_planner", {"task": f"Make an ordered plan for: {task}"})]
            return f"Here is the plan the team agreed on:\n\n{results[-1]}"
        if agent == RESEARCH_PROMPT:
            notes = (
                _NOTES
                if task == DEFAULT_QUESTION
                else [
                    f"(scripted note) The question is: {mas.clip(task, 120)}",
                    "(scripted note) A canned model cannot research other questions; set a key to use a real one.",
                ]
            )
            if not results:
                return [("record_note", {"note": note}) for note in notes]
            return f"I saved {len(notes)} notes covering the main risks and constraints."
        if agent == PLANNER_PROMPT:
            if not results:
                return [("read_notes", {})]
            if len(results) == 1:
                return [("add_action_item", {"step": step}) for step in _STEPS]
            return "\n".join(f"{i}. {step}" for i, step in enumerate(_STEPS, 1))
        raise mas.AgentSystemError("the scripted demo model only knows the stage 3 demo's prompts")

    return respond


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stages.stage3.demo",
        description="A coordinator hands a question to Research, then to Planner, and answers with the plan.",
        epilog=cli.ENVIRONMENT_HELP + "\n\nexit codes: 0 answered, 1 stopped early, 2 usage or configuration error, "
        "130 interrupted",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("question", nargs="?", default=DEFAULT_QUESTION, help="what to plan for (default: %(default)s)")
    parser.add_argument(
        "--max-turns",
        type=mas.positive(int),
        default=DEFAULT_MAX_TURNS,
        metavar="N",
        help=f"model calls allowed in the whole run (default {DEFAULT_MAX_TURNS})",
    )
    cli.add_model_flags(parser)
    return parser


@mas.ctrl_c_exits
def main(argv: Sequence[str] | None = None, *, console: Console | None = None, client: Any = None) -> int:
    """The command line. ``console`` and ``client`` let tests capture output and fake the API."""
    console = console or Console()
    args = cli.parse_args(build_parser(), argv)
    if isinstance(args, int):
        return args
    display = cli.make_display(args, console)
    question = args.question.strip()
    try:
        if not question:
            raise mas.UsageError("the question is empty")
        llm = cli.open_run(args, display, client, demo_responder)
    except mas.UsageError as err:
        display.error(str(err))
        return mas.EXIT_USAGE
    try:
        display.banner(llm.settings, llm.trace.run_id, llm.trace.path, roles=("coordinator", "research", "planner"))
        context = ResearchContext(question)
        with mas.sdk_retries_shown(display, llm.trace):
            result = run(build_agents(), question, context, llm, max_turns=args.max_turns)
        if args.verbose:
            console.print(
                Panel(
                    Text(json.dumps(asdict(context), indent=2, ensure_ascii=False)),
                    title="run context at the end",
                    border_style="dim",
                )
            )
        display.spending(llm.ledger, "agent")
        ok = result.answered  # the answer itself was the coordinator's last panel
        if result.stop_reason in ("config_error", "api_error"):
            display.error(result.detail)
        console.print(
            Text(
                f"stop reason: {result.stop_reason} ({result.detail}) · "
                f"{result.turns} turn(s), {len(result.handoffs)} handoff(s), {len(context.notes)} note(s), "
                f"{len(context.action_items)} step(s), {llm.ledger.total_tokens} tokens, "
                f"{mas.format_cost(llm.ledger.cost_usd)}, {llm.elapsed():.1f}s",
                style="bold green" if ok else "bold red",
            )
        )
        return mas.exit_code_for(result.stop_reason, "answered")
    finally:
        llm.trace.close()


if __name__ == "__main__":
    raise SystemExit(main())
