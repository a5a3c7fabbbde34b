"""A model-driven orchestrator: the chapter's loop, with a model choosing the next step.

The idea
--------
In ``multi_agent_system.py`` plain code decides what happens after a
rejection: ``decide_next_step()`` counts rejections and plans. Here a model
(the "director") decides instead: after each critique it reads the task, the
feedback and the counts, and replies revise, replan or give_up, with a reason.
Everything else is the chapter's: the agents, the shared state, the budget
gates, the output and the trace.

The model is trusted only as far as code can check it. A reply with no valid
choice, a re-plan past --max-plans, or the same choice again after it has
failed SAME_CHOICE_LIMIT times in a row falls back to ``decide_next_step()``,
and says so. Every decision, its reason and whether it was overridden goes
into the trace (event "decision"); the run ends with a table of what the
director chose beside what the ladder would have chosen.

Run it
------
::

    python -m stages.variants.model_driven "Write a haiku about agents"     # no key: scripted demo model
    python -m stages.variants.model_driven "Write a haiku about agents" --demo-scenario exhaust
    python multi_agent_system.py "Write a haiku about agents" --demo-scenario exhaust   # the same task, the ladder

Compare ``orchestrate`` below with the chapter's: they differ in one line
(stages/variants/README.md shows the diff).
"""

from __future__ import annotations

import functools
import re
import sys
from typing import Any

import multi_agent_system as mas
from machinery import cli, demo
from machinery.demo import Responder
from machinery.gateway import LLM, request_role
from machinery.output import draw_step
from machinery.text import clip, first_line, json_objects, times
from multi_agent_system import (
    Gateway,
    HistoryItem,
    NextStep,
    Reply,
    SharedState,
    StopRun,
    ask,
    ask_human,
    critic_agent,
    decide_next_step,
    finish,
    new_state,
    planner_agent,
    run_step,
    system,
    user,
    worker_agent,
)

DIRECTOR = "director"  # the new role; not in the chapter's ROLES, so it gets DEFAULT_ROLE_MAX_TOKENS
CHOICES: tuple[NextStep, ...] = ("revise", "replan", "give_up")
SAME_CHOICE_LIMIT = 2  # the same choice this many times in a row, each followed by a rejection: it is looping
# What small models write instead of the three words; anything else is no choice.
SYNONYMS = {
    "retry": "revise",
    "revision": "revise",
    "re_plan": "replan",
    "new_plan": "replan",
    "giveup": "give_up",
    "stop": "give_up",
}

DIRECTOR_PROMPT = """You direct a team of agents: a Planner writes a plan, a Worker drafts, a Critic reviews.
The Critic has just rejected the newest draft. Choose what happens next:
- revise: the Worker tries again with the same plan (the feedback names something fixable)
- replan: the Planner writes a new plan (the plan itself is the problem)
- give_up: stop and hand the task to a human (more tries look pointless)
Reply with JSON: {"choice": "revise" or "replan" or "give_up", "reason": "one sentence"}."""


# -- The orchestrator: the chapter's loop, one line swapped -------------------


def orchestrate(task: str, llm: Gateway) -> SharedState:
    """The chapter's orchestrate(), except that the director chooses the next step."""
    settings = llm.settings
    state = new_state(task)
    llm.record("start", state)
    step: NextStep = "replan"  # the first plan is a re-plan from nothing
    decisions: list[dict[str, Any]] = []
    try:
        while True:
            # The one place the iteration limit is enforced: before any call of a new
            # round, so a plan that no round could use is never paid for.
            if state["iteration"] >= settings.max_iterations:
                raise StopRun("max_iterations", f"{settings.max_iterations} iterations without approval")
            if step == "replan":
                run_step(state, llm, "planner", planner_agent)
            state["iteration"] += 1
            run_step(state, llm, "worker", worker_agent)
            run_step(state, llm, "critic", critic_agent)
            if state["critic_approved"]:
                finish(state, "approved", f"approved on iteration {state['iteration']}")
                return state
            step = choose_next_step(state, llm, decisions)  # the chapter: decide_next_step(...)
            if step != "revise" and llm.human is not None:  # the top rung: a person decides, if one is there
                step = ask_human(state, llm, step)
            where = {"iteration": state["iteration"], "plan_version": state["plan_version"]}
            state["history"].append(HistoryItem(kind="escalation", action=step, **where))  # type: ignore[typeddict-item]
            llm.record("escalation", state, step=step)
            if step == "accept":
                finish(state, "approved", f"a human approved the draft of iteration {state['iteration']}")
                return state
            if step == "give_up":
                raise StopRun("escalation_exhausted", f"the director gave up after {state['plan_version']} plan(s)")
    except StopRun as halt:
        finish(state, halt.stop_reason, halt.detail)
    except KeyboardInterrupt:
        finish(state, "interrupted", "stopped with Ctrl-C")
    except Exception:  # a bug (OutOfOrderError among them): the trace still ends, then the error goes up
        finish(state, "crashed", "an unexpected error ended the run")
        raise
    finally:
        state["total_tokens"], state["cost_usd"] = llm.spent()  # a step that failed midway may have paid for a call
        if state["status"] != "approved" and state["best"] is not None:  # never worse than the best draft so far
            state["result"] = state["best"]["draft"]
        llm.record("end", state)
        show_comparison(llm, decisions)
    return state


# -- The decision: a model's choice, checked by code ---------------------------


def choose_next_step(state: SharedState, llm: Any, decisions: list[dict[str, Any]]) -> NextStep:
    """Ask the director; fall back to decide_next_step() when its choice is invalid or would loop."""
    settings = llm.settings
    ladder = decide_next_step(state["worker_attempts"], state["plan_version"], settings)
    facts = (
        f"Task:\n{state['task']}\n\nPlan v{state['plan_version']} of at most {settings.max_plans}; "
        f"draft {state['worker_attempts']} of this plan was just rejected; "
        f"{settings.max_iterations - state['iteration']} iteration(s) left.\n\n"
        f"The Critic's feedback:\n{clip(state['critic_feedback'] or '', mas.FEEDBACK_MAX_CHARS)}"
    )
    if decisions:
        facts += "\n\nYour earlier choices, each followed by another rejection: " + ", ".join(
            d["used"] for d in decisions
        )
    reply = ask(llm, DIRECTOR, [system(DIRECTOR_PROMPT), user(facts)], schema=decision_schema())
    choice, reason = read_decision(reply.content)
    problem = None
    if choice is None:
        problem = "the reply names none of revise, replan, give_up"
    elif choice == "replan" and state["plan_version"] >= settings.max_plans:
        problem = f"a re-plan past --max-plans {settings.max_plans}"
    elif [d["used"] for d in decisions[-SAME_CHOICE_LIMIT:]] == [choice] * SAME_CHOICE_LIMIT:
        problem = f"{choice} again, after it failed {times(SAME_CHOICE_LIMIT)} in a row"
    used: NextStep = ladder if problem or choice is None else choice
    decision = {"iteration": state["iteration"], "choice": choice, "reason": reason, "ladder": ladder}
    decision.update(used=used, overridden=problem is not None, why=problem)
    decisions.append(decision)
    llm.trace.event("decision", plan_version=state["plan_version"], **decision)
    show_decision(llm, decision, reply)
    return used


@functools.cache
def decision_schema() -> dict[str, Any]:
    """The director's reply as a JSON schema, from a pydantic model (imported on first use, as in the chapter)."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict

    class Decision(BaseModel):
        model_config = ConfigDict(extra="forbid")
        choice: Literal["revise", "replan", "give_up"]
        reason: str

    return {"name": "decision", "strict": True, "schema": Decision.model_json_schema()}


def read_decision(text: str) -> tuple[NextStep | None, str]:
    """(choice, reason) from a reply: the JSON asked for, or one choice named in plain words.

    Ambiguity is no choice: a reply naming two different choices gives None.

    >>> read_decision('{"choice": "replan", "reason": "the plan misses the subject"}')
    ('replan', 'the plan misses the subject')
    >>> read_decision("I would revise, or maybe replan.")
    (None, 'I would revise, or maybe replan.')
    """
    for data in json_objects(text):
        said = next((data[k] for k in ("choice", "decision", "action", "next") if isinstance(data.get(k), str)), None)
        if said is not None:
            return _choice(said), str(data.get("reason") or data.get("why") or "")
    found = {_choice(w) for w in re.findall(r"give[ _-]?up|re-?plan|new[ _]plan|\w+", text.lower())} - {None}
    return (found.pop() if len(found) == 1 else None), first_line(text, 300)


def _choice(word: str) -> NextStep | None:
    key = re.sub(r"[\s\-]+", "_", word.strip().lower().strip(".,:;!\"'`*"))
    key = SYNONYMS.get(key, key)
    return next((c for c in CHOICES if c == key), None)


# -- What the director did, on screen ------------------------------------------


def show_decision(llm: LLM, decision: dict[str, Any], reply: Reply) -> None:
    title = f"Director · {decision['choice'] or 'no valid choice'} · iteration {decision['iteration']}"
    body = decision["reason"] or "(no reason given)"
    if decision["overridden"]:
        body += f"\n\noverridden ({decision['why']}): decide_next_step() says {decision['used']}"
    draw_step(llm, DIRECTOR, title, body, reply, "blue")
    if decision["overridden"]:
        llm.warn(f"the director's choice is not used ({decision['why']}): falling back to decide_next_step()")


def show_comparison(llm: Any, decisions: list[dict[str, Any]]) -> None:
    """Each decision beside the ladder's, so the two designs can be compared on one run."""
    if not decisions or not llm.display.chatty:
        return
    from rich.table import Table

    table = Table(title="The director's path beside the ladder's (decide_next_step)")
    for column in ("iteration", "director chose", "the ladder says", "used"):
        table.add_column(column)
    for d in decisions:
        table.add_row(
            str(d["iteration"]),
            d["choice"] or "(none)",
            d["ladder"],
            d["used"] + (" (override)" if d["overridden"] else ""),
        )
    llm.display.console.print(table)
    agreed = sum(d["choice"] == d["ladder"] for d in decisions)
    llm.display.line(
        f"the director agreed with the ladder {agreed} of {len(decisions)} time(s); "
        f"{sum(d['overridden'] for d in decisions)} choice(s) overridden by code",
        "dim",
    )


# -- The demo model, taught the new role ---------------------------------------

# The scripted director's replies, in order: it revises until code calls that a loop, then writes something unreadable.
DEMO_DECISIONS = [
    '{"choice": "revise", "reason": "The feedback names one concrete problem; a revision can fix it."}',
    '{"choice": "revise", "reason": "Closer, but the same point stands; one more revision."}',
    '{"choice": "revise", "reason": "Still the worker, I think."}',
    "Hard to say. The plan or the draft could be at fault.",
    '{"choice": "give_up", "reason": "Every plan fails the same way: a human should look."}',
]


def demo_script(scenario: str) -> Responder:
    """The chapter's scripted replies, plus the director's (the demo model knows nothing of this role)."""
    chapter = demo.demo_script(scenario)
    count = 0

    def respond(request: dict[str, Any]) -> Any:
        nonlocal count
        if request_role(request) != DIRECTOR:
            return chapter(request)
        count += 1
        return DEMO_DECISIONS[min(count, len(DEMO_DECISIONS)) - 1]

    return respond


def main(argv: list[str] | None = None, **options: Any) -> int:
    """The chapter's command line, with this loop and this demo model."""
    return cli.main(argv, loop=orchestrate, script=demo_script, **options)


if __name__ == "__main__":
    sys.exit(main())
