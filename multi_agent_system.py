"""Planner, Worker and Critic: a multi-agent loop you can read in one sitting.

The idea
--------
One model call that has to plan a job, do it and then judge its own work tends
to do all three badly. Here three agents split the job. The Planner writes a
few steps. The Worker carries them out and returns a draft. The Critic says
yes or no, with reasons. The agents never call each other: each reads and
writes one shared dict (``SharedState``), and an ordinary Python loop, not a
model, decides who runs next. That makes every run traceable and every limit real.

::

    planner ─> worker ─> critic ──approved──> stop: "approved"
                  ^         │ rejected
                  │         ├─ 1st rejection of this plan ─> worker revises
                  │         ├─ 2nd rejection ─> planner writes a new plan
                  └─────────┘  (after --max-plans plans: stop, a human is needed;
                                with --human, one is asked at the terminal)

What code can check, code checks; the model judges the rest. Requirements a
task states in countable terms ("at most 40 words", "exactly 5 bullet points",
"a JSON array of 3 objects") are measured in every draft, and a failed check
is a rejection no model can overturn. Limits are code too: the orchestrator
starts no round past ``MAX_ITERATIONS``, and before every model call the budget
gate (``completion_allowance``) enforces a hard cap of ``MAX_TOTAL_TOKENS``
tokens, and optional cost and time limits. Every run ends, and
``state["stop_reason"]`` says why.

Part 1, down to the banner that says you may stop reading, is the pattern.
Part 2 is machinery: the model gateway, reading verdicts and requirements,
output and trace, the offline demo model and the command line.

Run it: ``python multi_agent_system.py "Write a haiku about agents" --verbose``.
With no key a scripted demo model stands in; ``OPENAI_API_KEY`` uses OpenAI,
``OPENAI_BASE_URL`` any OpenAI-compatible server (Ollama, LM Studio, llama.cpp).

Part 2 also runs many tasks at once (``--batch``), streams the Worker's reply
(``--stream``) and previews what a run can spend (``--estimate``); none of them
changes the loop. Left out on purpose: parallel workers inside one run,
message queues and saved state. CONCEPTS.md discusses them; each would hide
the loop this file exists to show. A model-driven orchestrator is its own
short file beside this one, stages/variants/model_driven.py, so the two can be
diffed.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import logging
import math
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:  # only for type hints: rich and openai are imported where they are used
    from rich.console import Console
    from rich.table import Table

# ===========================================================================
# PART 1 · THE PATTERN
# ===========================================================================

# -- Limits: every promise the loop makes, each with the reason for its value --

MAX_ITERATIONS = 10  # worker+critic rounds: the master gate, enough to see two re-plans
MAX_TOTAL_TOKENS = 50_000  # hard cap on prompt+completion tokens for one run
TOKEN_WARNING_SHARE = 0.8  # warn once when this share of the token budget is spent
MAX_PLANS = 3  # plans tried before the run stops and asks for a human
REJECTIONS_BEFORE_REPLAN = 2  # rejections of one plan before the planner is asked for a new one
MIN_USEFUL_COMPLETION = 48  # a call that may not write this many tokens is not worth paying for
VERDICT_ROOM = 160  # kept free for the critic's reply while the worker writes: an 80-word verdict in JSON fits
BYTES_PER_TOKEN_GUESS = 2.5  # real tokenizers average 3-4.5 bytes a token: guessing low keeps the cap hard
BYTES_PER_TOKEN_MOST = 4.5  # the other end of that range: counting with it gives a floor (the cost preview's fewest)
DEFAULT_MODEL = "gpt-4o-mini"  # cheap and capable; any model name your server knows works

# Prompt-size bounds. Every variable part of a prompt is cut to one of these,
# so no prompt grows with the number of iterations (see PROMPT_MAX_CHARS).
TASK_MAX_CHARS = 4_000  # longer tasks are refused up front with a clear message
PLAN_MAX_CHARS = 3_000  # a plan as shown to the worker and critic
DRAFT_MAX_CHARS = 6_000  # a draft as shown to the critic, or back to the worker
FEEDBACK_MAX_CHARS = 1_500  # one round of critic feedback, in full
NOTES_MAX_CHARS = 1_500  # what added agents (a researcher, say) leave for the worker, all together
CHECKLIST_MAX_CHARS = 600  # the worker's line of requirements that code will check
CLIP_CHARS = 300  # an old plan or old feedback, shortened
HISTORY_WHOLE = 2  # newest reviews of the current plan the worker sees whole (draft and feedback)
HISTORY_MAX = 6  # reviews shown at all; older ones stay in the trace only
EARLIER_PLANS_SHOWN = 3  # failed plans the planner is reminded of
OWN_FEEDBACK_SHOWN = 3  # earlier verdicts the critic is reminded of
SYSTEM_PROMPT_MAX_CHARS = 1_200  # the longest system prompt fits in this
# The worker's prompt is the largest: system, task, plan, notes, checklist, two
# whole reviews and four clipped ones, plus headings. Tested in tests/test_orchestrator.py.
PROMPT_MAX_CHARS = (
    SYSTEM_PROMPT_MAX_CHARS
    + TASK_MAX_CHARS
    + PLAN_MAX_CHARS
    + NOTES_MAX_CHARS
    + CHECKLIST_MAX_CHARS
    + HISTORY_WHOLE * (DRAFT_MAX_CHARS + FEEDBACK_MAX_CHARS)
    + (HISTORY_MAX - HISTORY_WHOLE) * CLIP_CHARS
    + 1_000
)


# -- Roles are data: a new agent is one more row here (plus its function and its call) --


@dataclass(frozen=True)
class Role:
    """What the machinery needs to know about an agent: panels, budgets, flags follow this."""

    name: str
    colour: str  # its panels' border
    max_tokens: int  # its completion cap: plans and verdicts are short, drafts need room

    @property
    def flag(self) -> str:
        return f"--{self.name.replace('_', '-')}-model"

    @property
    def env(self) -> str:
        return f"{self.name.upper()}_MODEL"


ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role("planner", "cyan", 500),
        Role("worker", "yellow", 1200),
        Role("critic", "magenta", 400),
    )
}
DEFAULT_ROLE_MAX_TOKENS = 800  # for roles that are not in ROLES (stage 3 has its own)


def role_cap(role: str) -> int:
    return ROLES[role].max_tokens if role in ROLES else DEFAULT_ROLE_MAX_TOKENS


def times(n: int) -> str:
    """
    >>> times(1), times(2), times(3)
    ('once', 'twice', '3 times')
    """
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


# How each run can end. Exit codes: 0 approved, 1 stopped without approval
# (stopped_by_user too), 2 usage or configuration error (replay_mismatch too), 130 interrupted (Ctrl-C).
STOP_REASONS = {
    "approved": "the critic approved the draft",
    "max_iterations": "the iteration limit was reached without approval",
    "escalation_exhausted": f"every allowed plan was rejected {times(REJECTIONS_BEFORE_REPLAN)}: a human is needed",
    "token_budget": "the next call would not fit in the token budget",
    "cost_budget": "the next call would not fit in the cost budget",
    "timeout": "the run's time limit was reached",
    "config_error": "the model server refused the configuration (key, model, address)",
    "api_error": "the model server kept failing after retries",
    "interrupted": "stopped with Ctrl-C",
    "stopped_by_user": "a person stopped the run (q at a --step pause, or stop at the --human rung)",
    "replay_mismatch": "a request differed from the recorded run being replayed (--replay)",
    "crashed": "an unexpected error, a bug in the code, ended the run",
}
EXIT_APPROVED, EXIT_NOT_APPROVED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


# -- Control flow: a small exception hierarchy; StopRun ends the loop with a reason --


class AgentSystemError(Exception):
    """Base class for this module's own errors."""


class OutOfOrderError(AgentSystemError):
    """An agent ran before what it needs existed: a bug in the caller, so fail fast."""


class StopRun(AgentSystemError):
    """Ends the loop with a stop reason (a key of STOP_REASONS) and one line of detail."""

    def __init__(self, stop_reason: str, detail: str):
        super().__init__(detail)
        self.stop_reason, self.detail = stop_reason, detail


class BudgetExhausted(StopRun):
    """A budget gate refused the next call (tokens, cost or time)."""


@dataclass
class Settings:
    """What one run may do. ``settings_from_args`` builds it from flags and the environment."""

    default_model: str = DEFAULT_MODEL
    models: dict[str, str] = field(default_factory=dict)  # per role; a role missing here uses default_model
    api_key: str | None = field(default=None, repr=False)  # sent to the server only: never printed or traced
    base_url: str | None = None  # an OpenAI-compatible server; None means OpenAI itself
    demo: bool = False  # use the scripted stand-in instead of a server
    demo_scenario: str | None = None  # which canned path the scripted model plays
    max_iterations: int = MAX_ITERATIONS
    max_tokens: int = MAX_TOTAL_TOKENS  # for the whole run: prompt + completion, all calls
    max_plans: int = MAX_PLANS
    max_cost: float | None = None  # USD ceiling; needs a known price for every model used
    timeout: float | None = None  # seconds for the whole run, checked before every call
    log_dir: Path = Path("logs")
    replay: str | None = None  # a recorded trace whose replies stand in for the model (--replay)

    def model_for(self, role: str) -> str:
        return DEMO_MODEL if self.demo else self.models.get(role) or self.default_model

    def server(self) -> str:
        if self.demo:
            return "scripted demo model (offline)"
        if self.replay:
            return f"replies replayed from {self.replay} (offline)"
        return re.sub(r"//[^/@]*@", "//", self.base_url or "https://api.openai.com/v1")  # never show user:password@


# -- The shared state: one dict, and who writes each key ---------------------


class TokenCount(TypedDict):
    prompt: int
    completion: int
    total: int


class HistoryItem(TypedDict, total=False):
    """One entry of ``state["history"]``; which keys are set depends on ``kind``.

    kind "plan"       (planner):      plan_version, plan
    kind "review"     (critic):       iteration, plan_version, attempt, draft, approved, feedback
    kind "escalation" (orchestrator): iteration, plan_version, action ("revise", "replan", "give_up", "accept")
    kind "human"      (a person, --human): iteration, plan_version, action, feedback
    """

    kind: Literal["plan", "review", "escalation", "human"]
    iteration: int
    plan_version: int
    attempt: int
    plan: str
    draft: str
    approved: bool
    feedback: str
    action: str


class SharedState(TypedDict):
    """The one dict every agent reads and writes. Who writes each key:

    task             orchestrator, once at the start
    plan             planner (the current plan)
    plan_version     planner (1 for the first plan, +1 per re-plan)
    requirements     orchestrator, found in the task; planner adds those it proposes that quote the task
    notes            any added agent, under its role's name; the worker reads them all
    result           worker (the newest draft; approved or not)
    worker_attempts  worker (+1 per draft); planner resets it to 0 with each new plan
    draft_facts      worker: what code measured in its newest draft, requirement checks included
    critic_approved  critic
    critic_feedback  critic
    history          planner, critic and orchestrator append; nobody edits or removes
    iteration        orchestrator (+1 per worker/critic round)
    total_tokens     orchestrator, copied from the ledger after every step
    cost_usd         orchestrator, likewise; None while some model's price is unknown
    status           orchestrator: "running", then "approved" or "stopped"
    stop_reason      orchestrator: a key of STOP_REASONS
    stop_detail      orchestrator: one human-readable line about the stop
    """

    task: str
    plan: str | None
    plan_version: int
    requirements: list[Requirement]
    notes: dict[str, str]
    result: str | None
    worker_attempts: int
    draft_facts: dict[str, Any]
    critic_approved: bool
    critic_feedback: str | None
    history: list[HistoryItem]
    iteration: int
    total_tokens: TokenCount
    cost_usd: float | None
    status: Literal["running", "approved", "stopped"]
    stop_reason: str | None
    stop_detail: str | None


def new_state(task: str) -> SharedState:
    return SharedState(
        task=task,
        plan=None,
        plan_version=0,
        requirements=requirements_from_task(task),
        notes={},
        result=None,
        worker_attempts=0,
        draft_facts={},
        critic_approved=False,
        critic_feedback=None,
        history=[],
        iteration=0,
        total_tokens=TokenCount(prompt=0, completion=0, total=0),
        cost_usd=0.0,
        status="running",
        stop_reason=None,
        stop_detail=None,
    )


# -- The orchestrator: plain Python decides who runs next --------------------

NextStep = Literal["revise", "replan", "give_up", "accept"]  # only a person (--human) ever says "accept"


def orchestrate(task: str, llm: LLM) -> SharedState:
    """Run Planner -> Worker -> Critic until one of these stops the loop:

    approved              the critic approved; the loop stops at once
    max_iterations        settings.max_iterations rounds ran without approval
    escalation_exhausted  settings.max_plans plans were each rejected REJECTIONS_BEFORE_REPLAN times
    token_budget          the next call would not fit in settings.max_tokens
    cost_budget           the next call would not fit in settings.max_cost
    timeout               settings.timeout seconds have passed
    config_error          the server refused the key, the model or the request, or could not be reached
    api_error             the server kept failing (429, 5xx, timeouts) after the SDK's retries
    interrupted           Ctrl-C
    stopped_by_user       a person said stop (--step, --human)

    The state is returned in every case, with the last draft and the stop reason.
    OutOfOrderError is not caught: it means the code is wrong, not the run.
    """
    settings = llm.settings
    state = new_state(task)
    record_start(state, llm)
    step: NextStep = "replan"  # the first plan is a re-plan from nothing
    try:
        while True:
            # The one place the iteration limit is enforced: before any call of a new
            # round, so a plan that no round could use is never paid for.
            if state["iteration"] >= settings.max_iterations:
                raise StopRun("max_iterations", f"{settings.max_iterations} iterations without approval")
            if step == "replan":
                show_step(state, llm, "planner", planner_agent(state, llm))
            state["iteration"] += 1
            show_step(state, llm, "worker", worker_agent(state, llm))
            show_step(state, llm, "critic", critic_agent(state, llm))
            if state["critic_approved"]:
                finish(state, "approved", f"approved on iteration {state['iteration']}")
                return state
            step = decide_next_step(state["worker_attempts"], state["plan_version"], settings)
            if step != "revise" and llm.human is not None:  # the top rung: a person decides, if one is there
                step = llm.human.decide(state, llm, step)
            record_escalation(state, llm, step)
            if step == "accept":
                finish(state, "approved", f"a human approved the draft of iteration {state['iteration']}")
                return state
            if step == "give_up":
                raise StopRun(
                    "escalation_exhausted",
                    f"{state['plan_version']} plan(s), each rejected {times(REJECTIONS_BEFORE_REPLAN)}: needs a human",
                )
    except StopRun as halt:
        finish(state, halt.stop_reason, halt.detail)
    except KeyboardInterrupt:
        finish(state, "interrupted", "stopped with Ctrl-C")
    finally:
        record_end(state, llm)  # also when an unexpected exception is on its way up: stop "crashed"
    return state


def decide_next_step(worker_attempts: int, plan_version: int, settings: Settings) -> NextStep:
    """After a rejection, what happens next. Pure, so every branch is easy to test.

    >>> s = Settings(max_plans=3)
    >>> decide_next_step(1, 1, s), decide_next_step(REJECTIONS_BEFORE_REPLAN, 1, s)
    ('revise', 'replan')
    >>> decide_next_step(REJECTIONS_BEFORE_REPLAN, 3, s)  # the last plan failed too: ask a human
    'give_up'
    """
    if worker_attempts < REJECTIONS_BEFORE_REPLAN:
        return "revise"
    if plan_version >= settings.max_plans:
        return "give_up"
    return "replan"


def finish(state: SharedState, reason: str, detail: str) -> None:
    state["status"] = "approved" if reason == "approved" else "stopped"
    state["stop_reason"], state["stop_detail"] = reason, detail


# -- The agents. Each reads the shared state, calls its model, writes back -----


def reviews(state: SharedState) -> list[HistoryItem]:
    return [item for item in state["history"] if item["kind"] == "review"]


PLANNER_PROMPT = """You are the Planner on a team of three agents: Planner, Worker, Critic.
Write 3 to 6 short steps that tell a Worker how to do the task in one pass. Steps say what to do; they never contain the finished work.
Also list the task's requirements that code can count or test. For each give a kind (max_words, min_words, about_words, bullets, numbered, items, lines, sentences, json, json_array, json_keys, python, function, include, exclude), its value, and a quote: the exact words of the task it comes from.
Reply with JSON: {"steps": ["..."], "checks": [{"kind": "...", "value": "...", "quote": "..."}]}."""


def planner_agent(state: SharedState, llm: LLM) -> Reply:
    """Write a plan (a new one, if earlier plans failed). Writes: plan, plan_version, worker_attempts, requirements.

    Code checks the plan is a plan: a reply that is really the answer, or that plans
    the review process instead of the task, is sent back once, then replaced.
    """
    failed = [item for item in state["history"] if item["kind"] == "plan"][-EARLIER_PLANS_SHOWN:]
    parts = [f"Task:\n{state['task']}"]
    if failed:
        parts.append(
            "Drafts from earlier plans were rejected. Plan the task itself (what to write and how), "
            "not the review process. Avoid these problems:"
        )
        last = [[r for r in reviews(state) if r["plan_version"] == item["plan_version"]][-1:] for item in failed]
        parts.append(lessons([r[0] if r else HistoryItem(feedback="(no feedback recorded)") for r in last]))
    messages = [system(PLANNER_PROMPT), user("\n\n".join(parts))]
    reply = llm.complete("planner", messages, schema=plan_schema())
    steps, proposed = read_plan(reply.content)
    problem = plan_problem(steps, reply, state)
    if problem:  # one more try, told exactly what was wrong
        llm.warn(f"the planner's reply is not a usable plan ({problem}): asking again")
        messages += [reply.message, user(f"That is not a usable plan: {problem}. {PLAN_REMINDER}")]
        reply = llm.complete("planner", messages, schema=plan_schema())
        steps, proposed = read_plan(reply.content)
        if problem := plan_problem(steps, reply, state):
            llm.warn(f"still not a usable plan ({problem}): code writes one from the task and its requirements")
            steps = fallback_plan(state)
    state["requirements"] = merge_requirements(state["requirements"], accept_proposed(state["task"], proposed))
    state["plan"] = plan = "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))
    state["plan_version"] += 1
    state["worker_attempts"] = 0  # attempts are counted per plan
    state["history"].append(
        HistoryItem(kind="plan", plan_version=state["plan_version"], plan=clip(plan, PLAN_MAX_CHARS))
    )
    return reply


WORKER_PROMPT = """You are the Worker. Do the task exactly as asked. Reply with the finished work only:
no preamble, no notes on the plan, no commentary. When feedback is included, fix every point it raises."""


def worker_agent(state: SharedState, llm: LLM) -> Reply:
    """Produce a draft from the plan and the feedback so far. Writes: result, worker_attempts.

    The task comes first, in its own words, and the plan after it as help: a
    small model given a plan first copies the plan. Rejected drafts of the current plan go back as the worker's own earlier
    turns, each followed by the critic's feedback: the chat shape models are
    trained on, so small models revise instead of echoing the prompt. Drafts
    of failed plans are not replayed (they would pull the worker back to the
    approach that failed); their feedback is listed, clipped, as lessons.
    """
    if not state["plan"]:
        raise OutOfOrderError("worker_agent needs a plan: run planner_agent first")
    parts = [state["task"], f"A plan that may help (v{state['plan_version']}):\n{clip(state['plan'], PLAN_MAX_CHARS)}"]
    if state["requirements"]:
        checklist = "; ".join(spelled_out(r) for r in state["requirements"])
        parts.append(clip(f"Code will check: {checklist}.", CHECKLIST_MAX_CHARS))
    if state["notes"]:
        notes = "\n\n".join(f"Notes from the {role}:\n{note}" for role, note in state["notes"].items())
        parts.append(clip(notes, NOTES_MAX_CHARS))
    shown = reviews(state)[-HISTORY_MAX:]
    recent = [r for r in shown if r["plan_version"] == state["plan_version"]][-HISTORY_WHOLE:]
    older = [r for r in shown if r not in recent]
    if older:
        parts.append("Earlier feedback (do not repeat these mistakes):\n" + lessons(older))
    messages = [system(WORKER_PROMPT), user("\n\n".join(parts))]
    for r in recent:
        messages.append({"role": "assistant", "content": clip(r["draft"], DRAFT_MAX_CHARS)})
        messages.append(
            user(
                f"That draft was rejected (plan v{r['plan_version']}, draft {r['attempt']}):\n"
                f"{clip(r['feedback'], FEEDBACK_MAX_CHARS)}\n\n"
                "Return a new, complete version that fixes every point, and nothing else."
            )
        )
    reply = llm.complete("worker", messages, reserve=critique_reserve(state))
    state["result"] = draft = reply.content.strip()
    state["worker_attempts"] += 1
    state["draft_facts"] = measure_draft(draft, reply.finish_reason == "length", state["requirements"])
    return reply


CRITIC_PROMPT = """You are the Critic. Decide whether the draft fully does the task; do not rewrite it.
Code has measured the draft and its checks passed: do not recount. Judge what code cannot: is it correct, on topic, complete, in the form asked?
Approve only if nothing the task asks for is missing or wrong. To reject, say exactly what to change (at most 80 words), consistent with your earlier feedback, and invent no requirement the task does not state."""
# The verdict's shape in words. The gateway adds it to the system prompt only while the server
# is not enforcing the JSON schema itself (the schema says the same, and is paid for too). The
# planner's prompt keeps its shape line always: without it the local 1.5B model wrote long,
# indented plans that ran into their token cap.
CRITIC_FORMAT = """Reply with JSON: {"approved": true or false, "feedback": "..."}
or else make your first line APPROVED: YES or APPROVED: NO and your second line FEEDBACK: and your reasons."""


def critique_reserve(state: SharedState) -> int:
    """Tokens the critic will need to judge the coming draft, besides the draft itself (see completion_allowance)."""
    shown = [
        system(f"{CRITIC_PROMPT}\n{CRITIC_FORMAT}"),
        user(state["task"] + lessons(reviews(state)[-OWN_FEEDBACK_SHOWN:])),
    ]
    return estimate_tokens(shown, [verdict_schema()]) + VERDICT_ROOM


def critic_agent(state: SharedState, llm: LLM) -> Reply | None:
    """Judge the newest draft. Writes: critic_approved, critic_feedback, and a review in history.

    What code can check, code checks: an empty draft, or one that fails a
    requirement check, is rejected without a model call, with feedback saying
    what was measured. A draft or verdict cut off at its token limit is never
    approved, whatever the model says. The model judges the rest.
    """
    if state["result"] is None or not state["plan"]:
        raise OutOfOrderError("critic_agent needs a plan and a draft: run planner_agent and worker_agent first")
    facts = state["draft_facts"]  # measured by code when the worker wrote the draft
    failed = [c for c in facts["checks"] if not c["passed"]]
    reply = None
    if not state["result"].strip():
        verdict = Verdict(False, "The draft was empty. Produce the complete work.", "code", "empty draft")
    elif failed:  # a failed check is a rejection no model can overturn
        feedback = "Code measured the draft: " + "; ".join(c["measured"] for c in failed) + ". Fix this first."
        verdict = Verdict(False, feedback, "code", f"{len(failed)} requirement check(s) failed")
    else:
        # What never changes comes first (instructions, task), so providers can cache that prefix.
        # The plan is not shown: the draft is judged against the task, not against the plan's reading of it.
        parts = [f"Task:\n{state['task']}"]
        own = reviews(state)[-OWN_FEEDBACK_SHOWN:]
        if own:
            parts.append("Earlier feedback (yours, or code's), oldest first:\n" + lessons(own))
        parts.append(f"Measured by code:\n{format_facts(facts)}")
        parts.append(f"Draft to judge:\n<<<\n{clip(state['result'], DRAFT_MAX_CHARS)}\n>>>")
        messages = [system(CRITIC_PROMPT), user("\n\n".join(parts))]
        reply = llm.complete("critic", messages, schema=verdict_schema(), reply_format=CRITIC_FORMAT)
        verdict = parse_verdict(reply.content)
        if verdict.approved and reply.finish_reason == "length":
            verdict = verdict.overruled("the verdict was cut off at max_tokens")
        if verdict.approved and facts.get("cut_off"):
            verdict = verdict.overruled("the draft was cut off: it is incomplete")
        show_verdict(llm, reply, verdict)
    feedback = verdict.feedback or ("Approved." if verdict.approved else f"Not approved: {verdict.why}.")
    state["critic_approved"], state["critic_feedback"] = verdict.approved, feedback
    state["history"].append(
        HistoryItem(
            kind="review",
            iteration=state["iteration"],
            plan_version=state["plan_version"],
            attempt=state["worker_attempts"],
            draft=clip(state["result"], DRAFT_MAX_CHARS),
            approved=verdict.approved,
            feedback=clip(feedback, FEEDBACK_MAX_CHARS),
        )
    )
    record_verdict(state, llm, verdict, facts["checks"])
    return reply


# -- What code can check, code checks ----------------------------------------

ABOUT_TOLERANCE = 0.2  # "about 120 words" passes at 96-144 words: a fifth either way
REPEAT_LIMIT = 3  # a line (4+ words) this often, and a third of all lines: the model is looping, not writing a refrain


@dataclass(frozen=True)
class Requirement:
    """Something the task asks for that code can measure, and the task's own words it comes from.

    Found by ``requirements_from_task`` and proposed by the planner; a proposal
    counts only when its quote really is in the task, so no model can invent one.
    """

    kind: str  # what to measure: "max_words", "bullets", "json_array", "function", ... (see measure())
    value: Any  # the number, name or phrase to match
    quote: str  # the words of the task it comes from


def measure_draft(text: str, cut_off: bool = False, requirements: Sequence[Requirement] = ()) -> dict[str, Any]:
    """Count and check what models miscount, and check every requirement (plus two every draft must meet).

    >>> facts = measure_draft("one two\\nthree", requirements=[Requirement("max_words", 2, "at most 2 words")])
    >>> facts["words"], facts["lines"], [c["passed"] for c in facts["checks"]]
    (3, 2, [False, True, True])
    >>> measure_draft("```python\\ndef f(:\\n```")["code_blocks"][0]["parses"]
    False
    """
    always = [
        Requirement("no_repeats", REPEAT_LIMIT, "no repeated lines"),
        Requirement("no_empty_items", 0, "no empty items"),
    ]
    checks = []
    for r in [*requirements, *always]:
        passed, measured = measure(text, r)
        checks.append({"requirement": r.quote, "kind": r.kind, "passed": passed, "measured": measured})
    return {
        "words": len(text.split()),
        "lines": len([line for line in text.splitlines() if line.strip()]),
        "characters": len(text),
        "code_blocks": code_blocks(text),
        "cut_off": cut_off,  # the worker hit its token limit: the draft is incomplete
        "checks": checks,
    }


# -- The budget gate: runs before every model call -------------------------


def completion_allowance(
    role: str,
    prompt_tokens: int,
    spent_tokens: int,
    spent_usd: float | None,
    elapsed: float,
    model: str,
    settings: Settings,
    reserve: int = 0,
) -> int:
    """How many tokens the next call may write; BudgetExhausted if it should not be made.

    ``prompt_tokens`` is a high estimate of the call's prompt. The completion
    is clamped so that prompt + completion fits in what is left of the token
    (and cost) budget, so the cap holds even on the last call.

    ``reserve`` is what a later call needs that will read this reply back: the
    critique of a draft. It stays free, and since the draft is then paid for
    twice (written, then read), only half of what remains may be written. A
    draft that could not be judged is not worth writing.

    >>> s = Settings(max_tokens=2_000)
    >>> completion_allowance("worker", 500, 0, 0.0, 0.0, "gpt-4o-mini", s)  # the role's own cap
    1200
    >>> completion_allowance("worker", 500, 1_000, 0.0, 0.0, "gpt-4o-mini", s)  # clamped to what is left
    500
    >>> completion_allowance("worker", 500, 1_480, 0.0, 0.0, "gpt-4o-mini", s)
    Traceback (most recent call last):
    ...
    multi_agent_system.BudgetExhausted: worker call skipped: its ~500-token prompt leaves too little room (1480 of 2000 tokens used)
    >>> completion_allowance("worker", 500, 1_000, 0.0, 0.0, "gpt-4o-mini", s, reserve=300)  # (2000-1000-500-300) / 2
    100
    """
    if settings.timeout is not None and elapsed >= settings.timeout:
        raise BudgetExhausted("timeout", f"{settings.timeout:g}s time limit reached")
    share = 2 if reserve else 1  # a reply that is read back is paid for twice
    tokens_left = settings.max_tokens - spent_tokens - prompt_tokens - reserve
    limit, binding = min(role_cap(role), tokens_left // share), "token_budget"
    if settings.max_cost is not None:
        price = price_for(model)
        assert price is not None, "settings_from_env refuses --max-cost without a price"
        money_left = settings.max_cost - (spent_usd or 0.0) - prompt_tokens * price.input_per_token
        money_left -= reserve * price.output_per_token  # priced high: as if all of it were written
        per_token = price.output_per_token + (price.input_per_token if reserve else 0.0)
        if per_token > 0 and money_left / per_token < limit:
            limit, binding = math.floor(money_left / per_token), "cost_budget"
    if limit < MIN_USEFUL_COMPLETION:
        spent = (
            f"{spent_tokens} of {settings.max_tokens} tokens used"
            if binding == "token_budget"
            else f"{format_cost(spent_usd)} of ${settings.max_cost:g} spent"
        )
        needs = f"its ~{prompt_tokens}-token prompt" + (f" (and ~{reserve} kept for judging it)" if reserve else "")
        raise BudgetExhausted(binding, f"{role} call skipped: {needs} leaves too little room ({spent})")
    return limit


# ===========================================================================
# PART 2 · THE MACHINERY
#
# You can stop reading here: the pattern is all above. What follows makes it
# run against real servers and look after its user: the model gateway with its
# fallbacks and error messages, reading verdicts from messy replies, output and
# trace, the scripted demo model, and the command line.
# ===========================================================================

DEMO_MODEL = "scripted-demo"  # the name the offline stand-in answers to; never a real model
REQUEST_TIMEOUT_S = 120.0  # one request; small local models on a laptop CPU are slow
SDK_MAX_RETRIES = 3  # the SDK retries 429, 5xx, timeouts and dropped connections with backoff
ROLE_HEADER = "X-Agent-Role"  # sent with each request, so fakes and proxies know which agent asks


class UsageError(AgentSystemError):
    """A bad flag, an empty task or a configuration that cannot work. Exit code 2."""


class ModelUnavailable(StopRun):
    """The server refused or kept failing; the SDK's retries are already spent."""


# List prices in USD per million tokens (input, output) as last checked. Edit
# them to match your provider; a model missing here has an unknown cost.
PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
    DEMO_MODEL: (0.0, 0.0),
}


# -- Small helpers the agents use ------------------------------------------------

_FENCE = re.compile(r"```([^\n`]*)\n(.*?)```", re.S)


def clip(text: str, limit: int) -> str:
    """Cut text to ``limit`` characters, saying that it was cut.

    >>> clip("abcdefghij", 8)
    'abcd […]'
    """
    return text if len(text) <= limit else text[: limit - 4] + " […]"


def system(text: str) -> dict[str, Any]:
    return {"role": "system", "content": text}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def lessons(items: list[HistoryItem]) -> str:
    """Earlier feedback as a list, oldest first, each clipped; feedback said word for word again is shown once, with a count.

    >>> print(lessons([{"feedback": "Add an example."}] * 5 + [{"feedback": "Shorter."}]))
    - Add an example. (said 5 times)
    - Shorter.
    """
    seen: dict[str, int] = {}
    for r in items:
        feedback = clip(r["feedback"], CLIP_CHARS)
        seen[feedback] = seen.get(feedback, 0) + 1
    return "\n".join(f"- {feedback}" + (f" (said {times(n)})" if n > 1 else "") for feedback, n in seen.items())


def code_blocks(text: str) -> list[dict[str, Any]]:
    """Each fenced code block's language, and whether it parses (Python and JSON are checked)."""
    blocks = []
    for tag, code in _FENCE.findall(text):
        language = tag.strip().lower() or "unlabelled"
        check: dict[str, Any] = {"language": language, "parses": None}
        try:
            if language in ("python", "py", "python3"):
                ast.parse(code)
                check["parses"] = True
            elif language == "json":
                json.loads(code)
                check["parses"] = True
        except (SyntaxError, ValueError, RecursionError) as err:
            check["parses"], check["error"] = False, first_line(str(err) or type(err).__name__, 120)
        blocks.append(check)
    return blocks


def spelled_out(r: Requirement) -> str:
    """A requirement as the worker should read it: the task's words, and the measure when they hide it.

    >>> spelled_out(Requirement("lines", 3, "haiku")), spelled_out(Requirement("max_words", 40, "at most 40 words"))
    ('haiku (lines: 3)', 'at most 40 words')
    """
    if r.value is True or str(r.value).lower() in r.quote.lower():
        return r.quote
    value = ", ".join(r.value) if isinstance(r.value, list) else r.value
    return f"{r.quote} ({r.kind.replace('_', ' ')}: {value})"


def shown_checks(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks worth showing: every requirement of the task, and the repetition check only when it fails."""
    return [c for c in facts.get("checks", []) if c["kind"] not in ("no_repeats", "no_empty_items") or not c["passed"]]


def format_facts(facts: dict[str, Any]) -> str:
    lines = [f"- words: {facts['words']}", f"- non-empty lines: {facts['lines']}"]  # characters: in the trace only
    if facts.get("cut_off"):
        lines.append("- the draft was cut off at its token limit: it is incomplete")
    for i, block in enumerate(facts["code_blocks"], 1):
        status = {True: "parses", False: f"does NOT parse ({block.get('error')})", None: "not checked"}[block["parses"]]
        lines.append(f"- code block {i} ({block['language']}): {status}")
    for check in shown_checks(facts):
        lines.append(f"- {'✓' if check['passed'] else '✗'} {check['requirement']}: {check['measured']}")
    return "\n".join(lines)


PLAN_MAX_STEPS = 8  # more than this is a list of answers, not a plan
PLAN_MAX_WORDS = 160  # a plan longer than this is the work itself, written early
PLAN_REMINDER = "Reply with 3 to 6 short steps that say how to do the task; do not write the finished work."
# Words of the review process: a plan made of these plans the loop, not the task.
_PROCESS_WORDS = {
    "critic", "feedback", "review", "reviewer", "approval", "approve", "revise", "revision", "resubmit",
    "submit",
}  # fmt: skip


def read_plan(text: str) -> tuple[list[str], Any]:
    """(steps, proposed checks) from the planner's reply: the JSON it was asked for, or plain numbered lines."""
    for data in json_objects(text):
        steps = data.get("steps")
        if isinstance(steps, list) and all(isinstance(s, str) for s in steps):
            steps = [re.sub(r"^\s*(?:\d+[.):]|[-*•])\s*", "", s) for s in steps]  # numbers are added by code
            return [" ".join(s.split()) for s in steps if s.strip()], data.get("checks")
    lines = [
        re.sub(r"^\s*(?:\d+[.):]|[-*•]|step \d+:?)\s*", "", line, flags=re.I).strip() for line in text.splitlines()
    ]
    return [line for line in lines if line], None


def plan_problem(steps: list[str], reply: Reply, state: SharedState) -> str | None:
    """Why these steps are not a usable plan, measured by code; None when they are."""
    text = "\n".join(steps)
    words = len(text.split())
    word_goal = max(
        (r.value for r in state["requirements"] if r.kind in ("about_words", "min_words", "exact_words")), default=0
    )
    if not steps:
        return "it has no steps"
    if reply.finish_reason == "length":
        return "it was cut off at its token limit"
    if len(steps) > PLAN_MAX_STEPS:
        return f"it has {len(steps)} steps; a plan has 3 to 6"
    if len({s.lower() for s in steps}) < len(steps) or _most_repeated_line(text)[1] >= 2:
        return "it repeats the same step"
    if "```" in text or re.search(r"^\s*[\[{]", text, re.M):
        return "it contains the finished work (code or JSON); a plan only says what to do"
    if words > PLAN_MAX_WORDS or (word_goal and words >= max(60, 0.6 * word_goal)):
        return f"it is {words} words long, as long as the answer itself"
    process_words = _PROCESS_WORDS - set(re.findall(r"[a-z]+", state["task"].lower()))  # "write a review" is a task
    process = sum(1 for s in steps if set(re.findall(r"[a-z]+", s.lower())) & process_words)
    if process * 2 >= len(steps):
        return "it plans the review process (critic, feedback, revisions) instead of the task"
    return None


def fallback_plan(state: SharedState) -> list[str]:
    """A plan made by code when the planner cannot make one: do the task, meet each requirement."""
    steps = [f"Do exactly what the task asks: {clip(state['task'], 200)}"]
    steps += [f"Make sure of this requirement: {r.quote}" for r in state["requirements"]]
    return [*steps, "Return only the finished work, with nothing before or after it."]


def merge_requirements(known: list[Requirement], more: list[Requirement]) -> list[Requirement]:
    merged = {(r.kind, str(r.value).lower()): r for r in [*known, *more]}
    return list(merged.values())


# -- Prices and spending -------------------------------------------------------


@dataclass(frozen=True)
class Price:
    input_per_token: float
    output_per_token: float


def price_for(model: str) -> Price | None:
    """The price of a model, or None when it is not in PRICES_PER_MILLION.

    >>> price_for("gpt-4o-mini-2024-07-18").input_per_token * 1_000_000
    0.15
    >>> price_for("llama3.2") is None
    True
    """
    for name, (inp, out) in PRICES_PER_MILLION.items():
        if model == name or model.startswith(name + "-20"):  # dated snapshots share a price
            return Price(inp / 1_000_000, out / 1_000_000)
    return None


@dataclass
class RoleStats:
    """What one role has spent so far."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    seconds: float = 0.0
    estimated: bool = False  # some usage was estimated: the server sent none
    cached_tokens: int = 0  # prompt tokens served from the provider's prompt cache (billed lower)


@dataclass
class Ledger:
    """Spending per role. The budget gate reads it; the state mirrors its totals."""

    roles: dict[str, RoleStats] = field(default_factory=dict)

    def add(
        self,
        role: str,
        prompt: int,
        completion: int,
        cost: float | None,
        seconds: float,
        estimated: bool,
        cached: int = 0,
    ) -> None:
        stats = self.roles.setdefault(role, RoleStats())
        stats.cached_tokens += cached
        stats.calls += 1
        stats.prompt_tokens += prompt
        stats.completion_tokens += completion
        stats.cost_usd = None if cost is None or stats.cost_usd is None else stats.cost_usd + cost
        stats.seconds += seconds
        stats.estimated = stats.estimated or estimated

    def _sum(self, name: str) -> int:
        return sum(getattr(r, name) for r in self.roles.values())

    calls = property(lambda self: self._sum("calls"))
    prompt_tokens = property(lambda self: self._sum("prompt_tokens"))
    completion_tokens = property(lambda self: self._sum("completion_tokens"))
    cached_tokens = property(lambda self: self._sum("cached_tokens"))
    total_tokens = property(lambda self: self.prompt_tokens + self.completion_tokens)
    seconds = property(lambda self: sum(r.seconds for r in self.roles.values()))
    estimated = property(lambda self: any(r.estimated for r in self.roles.values()))

    @property
    def cost_usd(self) -> float | None:  # None as soon as one role's price is unknown
        costs = [r.cost_usd for r in self.roles.values()]
        return None if None in costs else sum(c for c in costs if c is not None)


@dataclass
class Reply:
    """One model answer, with what it cost."""

    role: str
    model: str
    content: str
    message: dict[str, Any]  # the assistant message, ready to append to a conversation
    tool_calls: list[dict[str, Any]]  # {"id", "type", "function": {"name", "arguments"}}
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    cost_usd: float | None
    seconds: float
    finish_reason: str | None
    max_tokens: int
    cached_tokens: int = 0  # prompt tokens the server read from its prompt cache

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# -- The model gateway: the one place that calls a model -----------------------


@functools.cache
def verdict_schema() -> dict[str, Any]:
    """The critic's reply as a JSON schema for structured output, made from a pydantic model.

    Built on first use: pydantic is imported here, so ``--help`` never pays for it.
    Servers that refuse json_schema get json_object, then plain text; the parser copes with all three.
    """
    from pydantic import BaseModel, ConfigDict

    class CriticVerdict(BaseModel):
        model_config = ConfigDict(extra="forbid")  # strict structured output needs additionalProperties false
        approved: bool
        feedback: str

    return {"name": "verdict", "strict": True, "schema": CriticVerdict.model_json_schema()}


@functools.cache
def plan_schema() -> dict[str, Any]:
    """The planner's reply: short steps, and the task's measurable requirements, each quoting the task."""
    from pydantic import BaseModel, ConfigDict

    class ProposedCheck(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kind: str
        value: str
        quote: str

    class Plan(BaseModel):
        model_config = ConfigDict(extra="forbid")
        steps: list[str]
        checks: list[ProposedCheck]

    return {"name": "plan", "strict": True, "schema": Plan.model_json_schema()}


RESPONSE_FORMATS = ("json_schema", "json_object", "text")


def estimate_tokens(messages: list[dict[str, Any]], extras: list[Any] | None = None) -> int:
    """A deliberately high guess of a prompt's tokens, made before the call.

    Tokenizers average about 4 bytes of English per token (code and short
    lines come nearer 3); dividing by BYTES_PER_TOKEN_GUESS overestimates.
    ``extras`` are the other things a server turns into prompt tokens: tool
    schemas, a response_format schema. ``LLM`` also scales this guess up when
    a server reports more prompt tokens than it predicted.

    >>> estimate_tokens([{"role": "user", "content": "x" * 300}])
    127
    """
    total = 3  # every reply is primed with a few tokens
    for message in messages:
        total += 4  # role and separators
        total += estimate_text_tokens(json.dumps(message.get("content") or "")[1:-1])
        if message.get("tool_calls"):
            total += estimate_text_tokens(json.dumps(message["tool_calls"], default=str))
    for extra in extras or []:
        total += estimate_text_tokens(json.dumps(extra, default=str))
    return total


def estimate_text_tokens(text: str) -> int:
    return math.ceil(len(text.encode()) / BYTES_PER_TOKEN_GUESS)


def _openai() -> Any:
    """The SDK, imported on first need: it costs ~0.35 s, which --help and the offline demo never pay."""
    import openai

    return openai


class LLM:
    """The gateway to a model: budget gate, the call, accounting and the trace.

    Every agent (here and in stage 3) calls ``complete``; nothing else in the
    project talks to a server. The openai client is made on first use, never
    at import, so importing this module does no work.
    """

    def __init__(
        self,
        settings: Settings,
        display: Display,
        trace: Trace,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.display = display
        self.trace = trace
        if trace is not None:  # tests may run without one
            trace.hide(settings.api_key)
        self.ledger = Ledger()
        self._client = client
        self._owns_client = client is None  # only a client made here may be closed here
        self._clock = clock
        self._started = clock()
        self._format_level = 0  # index into RESPONSE_FORMATS; only ever goes down
        self._token_param = "max_tokens"  # some servers want max_completion_tokens
        self._tool_choice_ok = True  # some servers refuse tool_choice; then it is dropped
        self._warned_80 = False
        self._estimate_scale = 1.0  # raised when a server counts more prompt tokens than estimated
        self.before_call: Callable[[str, list[dict[str, Any]], int], None] | None = None  # --step pauses here
        self.human: HumanRung | None = None  # --human: the person at the top of the ladder

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _openai().OpenAI(
                api_key=self.settings.api_key or "not-needed",  # local servers ignore the key
                base_url=self.settings.base_url,
                max_retries=SDK_MAX_RETRIES,
                timeout=REQUEST_TIMEOUT_S,
            )
        return self._client

    def elapsed(self) -> float:
        return self._clock() - self._started

    def complete(
        self,
        role: str,
        messages: list[dict[str, Any]],
        *,
        schema: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        reserve: int = 0,
        reply_format: str | None = None,
    ) -> Reply:
        """Ask ``role``'s model for the next message. ``schema`` asks for structured output;
        ``tool_choice`` ("required", "auto") is passed on with ``tools`` where the server allows it;
        ``reserve`` tokens stay free for a call that will read this reply (see completion_allowance);
        ``reply_format`` describes ``schema`` in words, added to the system prompt while the server does not enforce it.

        Raises BudgetExhausted before a call that would break a budget, and
        ModelUnavailable when the server refuses or keeps failing.
        """
        model = self.settings.model_for(role)
        guess = estimate_tokens(messages, ([tools] if tools else []) + ([schema, reply_format] if schema else []))
        ledger = self.ledger
        limit = completion_allowance(
            role,
            math.ceil(guess * self._estimate_scale),
            ledger.total_tokens,
            ledger.cost_usd,
            self.elapsed(),
            model,
            self.settings,
            reserve,
        )
        if limit < role_cap(role):
            self.display.note(f"{role}: max_tokens clamped to {limit} to stay within budget")
        request: dict[str, Any] = {"model": model, "messages": messages, "extra_headers": {ROLE_HEADER: role}}
        if tools:
            request["tools"] = tools
            if tool_choice:
                request["tool_choice"] = tool_choice
        if self.before_call is not None:  # --step: the person at the front of the class says when
            self.before_call(role, messages, limit)
        self.display.prompt(role, self._as_sent(messages, schema, reply_format), limit)
        _ = self.client  # built before the clock starts: a call's latency is the server's, not the SDK's import
        started = self._clock()
        with self.display.thinking(role, model):
            completion = self._create(request, limit, schema, reply_format)
        reply = self._account(role, model, messages, completion, self._clock() - started, limit)
        self._calibrate(guess, reply)
        self.trace.event(
            "call",
            role=role,
            model=model,
            prompt=self._as_sent(messages, schema, reply_format),
            reply=reply.content,
            tool_calls=reply.tool_calls,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            usage_estimated=reply.estimated,
            cached_tokens=reply.cached_tokens,
            cost_usd=reply.cost_usd,
            latency_s=round(reply.seconds, 3),
            max_tokens=limit,
            finish_reason=reply.finish_reason,
            response_format=RESPONSE_FORMATS[self._format_level] if schema else None,
        )
        return reply

    # -- the call, with capability fallbacks and errors in one place ---------

    def _create(
        self, request: dict[str, Any], limit: int, schema: dict[str, Any] | None, reply_format: str | None = None
    ) -> Any:
        while True:
            attempt = dict(request, **{self._token_param: limit})
            if not self._tool_choice_ok:
                attempt.pop("tool_choice", None)
            if schema:
                attempt.update(self._response_format(schema, request["messages"], reply_format))
            try:
                return self._within_time_limit(functools.partial(self._send, attempt))
            except json.JSONDecodeError as err:  # the SDK read a 200 whose body is not JSON
                raise self._not_json(err) from None
            except RecursionError:  # a body nested thousands deep: the json module gives up
                raise ModelUnavailable(
                    "api_error", f"{self.settings.server()} sent a reply nested too deeply to read"
                ) from None
            except Exception as err:  # the SDK's error classes are looked up only once one is raised
                openai = _openai()
                if not isinstance(err, openai.OpenAIError):
                    raise
                refused = (openai.BadRequestError, openai.UnprocessableEntityError, openai.InternalServerError)
                if not (isinstance(err, refused) and self._fall_back(err, schema is not None)):
                    raise self._explain(err, request["model"]) from err

    def _send(self, attempt: dict[str, Any]) -> Any:
        return self.client.chat.completions.create(**attempt, timeout=self._request_timeout())

    def _response_format(
        self, schema: dict[str, Any], messages: list[dict[str, Any]], reply_format: str | None
    ) -> dict[str, Any]:
        """The request's response_format; below json_schema, also the reply's shape spelled out in the system prompt."""
        kind = RESPONSE_FORMATS[self._format_level]
        if kind == "json_schema":
            return {"response_format": {"type": "json_schema", "json_schema": schema}}
        spelled: dict[str, Any] = {}
        if reply_format and messages and messages[0]["role"] == "system":
            spelled["messages"] = [system(f"{messages[0]['content']}\n{reply_format}"), *messages[1:]]
        if kind == "json_object":
            return {"response_format": {"type": "json_object"}, **spelled}
        return spelled

    def _as_sent(
        self, messages: list[dict[str, Any]], schema: dict[str, Any] | None, reply_format: str | None
    ) -> list[dict[str, Any]]:
        """The messages as the server gets them at the current capability level (for the screen and the trace)."""
        if not schema:
            return messages
        return self._response_format(schema, messages, reply_format).get("messages", messages)

    def _fall_back(self, err: Exception, structured: bool) -> bool:
        """Step down one capability the server refused; False if nothing is left to drop."""
        text = str(err).lower()
        if (
            structured
            and self._format_level < len(RESPONSE_FORMATS) - 1
            and ("response_format" in text or "json_schema" in text or "json_object" in text)
        ):
            old = RESPONSE_FORMATS[self._format_level]
            self._format_level += 1
            new = RESPONSE_FORMATS[self._format_level]
            self.warn(f"server refused response_format {old}; using {new} for the rest of the run")
            return True
        if self._tool_choice_ok and "tool_choice" in text:
            self._tool_choice_ok = False
            self.warn("server refused tool_choice; leaving it out for the rest of the run")
            return True
        if self._token_param == "max_tokens" and "max_tokens" in text and "max_completion_tokens" in text:
            self._token_param = "max_completion_tokens"
            self.warn("server wants max_completion_tokens; switching for the rest of the run")
            return True
        return False

    def _within_time_limit(self, call: Callable[[], Any]) -> Any:
        """``call()``, abandoned when the run's time limit passes, even in the middle of the SDK's retries.

        The SDK gives each retry of a timed-out request the full timeout again, so a
        server that accepts and never answers would outlast --timeout several times
        over. With a limit set, the call runs in a daemon thread and is waited on
        only until the deadline.
        """
        s = self.settings
        if s.timeout is None:
            return call()
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                outcome["reply"] = call()
            except BaseException as err:  # handed to the waiting thread, which raises it
                outcome["error"] = err
            finally:
                done.set()

        # The name carries the run id, so the SDK's retry messages from this thread are told apart.
        threading.Thread(target=run, name=f"model-call {self.trace.run_id}", daemon=True).start()
        if not done.wait(max(0.0, s.timeout - self.elapsed())):
            self.trace.event("warning", message="a call was abandoned at the time limit; its tokens are not counted")
            if self._owns_client and self._client is not None:  # closing it ends the SDK's retries of that call
                self._client.close()
                self._client = None
            raise BudgetExhausted("timeout", f"{s.timeout:g}s time limit reached while waiting on {s.server()}")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["reply"]

    def _not_json(self, err: json.JSONDecodeError) -> StopRun:
        where = self.settings.server()
        if err.doc.lstrip()[:1] == "<":  # a web page: the address points at a website, not at an API
            return ModelUnavailable(
                "config_error", f"{where} answered with a web page, not JSON: is OPENAI_BASE_URL an API (often .../v1)?"
            )
        return ModelUnavailable(
            "api_error", f"{where} sent a reply that is not valid JSON ({err.msg} at char {err.pos})"
        )

    def _request_timeout(self) -> float:
        if self.settings.timeout is None:
            return REQUEST_TIMEOUT_S
        return max(1.0, min(REQUEST_TIMEOUT_S, self.settings.timeout - self.elapsed()))

    def _explain(self, err: Any, model: str) -> StopRun:
        """Turn any SDK error into one clear line and a stop reason (config_error: exit 2; api_error: exit 1)."""
        openai, where, s = _openai(), self.settings.server(), self.settings
        detail = first_line(redact(getattr(err, "message", None) or str(err), s.api_key))  # servers echo keys
        status = getattr(err, "status_code", None)
        fix, retried = "config_error", f"even after {SDK_MAX_RETRIES} retries"  # fix: the user must change something
        if isinstance(err, openai.AuthenticationError):
            return ModelUnavailable(fix, f"{where} rejected the API key (401): check OPENAI_API_KEY")
        if isinstance(err, openai.PermissionDeniedError):
            return ModelUnavailable(fix, f"{where} denied access (403): {detail}")
        if isinstance(err, openai.NotFoundError):
            return ModelUnavailable(
                fix, f"model '{model}' was not found at {where} (404): check --model or OPENAI_MODEL"
            )
        if isinstance(err, openai.APITimeoutError):
            if s.timeout is not None and self.elapsed() >= s.timeout:
                return BudgetExhausted("timeout", f"{s.timeout:g}s time limit reached during a call")
            return ModelUnavailable("api_error", f"{where} did not answer in time, {retried}")
        if isinstance(err, openai.APIConnectionError):
            if type(err.__cause__).__name__ not in ("ConnectError", "ConnectTimeout", "ProxyError", "NoneType"):
                return ModelUnavailable("api_error", f"the connection to {where} broke mid-reply, {retried}")
            return ModelUnavailable(fix, f"cannot reach {where}: is the server running and OPENAI_BASE_URL right?")
        if isinstance(err, openai.RateLimitError):
            if "quota" in detail.lower():
                return ModelUnavailable(fix, f"{where}: quota exhausted (429): {detail}")
            return ModelUnavailable("api_error", f"{where} is rate limiting (429) {retried}")
        if isinstance(err, (openai.BadRequestError, openai.UnprocessableEntityError)):
            return ModelUnavailable(fix, f"{where} refused the request ({status}): {detail}")
        if status in (405, 501):
            return ModelUnavailable(
                fix, f"{where} does not serve chat completions ({status}): is it OpenAI-compatible?"
            )
        if status is not None:
            return ModelUnavailable("api_error", f"{where} failed ({status}) {retried}: {detail}")
        return ModelUnavailable("api_error", f"{where}: {detail}")

    # -- accounting ---------------------------------------------------------

    def _account(
        self, role: str, model: str, messages: list[dict[str, Any]], completion: Any, seconds: float, limit: int
    ) -> Reply:
        if isinstance(completion, str):  # the SDK hands back the text of a body that was not JSON
            raise self._not_json(json.JSONDecodeError("not JSON", completion, 0))
        if not getattr(completion, "choices", None):
            raise ModelUnavailable(
                "config_error", f"{self.settings.server()} answered without any choices: is it OpenAI-compatible?"
            )
        choice = completion.choices[0]
        content = clean_text(choice.message.content or "")
        refusal = getattr(choice.message, "refusal", None)
        if refusal and not content:  # the model declined: say so, rather than pass on an empty reply silently
            self.warn(f"the {role}'s model refused: {first_line(redact(str(refusal)), 120)}")
        tool_calls = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.function.name, "arguments": clean_text(c.function.arguments or "")},
            }
            for c in getattr(choice.message, "tool_calls", None) or []
        ]
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        usage = getattr(completion, "usage", None)
        cached = cached_prompt_tokens(usage)
        if usage is not None and usage.prompt_tokens:
            prompt_tokens, completion_tokens, estimated = usage.prompt_tokens, usage.completion_tokens or 0, False
        else:  # llama.cpp and some proxies may omit usage: guess high, and say so
            prompt_tokens = estimate_tokens(messages)
            completion_tokens = estimate_text_tokens(content + json.dumps(tool_calls))
            estimated = True
        price = price_for(model)
        cost = (
            None
            if price is None
            else prompt_tokens * price.input_per_token + completion_tokens * price.output_per_token
        )
        self.ledger.add(role, prompt_tokens, completion_tokens, cost, seconds, estimated, cached)
        self._check_budget_share()
        return Reply(
            role,
            model,
            content,
            message,
            tool_calls,
            prompt_tokens,
            completion_tokens,
            estimated,
            cost,
            seconds,
            choice.finish_reason,
            limit,
            cached,
        )

    def _calibrate(self, guess: int, reply: Reply) -> None:
        """When the server counted more prompt tokens than the guess, guess higher from now on."""
        if not reply.estimated and reply.prompt_tokens > guess * self._estimate_scale:
            self._estimate_scale = 1.1 * reply.prompt_tokens / guess
            self.display.note(
                f"the server counted {reply.prompt_tokens} prompt tokens, more than the "
                f"~{guess} estimated: estimates are scaled by {self._estimate_scale:.2f} from now on"
            )

    def _check_budget_share(self) -> None:
        used, cap = self.ledger.total_tokens, self.settings.max_tokens
        if used > cap:  # only if a server counted far more prompt tokens than estimated
            self.warn(f"token budget exceeded ({used} > {cap}): the prompt estimate was low")
        elif not self._warned_80 and used >= TOKEN_WARNING_SHARE * cap:
            self._warned_80 = True
            self.warn(f"{used} of {cap} tokens used ({used / cap:.0%} of the budget)")

    def warn(self, text: str) -> None:
        """A warning on screen and in the trace."""
        self.display.warn(text)
        self.trace.event("warning", message=text)


def cached_prompt_tokens(usage: Any) -> int:
    """``usage.prompt_tokens_details.cached_tokens``, which only some servers send; 0 when absent."""
    details = getattr(usage, "prompt_tokens_details", None)
    return getattr(details, "cached_tokens", None) or 0


_SECRET = re.compile(
    r"(?i)((?:bearer|basic)\s+)[^\s\"',;]+"  # an Authorization header, echoed
    r"|(?<![\w-])((?:sk|rk|pk)[-_][\w-]{8,})"  # key-shaped words: sk-..., sk-proj-..., sk_live_...
    r"|((?:api[ _-]?key|x-api-key|token|password|secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;)]+"
)
SECRET_MIN_CHARS = 16  # real keys are longer; a trace is not scrubbed of a placeholder such as "local"


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with the given secrets, and anything that looks like a key, replaced by [redacted].

    Run on any text a server wrote before it is shown or saved.

    >>> redact("Invalid header 'Authorization: Bearer abc123' (api_key=xyz)")
    "Invalid header 'Authorization: Bearer [redacted]' (api_key=[redacted])"
    """
    for secret in secrets:
        if secret and len(secret) >= 4:  # error text is short: scrubbing even a placeholder costs nothing
            text = text.replace(secret, "[redacted]")
    return _SECRET.sub(lambda m: (m.group(1) or m.group(3) or "") + "[redacted]", text)


def clean_text(text: str) -> str:
    """``text`` with any lone surrogate replaced by U+FFFD: JSON may carry one ("\\ud83d", a reply cut
    mid-emoji), and UTF-8 cannot encode it, so the screen, the trace and the next request would fail.

    >>> clean_text("cut \\ud83d here") == "cut \\ufffd here"
    True
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def first_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@contextmanager
def sdk_retries_shown(display: Display, trace: Trace) -> Iterator[None]:
    """Make the SDK's own retry messages visible: in --verbose, and always in the trace."""

    here = threading.current_thread().name

    class _Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.threadName != here and not str(record.threadName).endswith(trace.run_id):
                return  # another run's call, or one abandoned at an earlier run's time limit
            message = record.getMessage()
            if "retry" in message.lower():
                display.note(f"openai SDK: {message}")
                trace.event("warning", message=f"openai SDK: {message}")

    logger = logging.getLogger("openai")
    handler, old_level = _Forward(level=logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


# -- Reading a verdict: tolerant of format, strict about approval --------------


@dataclass(frozen=True)
class Verdict:
    """The critic's decision, and how it was read from the reply."""

    approved: bool
    feedback: str
    source: str  # "json", "verdict line", "json fragment", "none", "code"
    why: str  # recorded in the trace: why this counts as approved or not

    def overruled(self, why: str) -> Verdict:
        """The same reply, not approved, because code knows better than the model here."""
        return Verdict(False, self.feedback, self.source, why)


_YES = {"yes", "y", "true", "approved", "approve", "accept", "accepted", "pass", "passed", "lgtm", "✅", "✔", "☑", "👍"}
_NO = {
    "no", "n", "false", "not", "rejected", "reject", "fail", "failed", "denied", "revise", "❌", "✖", "✗", "👎",
    "🚫",
}  # fmt: skip
# A yes that comes with one of these is a yes with a condition, which is not a yes.
_HEDGES = {
    "but", "though", "although", "however", "if", "unless", "except", "assuming", "provided", "pending", "once",
    "until", "after", "mostly", "partially", "partly", "almost", "nearly", "conditionally", "long", "minor",
}  # fmt: skip
_LABEL = re.compile(r"^(approved|approval|verdict|decision)\s*[:=\-–]\s*(.*)$", re.I)
_BARE = re.compile(r"^((?:not\s+)?approved|rejected|denied|not\s+approve\w*)\b(.*)$", re.I)
_MARKS = re.compile(r"^([✅✔☑👍❌✖✗👎🚫])\s*")  # an emoji that states a verdict on its own
_OPTIONS = re.compile(r"/|\||\bor\b", re.I)  # "YES/NO", "{YES|NO}", "YES or NO": the options echoed back
_THINK = re.compile(r"<think>.*?(</think>|$)", re.I | re.S)  # a reasoning model's scratchpad is not its verdict
_VERDICT_KEYS = ("approved", "verdict", "decision", "approval")
# "approved": true with feedback that says "the draft does not fully meet the task" contradicts itself.
# (Not "missing": the local model writes "nothing is missing" in clear approvals.)
_CONTRADICTS = re.compile(
    r"\b(?:does not|doesn't|do not|did not|fails? to|is not|isn't|not)\s+(?:fully\s+|quite\s+|yet\s+|entirely\s+)?"
    r"(?:meet|meets|do|does|fulfil|fulfill|fulfils|fulfills|satisfy|satisfies|follow|follows|complete|match|answer)\b",
    re.I,
)


def parse_verdict(text: str) -> Verdict:
    """Read the critic's reply; the rule fits in two sentences.

    Every verdict the reply states is found: a JSON object with an "approved"
    (or "verdict") field, a line that starts with a label such as ``APPROVED:``
    or with a bare "Approved."/"Not approved", or a ✅/❌ mark. The reply approves
    only when all of them are an unconditional yes and one is stated outright;
    anything else (no verdict, a no anywhere, a hedged or templated yes, a duplicated
    key, cut-off JSON, a yes that is only quoted, a yes whose own feedback says the
    draft falls short) is a rejection. A reasoning model's <think> block is skipped.

    >>> parse_verdict('{"approved": true, "feedback": "Good."}').approved
    True
    >>> parse_verdict("APPROVED: YES. It reads well aloud.").approved
    True
    >>> parse_verdict('APPROVED: NO. Do not just reply {"approved": true}.').approved
    False
    >>> parse_verdict("APPROVED: YES, though the ending is weak").why
    "'YES, though the ending is weak' is a conditional yes: not an approval"
    """
    raw = _THINK.sub("", text).strip()
    found: list[tuple[bool | None, bool, str, str]] = []  # (yes/no/unclear, quoted, source, what it said)
    covered: list[tuple[int, int]] = []  # JSON spans, so their lines are not read twice
    first_json: dict[str, Any] | None = None  # its "feedback" is the feedback
    for start, end, data in _objects_with_spans(raw):
        keys = [k for k in data if str(k).lower() in _VERDICT_KEYS]
        if keys:
            first_json = first_json or data
            line_end = raw.find("\n", end)
            before = raw[raw.rfind("\n", 0, start) + 1 : start].strip()
            after = raw[end : line_end if line_end != -1 else len(raw)].strip(" `")
            quoted = bool(after) or bool(before and before[-1] not in ":.!")  # mid-sentence: an example
            found.append((_value(data[keys[0]]), quoted, "json", repr(data[keys[0]])))
            covered.append((start, end))
    offset = 0
    for line in raw.splitlines(keepends=True):
        inside = any(a <= offset < b for a, b in covered)
        offset += len(line)
        if not inside:
            found += _line_verdicts(line)
    if not found and re.match(r"(```\w*\s*)?\{", raw) and re.search(r"[\"']approved[\"']\s*:", raw, re.I):
        return Verdict(False, _feedback(raw, None), "json fragment", "malformed JSON: not an approval")
    if not found:
        return Verdict(
            False, raw, "none", "empty reply: not an approval" if not raw else "no verdict found: not an approval"
        )
    feedback = _feedback(raw, first_json)
    source = found[0][2]
    for value, _quoted, _source, said in found:
        if value is not True:
            why = f"the reply says {said!r}" if value is False else f"{said!r} {_unclear(said)}: not an approval"
            return Verdict(False, feedback, source, why)
    if _CONTRADICTS.search(feedback):
        return Verdict(
            False, feedback, source, "the yes comes with feedback saying the draft falls short: not an approval"
        )
    if all(quoted for _, quoted, _, _ in found):
        return Verdict(False, feedback, source, "the only yes is quoted inside a sentence: not an approval")
    return Verdict(True, feedback, source, f"every verdict in the reply is a yes ({len(found)})")


def _line_verdicts(line: str) -> list[tuple[bool | None, bool, str, str]]:
    """The verdicts one line states: a label and its value, a bare verdict word, a leading ✅/❌."""
    quoted = line.lstrip().startswith(">")
    clean = re.sub(r"^[\s>#*_`\-•]*(\d+[.)]\s*)?", "", line).replace("**", "").replace("__", "").strip()
    found: list[tuple[bool | None, bool, str, str]] = []
    mark = _MARKS.match(clean)
    if mark:
        found.append((mark.group(1) in _YES, quoted, "verdict line", mark.group(1)))
        clean = clean[mark.end() :]
    labelled, bare = _LABEL.match(clean), _BARE.match(clean)
    if labelled:
        found.append((_value(labelled.group(2)), quoted, "verdict line", labelled.group(2).strip()))
    elif bare:
        found.append((_value(clean), quoted, "verdict line", clean))
    return found


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+|[✅✔☑👍❌✖✗👎🚫]", text.lower())


def _value(value: Any) -> bool | None:
    """True for an unconditional yes, False for a no, None for anything unclear."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None  # 1, null, a list: not a clear yes or no
    words = _words(value)
    if not words or _echoed(value) or "?" in value:
        return None
    if words[:2] == ["not", "approved"] or words[0] in _NO:
        return False
    if words[0] in _YES:
        return None if _HEDGES & set(words[1:]) or "as long as" in value.lower() else True
    return None


def _echoed(value: str) -> bool:
    words = set(_words(value))
    return bool(_OPTIONS.search(value) and words & _YES and words & _NO)


def _unclear(said: str) -> str:
    if _echoed(said):
        return "repeats the template"
    if "?" in said or (_words(said)[:1] and _words(said)[0] in _YES):
        return "is a conditional yes"
    return "is not a clear yes or no"


def _objects_with_spans(text: str) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(start, end, object) for every JSON object in ``text``, and for flat Python-style dicts ({'a': True})."""
    decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates)
    start = text.find("{")
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except RecursionError:  # nested absurdly deep: skip the whole run of openings, not one "{" at a time
            start = text.find("{", max(start + 1, text.find("}", start)))
            continue
        except ValueError:  # not JSON here
            value, end = _python_dict(text, start)
        if isinstance(value, dict) and nesting_depth(value) <= JSON_MAX_DEPTH:
            yield start, end, value
            start = text.find("{", end)
        else:
            start = text.find("{", start + 1)


JSON_MAX_DEPTH = 32  # deeper than any verdict, plan or config; deeper is garbage, and would break json.dumps


def nesting_depth(value: Any) -> int:
    """How deeply lists and dicts nest in ``value``, counted without recursion (a reply can nest thousands deep).

    >>> nesting_depth({"a": [1, {"b": 2}]}), nesting_depth("text")
    (3, 0)
    """
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose key repeats with another value keeps neither: {"approved": false, "approved": true}."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        data[key] = None if key in data and data[key] != value else value
    return data


def _python_dict(text: str, start: int) -> tuple[Any, int]:
    flat = re.match(r"\{[^{}]{0,2000}\}", text[start:])
    if flat:
        try:
            return ast.literal_eval(flat.group(0)), start + flat.end()
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    return None, start


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object embedded in ``text``, in order: bare, fenced, or amid prose.

    Small models wrap JSON in code fences, chatter around it, or double the
    braces; scanning from each "{" finds the objects anyway.

    >>> json_objects('Sure! ```json\\n{"a": 1}\\n``` and {{"b": 2}} but {broken')
    [{'a': 1}, {'b': 2}]
    """
    return [value for _, _, value in _objects_with_spans(text)]


def _feedback(raw: str, data: dict[str, Any] | None) -> str:
    if data is not None:
        keys = {str(k).lower(): v for k, v in data.items()}
        if keys.get("feedback"):
            return str(keys["feedback"]).strip()
    match = re.search(r"feedback\W*?[:=]\s*(.*)", raw, re.I | re.S)
    if match:
        return match.group(1).strip().strip('"}').strip()
    return "\n".join(line for line in raw.splitlines() if not _line_verdicts(line)).strip()


# -- Requirements: found in the task's words, measured in the draft --------------

_NUMBER_WORDS = {
    word: n
    for n, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")
    )
}  # fmt: skip
_N = r"(\d{1,5}|" + "|".join(_NUMBER_WORDS) + r")"
_NOT_ITEMS = r"(?!(?:sentences|paragraphs|words|lines|times|minutes|seconds|hours|days|years)\b)"
_QUOTED = r"""["'“‘`]([^"'”’`]{1,60})["'”’`]"""
# (pattern, kind): common ways a task states a measurable requirement; the groups hold its value.
_PHRASINGS: list[tuple[str, str]] = [  # earlier patterns win where two overlap
    (rf"\beach(?: \w+)?(?: \w+)? (?:has |is |in )?(?:at most|no more than|of at most|up to) {_N} words\b", "item_max_words"),
    (rf"\beach(?: \w+)?(?: \w+)? (?:has |is |in )?(?:under|fewer than|less than) {_N} words\b", "item_below_words"),
    (rf"\b(?:of )?(?:at most|no more than|up to) {_N} words each\b", "item_max_words"),
    (rf"\b(?:of )?(?:under|fewer than|less than) {_N} words each\b", "item_below_words"),
    (rf"\bbetween {_N} and {_N} words\b", "word_range"),
    (rf"\b{_N}\s*(?:-|–|to)\s*{_N} words\b", "word_range"),
    (rf"\b(?:at most|no more than|not more than|maximum of|max(?:imum)?|up to|within) {_N} words\b", "max_words"),
    (rf"\b(?:under|fewer than|less than|below) {_N} words\b", "below_words"),
    (rf"\b{_N} words or (?:less|fewer)\b", "max_words"),
    (rf"\bnot exceed(?:ing)? {_N} words\b", "max_words"),
    (rf"\b(?:at least|no fewer than|no less than|minimum of|a minimum of) {_N} words\b", "min_words"),
    (rf"\bmore than {_N} words\b", "above_words"),
    (rf"\b(?:about|around|approximately|roughly|some|circa|~)\s*{_N} words\b", "about_words"),
    (rf"(?<!for a )(?<!for an )\b{_N}-word\b(?! (?:title|name|phrase|slogan|tagline|heading|subject|summary|limit))", "about_words"),
    (rf"\bexactly {_N} words\b", "exact_words"),
    (rf"\b(?:exactly )?{_N} bullet(?:ed)?(?: points?|s)?\b", "bullets"),
    (rf"\b(?:exactly )?{_N} numbered (?:steps?|items?|points?|lines?|instructions?)\b", "numbered"),
    (rf"\b(?:exactly )?{_N} (?:steps?|instructions?)\b", "items"),
    (rf"\b(?:list|give|name|suggest|provide|write)(?: me)? (?:exactly )?{_N} {_NOT_ITEMS}(?:\w+ ){{0,2}}?[a-z]+s\b", "items"),
    (rf"\b(?:exactly |of )?{_N} (?:non-empty )?lines\b", "lines"),
    (rf"\b(?:exactly |in )?{_N} sentences?\b", "sentences"),
    (r"\b(?:a|one|the) haiku\b", "haiku"),
    (rf"\bjson array of {_N}\b", "json_array"),
    (r"\b(?:(?:return|output|reply|respond|answer|give|produce|format)\b[^.]{0,30}\bjson|json (?:array|object|list)|(?:as|in|valid) json)\b", "json"),
    (r"\bwith (?:the )?(?:keys|fields|properties) ([\w\"'`]+(?:(?:,\s*|,? and |\s+)[\w\"'`]+)*)", "json_keys"),
    (r"\b(?:python )?(?:function|def)(?: named| called)?\s+`?([A-Za-z_]\w*)\s*\(", "function"),
    (r"\b(?:python )?function (?:named|called) `?([A-Za-z_]\w*)`?", "function"),
    (r"\bclass (?:named|called) `?([A-Za-z_]\w*)`?", "class"),
    (r"\b(?:python (?:code|function|script|program|snippet|class)|(?:write|implement|code)\b[^.]{0,40}\bin python)\b", "python"),
    (rf"\b(?:without|not|never|avoid|avoids|avoiding|no|don't|do not) (?:using |use |uses |mention |mentioning |include |including )?(?:the )?(?:word|phrase|term)s? {_QUOTED}", "exclude"),
    (rf"\b(?:includes?|including|contains?|containing|uses?|using|mentions?|with) (?:the )?(?:exact )?(?:word|phrase|term)s? {_QUOTED}", "include"),
    (rf"\b(?:without|never|avoid\w*|do not (?:use|mention)|don't (?:use|mention)) {_QUOTED}", "exclude"),
    (rf"\b(?:includes?|including|contains?|containing|mentions?|mentioning) {_QUOTED}", "include"),
    (r"\b(?:every|each) line (?:starts|begins|must start|must begin) with (?:the letter |an? )?[\"']?([A-Za-z])\b", "line_start"),
    (r"\b(?:in )?(?:all caps|all capital letters|all uppercase|uppercase letters|capital letters only)\b", "uppercase"),
]  # fmt: skip
_KEY_LIST_ENDS = {"for", "of", "in", "to", "with", "from", "about", "each", "per", "that", "where", "describing"}
# "under 50 words" is at most 49; "more than 50 words" is at least 51.
_SHIFT = {"below_words": ("max_words", -1), "above_words": ("min_words", 1), "item_below_words": ("item_max_words", -1)}


def _number(text: str) -> int:
    return int(text) if text.isdigit() else _NUMBER_WORDS[text.lower()]


def requirements_from_task(task: str) -> list[Requirement]:
    """The measurable requirements a task states in common phrasings; each quotes the task.

    >>> [(r.kind, r.value) for r in requirements_from_task("Explain closures in at most 40 words.")]
    [('max_words', 40)]
    >>> [(r.kind, r.value) for r in requirements_from_task("Write a haiku about rain")]
    [('lines', 3)]
    """
    found: list[Requirement] = []
    taken: list[tuple[int, int]] = []
    for pattern, kind in _PHRASINGS:
        for match in re.finditer(pattern, task, re.I):
            if any(a <= match.start() < b for a, b in taken) and kind not in ("json", "python", "json_keys"):
                continue  # "between 80 and 100 words" is one requirement, not three
            quote = match.group(0).strip()
            groups = [g for g in match.groups() if g]
            found += _read_requirement(kind, groups, quote)
            taken.append((match.start(), match.end()))
    unique: dict[tuple[str, str], Requirement] = {}
    for r in found:
        unique.setdefault((r.kind, str(r.value).lower()), r)
    kinds = {r.kind for r in unique.values()}
    return [
        r
        for r in unique.values()
        if not (r.kind == "json" and kinds & {"json_array", "json_keys"})  # the stronger check covers it
        and not (r.kind == "python" and kinds & {"function", "class"})
        and not (r.kind == "items" and kinds & {"bullets", "numbered"})
    ]


def _read_requirement(kind: str, groups: list[str], quote: str) -> list[Requirement]:
    try:
        if kind == "word_range":
            low, high = sorted(_number(g) for g in groups[:2])
            return [Requirement("min_words", low, quote), Requirement("max_words", high, quote)]
        if kind in _SHIFT:
            real, shift = _SHIFT[kind]
            return [Requirement(real, _number(groups[0]) + shift, quote)]
        if kind == "haiku":
            return [Requirement("lines", 3, quote)]
        if kind == "json_keys":
            keys = [k.strip("\"'`") for k in re.split(r",\s*|,?\s+and\s+|\s+", groups[0]) if k.strip("\"'`")]
            stop = next((i for i, k in enumerate(keys) if k.lower() in _KEY_LIST_ENDS), len(keys))
            keys = [k for k in keys[:stop] if k.lower() not in ("the", "a", "an")]
            return [Requirement(kind, keys, quote)] if keys else []
        if kind in ("json", "python", "uppercase"):
            return [Requirement(kind, True, quote)]
        if kind in ("function", "class", "include", "exclude", "line_start"):
            return [Requirement(kind, groups[0], quote)]
        return [Requirement(kind, _number(groups[0]), quote)]
    except (KeyError, ValueError, IndexError):
        return []


# -- Measuring: one function per kind, each returns (passed, what was measured) --

_BULLET = re.compile(r"^\s*[-*•]\s+\S")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+\S")


def _list_lines(draft: str, pattern: re.Pattern[str] | None = None) -> list[str]:
    lines = [line for line in draft.splitlines() if line.strip()]
    if pattern is not None:
        return [line for line in lines if pattern.match(line)]
    marked = [line for line in lines if _BULLET.match(line) or _NUMBERED.match(line)]
    return marked or lines


def _sentences(text: str) -> int:
    text = re.sub(r"```.*?```", " ", text, flags=re.S).strip()
    ends = len(re.findall(r"[.!?]+[\"')\]]*(?=\s|$)", text))
    return ends + (1 if text and not re.search(r"[.!?][\"')\]]*$", text) else 0)


def _json_value(draft: str) -> Any:
    """The draft's JSON: the whole draft, a fenced block, or the first array or object in it."""
    for candidate in [draft, *(code for tag, code in _FENCE.findall(draft) if tag.strip().lower() in ("", "json"))]:
        try:
            return json.loads(candidate)
        except (ValueError, RecursionError):
            pass
    decoder = json.JSONDecoder()
    for start in (i for i, c in enumerate(draft) if c in "[{"):
        try:
            return decoder.raw_decode(draft, start)[0]
        except (ValueError, RecursionError):
            continue
    return None


def _python_tree(draft: str) -> ast.Module | None:
    blocks = [code for tag, code in _FENCE.findall(draft) if tag.strip().lower() in ("", "python", "py", "python3")]
    for code in [*blocks, draft]:
        try:
            return ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def measure(draft: str, r: Requirement) -> tuple[bool, str]:
    """Whether ``draft`` meets ``r``, and what was measured, in words a model can act on."""
    words = len(draft.split())
    v = r.value
    if r.kind == "max_words":
        return words <= v, f"{_count(words, 'word')}; the task asks for at most {v}"
    if r.kind == "min_words":
        return words >= v, f"{_count(words, 'word')}; the task asks for at least {v}"
    if r.kind == "about_words":
        low, high = math.floor(v * (1 - ABOUT_TOLERANCE)), math.ceil(v * (1 + ABOUT_TOLERANCE))
        return low <= words <= high, f"{_count(words, 'word')}; the task asks for about {v} ({low}-{high})"
    if r.kind == "exact_words":
        return words == v, f"{_count(words, 'word')}; the task asks for exactly {v}"
    if r.kind in ("bullets", "numbered", "items", "lines"):
        pattern = {"bullets": _BULLET, "numbered": _NUMBERED}.get(r.kind)
        found = (
            len(_list_lines(draft, pattern))
            if r.kind != "lines"
            else len(_list_lines(draft, re.compile(r"(?!\s*```)")))
        )
        if r.kind == "items" and found == 1:  # "France, Spain and Italy." on one line is three items
            found = len([part for part in re.split(r",|;|\band\b", draft) if part.strip(" .\n")])
        noun = {"bullets": "bullet point", "numbered": "numbered item", "items": "item", "lines": "non-empty line"}
        return found == v, f"{_count(found, noun[r.kind])}; the task asks for exactly {v}"
    if r.kind == "sentences":
        found = _sentences(draft)
        return found == v, f"{_count(found, 'sentence')}; the task asks for exactly {v}"
    if r.kind == "item_max_words":
        longest = max(
            (len(re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).split()) for line in _list_lines(draft)), default=0
        )
        return longest <= v, f"the longest item has {_count(longest, 'word')}; the task asks for at most {v} each"
    if r.kind in ("json", "json_array", "json_keys"):
        data = _json_value(draft)
        if data is None:
            return False, "no valid JSON found in the draft; the task asks for JSON"
        if r.kind == "json_array":
            if not isinstance(data, list):
                return False, f"the JSON is {type(data).__name__}, not an array; the task asks for an array of {v}"
            return len(data) == v, f"a JSON array of {len(data)}; the task asks for {v}"
        if r.kind == "json_keys":
            objects = data if isinstance(data, list) else [data]
            missing = sorted({k for o in objects for k in v if not (isinstance(o, dict) and k in o)})
            return not missing, f"missing keys {', '.join(missing)}" if missing else f"every object has {', '.join(v)}"
        return True, "valid JSON"
    if r.kind in ("python", "function", "class"):
        tree = _python_tree(draft)
        if tree is None:
            return False, "the Python code does not parse; the task asks for working Python"
        if r.kind == "python":
            return True, "the Python code parses"
        kind = ast.ClassDef if r.kind == "class" else (ast.FunctionDef, ast.AsyncFunctionDef)
        names = [n.name for n in ast.walk(tree) if isinstance(n, kind)]
        return v in names, f"defines {', '.join(names) or 'nothing'}; the task asks for {r.kind} {v}"
    if r.kind in ("include", "exclude"):
        present = re.search(rf"(?<!\w){re.escape(v)}(?!\w)", draft, re.I) is not None
        if r.kind == "include":
            return present, f"contains '{v}'" if present else f"'{v}' is missing; the task asks for it"
        return not present, f"'{v}' appears; the task forbids it" if present else f"does not contain '{v}'"
    if r.kind == "line_start":
        bad = [
            line.strip()
            for line in _list_lines(draft, re.compile("."))
            if not line.strip().lower().startswith(v.lower())
        ]
        return (
            not bad,
            f"{_count(len(bad), 'line')} do not start with '{v}'" if bad else f"every line starts with '{v}'",
        )
    if r.kind == "uppercase":
        lower = sum(c.islower() for c in draft)
        return lower == 0, f"{_count(lower, 'lowercase letter')}; the task asks for capitals only"
    if r.kind == "no_empty_items":  # "- -" or "3." with nothing after it: list markers with no words
        prose = re.sub(r"```.*?(```|$)", "", draft, flags=re.S)  # code and JSON are not list items
        marked = [m.group(1) for m in re.finditer(r"^\s*(?:[-*•]|\d+[.)])(?=\s|$)(.*)$", prose, re.M)]
        empty = [rest for rest in marked if not re.search(r"\w", rest)]
        return not empty, f"{_count(len(empty), 'list item')} with no words in it" if empty else "no empty items"
    if r.kind == "no_repeats":
        line, times_seen = _most_repeated_line(draft)
        if times_seen < v:
            return True, "no line repeated"
        return False, f"the draft repeats itself: '{clip(line, 60)}' appears {times(times_seen)}"
    return False, f"unknown requirement kind {r.kind!r}: not checked"


def _most_repeated_line(draft: str) -> tuple[str, int]:
    """The longer line (four words or more, outside code) repeated most often, and how often.

    A refrain is not a loop: a line counts as repeated only when its copies are a third of the lines or more.
    """
    counts: dict[str, int] = {}
    lines = [line for line in re.sub(r"```.*?(```|$)", "", draft, flags=re.S).splitlines() if line.strip()]
    for line in lines:
        key = " ".join(line.lower().split())
        if len(key.split()) >= 4:
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return "", 0
    line = max(counts, key=lambda k: counts[k])
    return (line, counts[line]) if counts[line] * 3 >= len(lines) else (line, 1)


PLAN_CHECK_KINDS = (
    "max_words", "min_words", "about_words", "exact_words", "bullets", "numbered", "items", "lines", "sentences",
    "item_max_words", "json", "json_array", "json_keys", "python", "function", "class", "include", "exclude",
    "line_start", "uppercase",
)  # fmt: skip


def accept_proposed(task: str, proposed: Any) -> list[Requirement]:
    """Checks the planner proposed that code can trust: the quote is in the task, and code reads it as that kind.

    The model only points at words of the task; code decides what they require, so no model can invent one.

    >>> accept_proposed("Write at most 30 words.", [{"kind": "max_words", "value": "300", "quote": "at most 30 words"}])
    [Requirement(kind='max_words', value=30, quote='at most 30 words')]
    >>> accept_proposed("List 5 fruits.", [{"kind": "max_words", "value": "5", "quote": "5"}])
    []
    """
    accepted: list[Requirement] = []
    flat_task = " ".join(task.split())
    for item in proposed if isinstance(proposed, list) else []:
        if not isinstance(item, dict) or item.get("kind") not in PLAN_CHECK_KINDS:
            continue
        quote = " ".join(str(item.get("quote", "")).split())
        if quote and re.search(rf"(?<!\w){re.escape(quote)}(?!\w)", flat_task, re.I):
            accepted += [r for r in requirements_from_task(quote) if r.kind == item["kind"]]
    return accepted


# -- Output: one rich Console, passed in; model text is never parsed as markup --

Mode = Literal["normal", "verbose", "quiet", "json"]


class Display:
    """Everything the user sees. ``console`` is stdout; ``errors`` gets one-line errors.

    In "quiet" and "json" modes nothing but the final answer reaches stdout.
    Model text is wrapped in ``Text`` so that "[bold]" in a reply stays literal.
    rich is imported by the methods that draw, so ``--help`` never loads it.
    """

    def __init__(self, console: Console, mode: Mode = "normal", errors: Console | None = None):
        from rich.console import Console

        self.console = console
        self.mode = mode
        self.streaming: set[str] = set()  # roles whose replies are streamed: no spinner over them
        self._streaming_now: set[str] = set()
        # On a real terminal errors go to stderr, so --json and --quiet output stays clean.
        self.errors = errors or (Console(stderr=True) if console.file is sys.stdout else console)

    @property
    def chatty(self) -> bool:
        return self.mode in ("normal", "verbose")

    def line(self, text: str, style: str = "", **options: Any) -> None:
        """One line of plain text; markup in ``text`` is shown, never interpreted."""
        from rich.text import Text

        self.console.print(Text(text, style=style), **options)

    def panel(self, body: str, title: str, style: str, subtitle: str | None = None) -> None:
        from rich.panel import Panel
        from rich.text import Text

        self.console.print(
            Panel(Text(body), title=Text(title), subtitle=Text(subtitle) if subtitle else None, border_style=style)
        )

    def banner(self, settings: Settings, run_id: str, trace_path: Path | None, roles: tuple[str, ...] = ()) -> None:
        if not self.chatty:
            return
        if settings.demo:
            scenario = f" (scenario: {settings.demo_scenario})" if settings.demo_scenario else ""
            self.panel(
                "Scripted demo model, not a real LLM. Its replies are canned so the run can be watched "
                f"offline{scenario}. Set OPENAI_API_KEY or OPENAI_BASE_URL to use a real model.",
                "offline demo",
                "red",
            )
        if settings.replay:
            self.panel(
                f"Replayed replies, not a live model: every reply comes from the recorded run {settings.replay}, "
                "and a request that differs from the recording stops the run.",
                "replay",
                "red",
            )
        models = ", ".join(f"{r}={settings.model_for(r)}" for r in roles or ROLES)
        self.line(f"run {run_id} · {settings.server()} · {models}", "dim")
        if trace_path:
            self.line(f"trace: {trace_path}", "dim")

    @contextmanager
    def thinking(self, role: str, model: str) -> Iterator[None]:
        """A spinner while a call runs, only on a real terminal."""
        if self.chatty and self.console.is_terminal and role not in self.streaming:
            from rich.text import Text

            with self.console.status(Text(f"{role} is thinking ({model})…")):
                yield
        else:
            yield

    def prompt(self, role: str, messages: list[dict[str, Any]], max_tokens: int) -> None:
        if self.mode == "verbose":
            body = "".join(_describe_message(m) for m in messages)
            self.panel(body, f"prompt → {role} (max_tokens {max_tokens})", "dim")

    def step(self, title: str, body: str, reply: Reply | None, style: str = "white") -> None:
        """One panel per agent step: what it produced and what that cost."""
        if not self.chatty:
            return
        subtitle = None
        if reply is not None:
            tokens = f"{'~' if reply.estimated else ''}{reply.tokens} tokens"
            subtitle = (
                f"{reply.model} · {tokens} ({reply.prompt_tokens} in / {reply.completion_tokens} out)"
                f" · {format_cost(reply.cost_usd)} · {reply.seconds:.1f}s"
            )
            if reply.finish_reason == "length":
                subtitle += " · cut off at max_tokens"
        self.panel(body, title, style, subtitle)

    def stream(self, role: str, text: str, done: bool = False) -> None:
        """A reply as it is written, piece by piece. Written as plain bytes, never as markup,
        and without control characters, so a model cannot restyle or clear the terminal."""
        if not self.chatty:
            return
        if role not in self._streaming_now:
            self._streaming_now.add(role)
            self.line(f"{role} is writing…", "dim")
        if text:
            self.console.file.write(_CONTROL.sub("", text))
            self.console.file.flush()
        if done:
            self.console.file.write("\n")
            self._streaming_now.discard(role)

    def raw_reply(self, role: str, text: str) -> None:
        """In --verbose, a reply exactly as the model wrote it, before any parsing."""
        if self.mode == "verbose":
            self.panel(text, f"raw reply ← {role}", "dim")

    def note(self, text: str) -> None:
        """Details for --verbose: retries, clamps, fallbacks."""
        if self.mode == "verbose":
            self.line(f"· {text}", "dim")

    def warn(self, text: str) -> None:
        if self.chatty:
            self.line(f"warning: {text}", "yellow")

    def error(self, text: str) -> None:
        """The one line a user sees for a mistake or a server fault."""
        from rich.text import Text

        self.errors.print(Text(f"error: {text}", style="bold red"), soft_wrap=True)  # one line, unwrapped

    def spending(self, ledger: Ledger, label: str = "role") -> None:
        if not self.chatty:
            return
        self.console.print(spending_table(ledger, label))
        if ledger.estimated:
            self.line("~ estimated: the server sent no usage for some calls", "dim")

    def summary(self, state: SharedState, ledger: Ledger, trace_path: Path | None) -> None:
        if not self.chatty:
            return
        self.spending(ledger)
        approved = state["status"] == "approved"
        if state["result"]:
            title = "approved result" if approved else "last draft (not approved)"
            self.panel(state["result"], title, "green" if approved else "red")
        self.line(
            f"stop reason: {state['stop_reason']} ({state['stop_detail']}) · "
            f"{state['iteration']} iteration(s), {state['plan_version']} plan(s), "
            f"{ledger.total_tokens} tokens, {format_cost(ledger.cost_usd)}",
            "bold green" if approved else "bold red",
        )
        if trace_path:
            self.line(f"trace: {trace_path}", "dim")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # all but tab and newline: escapes could restyle a terminal


def _describe_message(message: dict[str, Any]) -> str:
    """One chat message as plain text, tool calls and tool results included."""
    head = f"[{message['role']}]"
    if message.get("tool_call_id"):
        head += f" (result of {message['tool_call_id']})"
    lines = [head, str(message.get("content") or "")]
    for call in message.get("tool_calls") or []:
        function = call.get("function", {})
        lines.append(f"→ calls {function.get('name')}({function.get('arguments')})")
    return "\n".join(line for line in lines if line) + "\n"


def spending_table(ledger: Ledger, label: str = "role") -> Table:
    """Calls, tokens, cost and seconds per role (or agent), with a total row."""
    from rich.table import Table

    table = Table(title=f"Spending by {label}")
    cached = ledger.cached_tokens > 0  # a column only when the server reports its prompt cache
    for column in (label, "calls", "tokens in", *(["cached in"] if cached else []), "tokens out", "cost", "seconds"):
        table.add_column(column, justify="left" if column == label else "right")
    rows: list[tuple[str, Any]] = [*ledger.roles.items(), ("total", ledger)]  # the ledger sums like a role
    for name, stats in rows:
        mark = "~" if stats.estimated and name != "total" else ""  # estimated: the server sent no usage
        table.add_row(
            name,
            str(stats.calls),
            f"{mark}{stats.prompt_tokens}",
            *([str(stats.cached_tokens)] if cached else []),
            f"{mark}{stats.completion_tokens}",
            format_cost(stats.cost_usd),
            f"{stats.seconds:.1f}",
            style="bold" if name == "total" else None,
        )
    return table


def format_cost(cost: float | None) -> str:
    """
    >>> format_cost(0.000432)
    '$0.000432'
    >>> format_cost(None)
    'cost unknown'
    """
    if cost is None:
        return "cost unknown"
    if cost == 0:
        return "$0"
    return f"${cost:.4f}" if cost >= 0.01 else f"${cost:.6f}"


class Trace:
    """One JSON object per line, per event, for reading a run afterwards.

    Events: start, call (the full request and reply, so --replay can match it),
    verdict, escalation, warning, step (each panel as drawn, for --show), human
    (--human), end. Settings never pass the API key here; in case a server's
    words carry it anyway, every line is scrubbed of the secrets named with
    ``hide()`` before it is written.
    """

    def __init__(self, path: Path | None, run_id: str):
        self.path = path
        self.run_id = run_id
        self._file: Any = None
        self._secrets: list[str] = []
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # backslashreplace: a reply may carry a lone surrogate ("\\ud83d"), which UTF-8 cannot hold
                self._file = path.open("a", encoding="utf-8", errors="backslashreplace")
            except OSError as err:
                raise UsageError(f"cannot write the trace to {path}: {err.strerror}") from err

    @classmethod
    def in_dir(cls, log_dir: Path, run_id: str) -> Trace:
        return cls(log_dir / f"{run_id}.jsonl", run_id)

    def hide(self, secret: str | None) -> None:
        if secret and len(secret) >= SECRET_MIN_CHARS:
            self._secrets.append(secret)

    def event(self, kind: str, **fields: Any) -> None:
        if self._file is None:
            return
        record = {"ts": datetime.now(UTC).isoformat(), "run_id": self.run_id, "event": kind}
        record.update(fields)
        line = json.dumps(record, ensure_ascii=False, default=str)
        for secret in self._secrets:
            line = line.replace(secret, "[redacted]")
        self._file.write(line + "\n")
        self._file.flush()  # a crash or Ctrl-C must not lose what already happened

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def new_run_id() -> str:
    return f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:12]}"  # 48 random bits: no repeats in a batch


# -- What the orchestrator records and shows, kept out of its way --------------


def sync_spending(state: SharedState, llm: LLM) -> None:
    """Copy the ledger's totals into the state, so the state alone tells the story."""
    ledger = llm.ledger
    state["total_tokens"] = TokenCount(
        prompt=ledger.prompt_tokens, completion=ledger.completion_tokens, total=ledger.total_tokens
    )
    state["cost_usd"] = ledger.cost_usd


def record_start(state: SharedState, llm: LLM) -> None:
    s = llm.settings
    llm.trace.event(
        "start",
        task=state["task"],
        demo=s.demo,
        demo_scenario=s.demo_scenario if s.demo else None,
        server=s.server(),
        models={role: s.model_for(role) for role in ROLES},
        requirements=[vars(r) for r in state["requirements"]],
        limits={
            "max_iterations": s.max_iterations,
            "max_tokens": s.max_tokens,
            "max_plans": s.max_plans,
            "max_cost": s.max_cost,
            "timeout": s.timeout,
        },
    )


def show_step(state: SharedState, llm: LLM, role: str, reply: Reply | None) -> None:
    """The panel for one agent's step; a role without a title of its own shows its reply."""
    sync_spending(state, llm)
    if role == "planner":
        title, body = f"Planner · plan v{state['plan_version']}", state["plan"] or ""
    elif role == "worker":
        title = f"Worker · plan v{state['plan_version']} · draft {state['worker_attempts']} · iteration {state['iteration']}"
        body = state["result"] or ""
    elif role == "critic":
        verdict = "APPROVED" if state["critic_approved"] else "REJECTED"
        title, body = f"Critic · {verdict} · iteration {state['iteration']}", state["critic_feedback"] or ""
        checklist = [
            f"{'✓' if c['passed'] else '✗'} {c['requirement']}: {c['measured']}"
            for c in shown_checks(state["draft_facts"])
        ]
        if checklist:
            body += "\n\nchecked by code:\n" + "\n".join(checklist)
    else:
        title, body = role.replace("_", " ").capitalize(), reply.content if reply else ""
    draw_step(llm, role, title, body, reply, ROLES[role].colour if role in ROLES else "white")


def draw_step(llm: LLM, role: str, title: str, body: str, reply: Reply | None, style: str) -> None:
    """A panel on screen, and the same panel in the trace, so --show can draw it again."""
    llm.display.step(title, body, reply, style)
    llm.trace.event("step", role=role, title=title, body=body, style=style, replied=reply is not None)


def show_verdict(llm: LLM, reply: Reply, verdict: Verdict) -> None:
    llm.display.raw_reply("critic", reply.content)
    llm.display.note(f"verdict read from {verdict.source}: {verdict.why}")


def record_verdict(state: SharedState, llm: LLM, verdict: Verdict, checks: list[dict[str, Any]]) -> None:
    llm.trace.event(
        "verdict",
        checks=checks,
        iteration=state["iteration"],
        plan_version=state["plan_version"],
        attempt=state["worker_attempts"],
        approved=verdict.approved,
        source=verdict.source,
        why=verdict.why,
        feedback=state["critic_feedback"],
    )


def record_escalation(state: SharedState, llm: LLM, step: str) -> None:
    """Trace, history and screen learn of each rung of the ladder the same way."""
    where = {"iteration": state["iteration"], "plan_version": state["plan_version"]}
    llm.trace.event("escalation", **where, worker_attempts=state["worker_attempts"], action=step)
    state["history"].append(HistoryItem(kind="escalation", action=step, **where))  # type: ignore[typeddict-item]
    show_escalation(llm.display, step, state["worker_attempts"], state["plan_version"])


def record_end(state: SharedState, llm: LLM) -> None:
    sync_spending(state, llm)
    if state["stop_reason"] is None:  # an unexpected exception is on its way up
        finish(state, "crashed", "an unexpected error ended the run")
    llm.trace.event(
        "end",
        stop_reason=state["stop_reason"],
        detail=state["stop_detail"],
        approved=state["critic_approved"],
        iterations=state["iteration"],
        plan_version=state["plan_version"],
        calls=llm.ledger.calls,
        total_tokens=state["total_tokens"],
        cost_usd=state["cost_usd"],
        seconds=round(llm.elapsed(), 3),
        result=state["result"],
    )


# -- A scripted stand-in for the API: offline, free, repeatable ----------------

ToolCallSpec = tuple[str, "dict[str, Any] | str"]  # (tool name, arguments; a str is sent as-is)
Responder = Callable[[dict[str, Any]], "str | list[ToolCallSpec]"]


def completion_body(
    content: str | None,
    *,
    model: str,
    usage: tuple[int, int] | None = None,
    tool_calls: list[ToolCallSpec] | None = None,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    """The JSON body a Chat Completions server sends back. ``usage`` is (prompt, completion) tokens; None
    imitates a server that sends no usage."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
            }
            for name, args in tool_calls
        ]
        finish_reason = "tool_calls"
    counts = (
        None
        if usage is None
        else dict(zip(("prompt_tokens", "completion_tokens"), usage, strict=False), total_tokens=sum(usage))
    )
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": counts,
    }


def as_attributes(value: Any) -> Any:
    """JSON as nested attribute objects, read like the SDK's: ``reply.choices[0].message.content``."""
    if isinstance(value, dict):
        return SimpleNamespace(**{key: as_attributes(item) for key, item in value.items()})
    if isinstance(value, list):
        return [as_attributes(item) for item in value]
    return value


def request_role(request: dict[str, Any]) -> str | None:
    """Which agent sent a request, from the header the gateway adds."""
    return (request.get("extra_headers") or {}).get(ROLE_HEADER)


class ScriptedClient:
    """Stands in for ``openai.OpenAI`` with canned replies: offline, free, repeatable.

    ``respond(request)`` gets the keyword arguments of ``chat.completions.create``
    and returns a reply text or a list of tool calls. Token counts use a rough
    4-bytes-per-token rule, and max_tokens is honoured, as a real server would.
    Output always says when this stands in: it is never a real model.
    """

    def __init__(self, respond: Responder):
        self._respond = respond
        self.requests: list[dict[str, Any]] = []
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, **request: Any) -> Any:
        self.requests.append(request)
        return as_attributes(self.body(request))

    def body(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply as the JSON a server would send (the tests' loopback servers send it over HTTP)."""
        out = self._respond(request)
        limit = request.get("max_tokens") or request.get("max_completion_tokens") or 10_000
        prompt_tokens = sum(math.ceil(len(str(m.get("content") or "").encode()) / 4) + 4 for m in request["messages"])
        if isinstance(out, list):
            written = min(limit, 20 * len(out))
            return completion_body(None, model=request["model"], usage=(prompt_tokens, written), tool_calls=out)
        finish = "stop"
        if len(out.encode()) > 4 * limit:  # a real server cuts the reply at max_tokens
            out, finish = out.encode()[: 4 * limit].decode(errors="ignore"), "length"
        written = min(limit, math.ceil(len(out.encode()) / 4))
        return completion_body(out, model=request["model"], usage=(prompt_tokens, written), finish_reason=finish)


# Critic verdicts, in order, per scenario; past the end, every verdict is "no".
DEMO_SCENARIOS: dict[str, list[bool]] = {
    "approve": [True],  # plan, draft, approval: 3 calls
    "revise": [False, True],  # one revision
    "escalate": [False] * REJECTIONS_BEFORE_REPLAN + [True],  # a plan rejected enough times, a new plan, approval
    "exhaust": [],  # never approves: stops with escalation_exhausted
}

# The first rejected haiku breaks the form (four lines), so code rejects it with no model call;
# the second keeps the form but drifts off the subject, so the critic's model has to catch it.
_HAIKU_REJECTED = [
    "Three small minds confer\nOne plans, one writes, one reads it through\nThe loop turns once more\nand once more, until it rests",
    "Grey waves fold on sand\nthe gulls lift and fall again\nsalt wind fills the dunes",
]
_HAIKU_APPROVED = [
    "Planner sketches steps\nWorker shapes words to the plan\nCritic nods, well done",
    "Steps laid out in rows\none hand writes, one eye reviews\nthe draft comes back clean",
]
_HAIKU_FEEDBACK = [
    "Three lines, as code measured, but the poem is about the sea, not about agents. Keep the form and make "
    "the images about agents working together.",
    "Still off the subject. The plan never says the haiku must be about agents, so the drafts drift: the plan "
    "itself needs to change.",
]
_GENERIC_FEEDBACK = [
    "Too general: the draft restates the task instead of doing it. Add one concrete example and cut the filler.",
    "Still the same problem after a revision, which points at the plan: it never says what a finished "
    "answer must contain. The plan itself needs to change.",
]


def _task_in(request: dict[str, Any]) -> str:
    """The task, as the first paragraph of the first user message (any "Task:" label dropped)."""
    first = next((m["content"] for m in request["messages"] if m["role"] == "user"), "") or ""
    return re.sub(r"^\s*task\s*:\s*", "", first, flags=re.I).split("\n\n")[0].strip()


def demo_script(scenario: str) -> Responder:
    """Replies for planner, worker and critic, told apart by the role header, not by prompt wording.

    A role the script does not know (one a student added) gets a labelled generic reply.
    """
    verdicts = DEMO_SCENARIOS[scenario]
    counts: dict[str, int] = {}

    def respond(request: dict[str, Any]) -> str:
        role = request_role(request) or "unknown role"
        n = counts[role] = counts.get(role, 0) + 1
        task = _task_in(request)
        haiku = "haiku" in task.lower()
        if role == "planner":
            first = "List what the task asks for."
            if n > 1:
                first = (
                    "Fix the form first: three lines of 5, 7 and 5 syllables, about agents."
                    if haiku
                    else "Say what a finished answer must contain."
                )
            steps = [first, f"Write it in one pass: {clip(task, 80)}", "Read it back and tighten every line."]
            if "response_format" in request:
                return json.dumps({"steps": steps, "checks": []})
            return "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))
        if role == "worker":
            will_pass = n - 1 < len(verdicts) and verdicts[n - 1]
            if haiku:
                drafts = _HAIKU_APPROVED if will_pass else _HAIKU_REJECTED
                return drafts[(n - 1) % len(drafts)]
            return f"(scripted draft {n}) A short answer to: {task}\n\nIt covers the task in a few plain sentences."
        if role == "critic":  # it judges the newest draft, so it follows the worker's count
            draft = counts.get("worker", 1)
            approved = verdicts[draft - 1] if draft - 1 < len(verdicts) else False
            lines = _HAIKU_FEEDBACK if haiku else _GENERIC_FEEDBACK
            feedback = "Meets the task." if approved else lines[(n - 1) % len(lines)]
            if "response_format" in request:
                return json.dumps({"approved": approved, "feedback": feedback})
            return f"APPROVED: {'YES' if approved else 'NO'}\nFEEDBACK: {feedback}"
        return (
            f"(scripted {role}, reply {n}) The demo model has no script for this role; a real model would answer here."
        )

    return respond


# -- Streaming: the worker's reply on screen as it is written ------------------

STREAMED_ROLES = ("worker",)  # drafts are long enough to be worth watching; verdicts and plans are parsed whole


class StreamingClient:
    """Wraps a client so that some roles' replies stream to the display as they arrive.

    The gateway still gets one whole completion back, so budgets, accounting and
    the trace work as for any call: max_tokens is passed on unchanged. Usage
    comes from the stream's last chunk (``stream_options.include_usage``); a
    server that refuses that option is asked without it, and a stream that ends
    without usage leaves the gateway to estimate it, marked as an estimate.
    """

    def __init__(self, inner: Any, display: Display, roles: Sequence[str] = STREAMED_ROLES):
        self._inner = inner
        self._display = display
        self._roles = set(roles)
        self._usage_option = True  # dropped for the rest of the run when a server refuses it
        display.streaming.update(self._roles)
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, **request: Any) -> Any:
        role = request_role(request)
        if role not in self._roles:
            return self._inner.chat.completions.create(**request)
        while True:
            extra: dict[str, Any] = {"stream": True}
            if self._usage_option:
                extra["stream_options"] = {"include_usage": True}
            try:
                answer = self._inner.chat.completions.create(**request, **extra)
                break
            except Exception as err:  # the SDK's error classes are looked up only once one is raised
                if not (self._usage_option and "stream_options" in str(err) and _is_bad_request(err)):
                    raise
                self._usage_option = False
                self._display.note("the server refused stream_options: usage of streamed replies is estimated")
        if getattr(answer, "choices", None) is not None:  # a client that cannot stream sent it whole
            self._display.stream(role or "?", answer.choices[0].message.content or "", done=True)
            return answer
        return self._collect(answer, role or "?", request["model"])

    def _collect(self, chunks: Any, role: str, model: str) -> Any:
        """One completion, assembled from the stream's chunks while they are shown."""
        text: list[str] = []
        finish, usage = None, None
        calls: dict[int, dict[str, Any]] = {}  # tool calls arrive in pieces, by index
        for chunk in chunks:
            usage = getattr(chunk, "usage", None) or usage
            for choice in chunk.choices or []:
                delta = choice.delta
                if delta.content:
                    text.append(delta.content)
                    self._display.stream(role, delta.content)
                for call in getattr(delta, "tool_calls", None) or []:
                    slot = calls.setdefault(call.index, {"id": call.id, "name": "", "arguments": ""})
                    slot["id"] = call.id or slot["id"]
                    if call.function is not None:
                        slot["name"] += call.function.name or ""
                        slot["arguments"] += call.function.arguments or ""
                finish = choice.finish_reason or finish
        self._display.stream(role, "", done=True)
        counts = None if usage is None else (usage.prompt_tokens or 0, usage.completion_tokens or 0)
        body = completion_body("".join(text), model=model, usage=counts, finish_reason=finish or "stop")
        if calls:
            body["choices"][0]["message"]["tool_calls"] = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for _, c in sorted(calls.items())
            ]
        if counts is not None and cached_prompt_tokens(usage):
            body["usage"]["prompt_tokens_details"] = {"cached_tokens": cached_prompt_tokens(usage)}
        return as_attributes(body)


def _is_bad_request(err: Exception) -> bool:
    openai = _openai()
    return isinstance(err, (openai.BadRequestError, openai.UnprocessableEntityError))


# -- A cost preview: what a run can spend, before it spends anything ------------


@dataclass(frozen=True)
class Spend:
    """Calls, tokens and dollars; ``usd`` is None when a model's price is unknown."""

    calls: int
    tokens: int
    usd: float | None


def call_bounds(settings: Settings) -> dict[str, tuple[int, int]]:
    """Fewest and most calls per role. Fewest: approved on the first draft. Most: the whole ladder,
    every plan asked for twice (a reply that is no usable plan is sent back once).

    >>> call_bounds(Settings(max_iterations=10, max_plans=3))
    {'planner': (1, 6), 'worker': (1, 6), 'critic': (1, 6)}
    """
    rounds = min(settings.max_iterations, settings.max_plans * REJECTIONS_BEFORE_REPLAN)
    plans = min(settings.max_plans, math.ceil(rounds / REJECTIONS_BEFORE_REPLAN))
    return {"planner": (1, 2 * plans), "worker": (1, rounds), "critic": (1, rounds)}


def spend_preview(settings: Settings, task: str = "") -> dict[str, tuple[Spend, Spend]]:
    """(fewest, most) per role and in total, made from the limits alone: no call, no key.

    Fewest counts the first prompts of the approve path (system prompt and
    task, counted low; replies not counted): no run spends less. Most counts
    every call at the largest prompt the clipping rules allow plus the role's
    completion cap, and the total is capped by --max-tokens and --max-cost,
    which the budget gate enforces.
    """
    first_prompts = {
        "planner": [system(PLANNER_PROMPT), user(f"Task:\n{task}")],
        "worker": [system(WORKER_PROMPT), user(task)],
        "critic": [system(f"{CRITIC_PROMPT}\n{CRITIC_FORMAT}"), user(f"Task:\n{task}")],
    }
    headings = 1_000  # labels, separators and code's measured facts, generously
    largest_prompt = {  # characters, by the clipping rules of each agent's prompt
        "planner": SYSTEM_PROMPT_MAX_CHARS + len(task) + EARLIER_PLANS_SHOWN * CLIP_CHARS + headings,
        "worker": PROMPT_MAX_CHARS - TASK_MAX_CHARS + len(task),
        "critic": SYSTEM_PROMPT_MAX_CHARS + len(task) + OWN_FEEDBACK_SHOWN * CLIP_CHARS + DRAFT_MAX_CHARS + headings,
    }
    top_price = max((p.output_per_token for p in map(price_for, used_models(settings)) if p), default=0.0)
    preview: dict[str, tuple[Spend, Spend]] = {}
    for role, (fewest, most) in call_bounds(settings).items():
        price = price_for(settings.models.get(role) or settings.default_model)
        low_prompt = fewest * sum(
            math.ceil(len(m["content"].encode()) / BYTES_PER_TOKEN_MOST) for m in first_prompts[role]
        )
        retry = role_cap(role) if role == "planner" else 0  # a planner's retry re-reads its own reply
        prompt_cap = estimate_text_tokens("x" * largest_prompt[role]) + retry
        high_prompt, high_out = most * prompt_cap, most * role_cap(role)
        preview[role] = (
            Spend(fewest, low_prompt, None if price is None else low_prompt * price.input_per_token),
            Spend(
                most,
                min(high_prompt + high_out, settings.max_tokens),
                None
                if price is None
                else min(
                    high_prompt * price.input_per_token + high_out * price.output_per_token,
                    settings.max_tokens * price.output_per_token,
                ),
            ),
        )
    low = [spends[0] for spends in preview.values()]
    high = [spends[1] for spends in preview.values()]
    most_usd = _total_usd(high)
    if most_usd is not None:  # no run spends past its token budget, nor past --max-cost
        most_usd = min(most_usd, settings.max_tokens * top_price, settings.max_cost or math.inf)
    preview["total"] = (
        Spend(sum(s.calls for s in low), sum(s.tokens for s in low), _total_usd(low)),
        Spend(sum(s.calls for s in high), min(sum(s.tokens for s in high), settings.max_tokens), most_usd),
    )
    return preview


def used_models(settings: Settings) -> list[str]:
    """The models a run would use with a server (the demo's stand-in aside), for pricing it."""
    return [settings.models.get(role) or settings.default_model for role in ROLES]


def _total_usd(spends: list[Spend]) -> float | None:
    return None if any(s.usd is None for s in spends) else sum(s.usd or 0.0 for s in spends)


def preview_line(preview: dict[str, tuple[Spend, Spend]]) -> str:
    """The banner's one line: the run's fewest and most calls, tokens and dollars."""
    low, high = preview["total"]
    return (
        f"can spend: {low.calls}-{high.calls} calls, ~{low.tokens:,}-{high.tokens:,} tokens, "
        f"{format_cost(low.usd)}-{format_cost(high.usd)}"
    )


def preview_table(preview: dict[str, tuple[Spend, Spend]], settings: Settings) -> Table:
    from rich.table import Table

    table = Table(title=f"What one run can spend (--max-tokens {settings.max_tokens:,})")
    for column in ("role", "model", "calls", "tokens", "cost"):
        table.add_column(column, justify="left" if column in ("role", "model") else "right")
    for role, (low, high) in preview.items():
        model = "" if role == "total" else settings.models.get(role) or settings.default_model
        table.add_row(
            role,
            model,
            f"{low.calls}-{high.calls}",
            f"~{low.tokens:,}-{high.tokens:,}",
            f"{format_cost(low.usd)}-{format_cost(high.usd)}",
            style="bold" if role == "total" else None,
        )
    return table


# -- Many tasks at once: a batch shares one key, one budget and one rate limit --

BATCH_CONCURRENCY = 2  # default runs in flight: free tiers allow a few requests at once and a few dozen a minute
BATCH_RATE_RETRIES = 6  # 429s one call waits out, after the SDK's own retries, before the task stops
RATE_BACKOFF_S = 2.0  # first cohort-wide pause after a 429 that named no retry-after; doubles each time
RATE_WINDOW_S = 60.0  # requests and tokens "per minute" are counted over a sliding window this long


class BatchBudget:
    """The batch's token and cost ceiling, shared by every task and safe across threads.

    Before each call a task reserves its worst case (the prompt estimate plus
    its max_tokens); after it, the reservation is settled on the real usage. So
    concurrent calls can never jointly overshoot: what is reserved is never
    handed out twice. Spending is counted even with no ceiling (the progress
    display reads it).
    """

    def __init__(self, max_tokens: int | None = None, max_cost: float | None = None):
        self.max_tokens, self.max_cost = max_tokens, max_cost
        self.spent_tokens, self.spent_usd = 0, 0.0
        self.cost_known = True
        self._held_tokens, self._held_usd = 0, 0.0
        self._lock = threading.Lock()

    def reserve(self, prompt: int, completion: int, price: Price | None) -> tuple[int, int, float]:
        """(completion allowed, tokens held, dollars held); BudgetExhausted when not even a useful call fits."""
        with self._lock:
            if self.max_tokens is not None:
                left = self.max_tokens - self.spent_tokens - self._held_tokens - prompt
                completion = min(completion, left)
            if self.max_cost is not None and price is not None and price.output_per_token > 0:
                money = self.max_cost - self.spent_usd - self._held_usd - prompt * price.input_per_token
                completion = min(completion, math.floor(money / price.output_per_token))
            if completion < MIN_USEFUL_COMPLETION:
                raise BudgetExhausted(*self._refusal(price))
            usd = 0.0 if price is None else prompt * price.input_per_token + completion * price.output_per_token
            self._held_tokens += prompt + completion
            self._held_usd += usd
            return completion, prompt + completion, usd

    def _refusal(self, price: Price | None) -> tuple[str, str]:
        tokens_short = self.max_tokens is not None and (
            self.max_cost is None or price is None or self.spent_tokens + self._held_tokens >= self.max_tokens * 0.5
        )
        if tokens_short:
            return "token_budget", f"the batch's token ceiling is reached ({self.spent_tokens} of {self.max_tokens})"
        return (
            "cost_budget",
            f"the batch's cost ceiling is reached ({format_cost(self.spent_usd)} of ${self.max_cost:g})",
        )

    def settle(self, held: tuple[int, float], tokens: int, usd: float | None) -> None:
        with self._lock:
            self._held_tokens -= held[0]
            self._held_usd -= held[1]
            self.spent_tokens += tokens
            if usd is None:
                self.cost_known = False
            else:
                self.spent_usd += usd


class RateLimit:
    """Requests and tokens per minute for the whole batch; a 429 pauses every task, not just one."""

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
    ):
        self.rpm, self.tpm = rpm, tpm
        self._clock = clock
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait  # returns True when the batch is stopping
        self._sent: list[list[Any]] = []  # [when, tokens] of calls inside the window
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def acquire(self, tokens: int) -> list[Any]:
        """Wait until one more call of ``tokens`` fits the limits; StopRun("interrupted") if the batch stops.

        Returns the call's entry in the window, for ``settle`` to correct once the real count is known.
        """
        while True:
            with self._lock:
                delay = self._delay(tokens)
                if delay <= 0:
                    entry = [self._clock(), tokens]
                    self._sent.append(entry)
                    return entry
            if self._wait(min(delay, 1.0)) or self.stopping:
                raise StopRun("interrupted", "the batch was stopped with Ctrl-C")

    def _delay(self, tokens: int) -> float:
        now = self._clock()
        self._sent = [entry for entry in self._sent if entry[0] + RATE_WINDOW_S > now]  # the waits' own arithmetic
        waits = [self._paused_until - now]
        if self.rpm is not None and len(self._sent) >= self.rpm:
            waits.append(self._sent[len(self._sent) - self.rpm][0] + RATE_WINDOW_S - now)
        if self.tpm is not None and self._sent:
            used, need = sum(n for _, n in self._sent), min(tokens, self.tpm)  # one huge call still runs, alone
            for t, n in self._sent:  # the oldest calls leave the window first
                if used + need <= self.tpm:
                    break
                waits.append(t + RATE_WINDOW_S - now)
                used -= n
        return max(waits)

    def settle(self, entry: list[Any], tokens: int) -> None:
        """A call's tokens as the server counted them, in place of the worst case it was admitted with."""
        with self._lock:
            entry[1] = tokens

    def back_off(self, seconds: float) -> None:
        """Pause every task: the server said 429."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


class GatedClient:
    """One task's door to the batch's shared client: every call waits for the rate limit,
    reserves from the batch budget first and settles on what the server counted."""

    def __init__(self, inner: Any, budget: BatchBudget, limit: RateLimit):
        self._inner, self._budget, self._limit = inner, budget, limit
        self._scale = 1.0  # as in LLM: raised when the server counts more prompt tokens than estimated
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, **request: Any) -> Any:
        if self._limit.stopping:
            raise StopRun("interrupted", "the batch was stopped with Ctrl-C")
        key = "max_completion_tokens" if "max_completion_tokens" in request else "max_tokens"
        extras = [request[k] for k in ("tools", "response_format") if k in request]
        guess, price = estimate_tokens(request["messages"], extras), price_for(request["model"])
        prompt = math.ceil(guess * self._scale)
        allowed, tokens, usd = self._budget.reserve(prompt, request.get(key) or MIN_USEFUL_COMPLETION, price)
        request[key] = allowed
        spent: tuple[int, float | None] = (0, 0.0)
        try:
            for attempt in range(BATCH_RATE_RETRIES + 1):
                entry = self._limit.acquire(prompt + allowed)
                try:
                    answer = self._inner.chat.completions.create(**request)
                except Exception as err:  # the SDK's error classes are looked up only once one is raised
                    pause = _rate_limited(err)
                    if pause is None or attempt == BATCH_RATE_RETRIES:
                        raise
                    self._limit.back_off(pause or RATE_BACKOFF_S * 2**attempt)
                    continue
                spent = _usage_spent(answer, prompt, price)
                self._limit.settle(entry, spent[0])
                counted = getattr(getattr(answer, "usage", None), "prompt_tokens", None) or 0
                self._scale = max(
                    self._scale, 1.1 * counted / guess
                )  # the server counts more: guess higher from now on
                return answer
            raise AssertionError("unreachable: the last attempt returns or raises")
        finally:
            self._budget.settle((tokens, usd), spent[0], spent[1])


def _rate_limited(err: Exception) -> float | None:
    """Seconds to pause for a 429 that is worth waiting out (0: no hint); None for any other error."""
    openai = _openai()
    if not isinstance(err, openai.RateLimitError) or "quota" in str(err).lower():
        return None  # an exhausted quota does not come back by waiting
    headers = getattr(getattr(err, "response", None), "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):  # OpenAI's own, finer hint
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        return max(0.0, float(headers.get("retry-after") or 0))
    except ValueError:  # an HTTP date, or junk: back off by the rule instead
        return 0.0


def _usage_spent(answer: Any, prompt: int, price: Price | None) -> tuple[int, float | None]:
    """What a reply cost, as the server counted it; the estimates when it sent no usage."""
    usage = getattr(answer, "usage", None)
    if usage is not None and usage.prompt_tokens:
        prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens or 0
    else:
        choices = getattr(answer, "choices", None) or []
        content = (choices[0].message.content or "") if choices else ""
        prompt_tokens, completion_tokens = prompt, estimate_text_tokens(content)
    if price is None:
        return prompt_tokens + completion_tokens, None
    return (
        prompt_tokens + completion_tokens,
        prompt_tokens * price.input_per_token + completion_tokens * price.output_per_token,
    )


@dataclass
class BatchOutcome:
    """One task of a batch: its summary (``run_summary`` plus index and task), or why it never ran."""

    index: int
    task: str
    summary: dict[str, Any]
    started: bool = True  # False for a task Ctrl-C kept from starting


def read_batch(path: Path) -> list[str]:
    """Tasks from a file: one per line, or JSONL with {"task": ...}; blank lines and # comments are skipped.

    Every line is checked before anything runs: a mistake on line 30 should not
    cost the 29 runs before it.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise UsageError(f"cannot read the batch file {path}: {err.strerror}") from err
    except UnicodeDecodeError:
        raise UsageError(f"the batch file {path} is not UTF-8 text") from None
    tasks = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text == "-":
            raise UsageError(f"{path}:{number}: a batch task cannot be read from standard input")
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise UsageError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(data.get("task"), str):
                raise UsageError(f'{path}:{number}: a JSON line needs a "task" string')
            text = data["task"]
        try:
            tasks.append(read_task(text, None))
        except UsageError as err:
            raise UsageError(f"{path}:{number}: {err}") from None
    if not tasks:
        raise UsageError(f"the batch file {path} has no tasks")
    return tasks


def run_batch(
    tasks: Sequence[str],
    settings: Settings,
    make_client: Callable[[], Any],
    *,
    concurrency: int = BATCH_CONCURRENCY,
    budget: BatchBudget | None = None,
    limit: RateLimit | None = None,
    on_done: Callable[[BatchOutcome], None] = lambda outcome: None,
) -> list[BatchOutcome]:
    """Run every task through ``orchestrate``, ``concurrency`` at a time, each with its own
    settings, gateway, ledger, trace and run id; they share only the budget and the rate limit.

    Threads are enough: the runs wait on the network, and the SDK client is
    thread-safe. A task that fails, even with a bug, is recorded and the
    others go on. Ctrl-C stops the batch: no new task starts, running tasks
    stop before their next call, and every finished result and trace is kept.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    budget, limit = budget or BatchBudget(), limit or RateLimit()
    outcomes: list[BatchOutcome] = []

    def run_one(index: int, task: str) -> BatchOutcome:
        run_id = new_run_id()
        trace = Trace.in_dir(settings.log_dir, run_id)
        quiet = _silent_console()
        gate = GatedClient(make_client(), budget, limit)
        llm = LLM(replace(settings), Display(quiet, "quiet", errors=quiet), trace, client=gate)
        try:
            state = orchestrate(task, llm)
            summary = run_summary(state, llm)
        except Exception as err:  # a bug in one run must not end the others: record it, go on
            summary = {
                "approved": False,
                "stop_reason": "crashed",
                "stop_detail": first_line(f"{type(err).__name__}: {err}"),
            }
            summary.update(
                run_id=run_id, trace=str(trace.path), calls=llm.ledger.calls, total_tokens=llm.ledger.total_tokens
            )
            summary.update(cost_usd=llm.ledger.cost_usd, result=None)
        finally:
            trace.close()
        summary["seconds"] = round(llm.elapsed(), 3)
        return BatchOutcome(index, task, {"index": index, "task": task, **summary})

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="task")
    pending = {pool.submit(run_one, i, task) for i, task in enumerate(tasks, 1)}
    try:
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                outcomes.append(future.result())
                on_done(outcomes[-1])
    except KeyboardInterrupt:
        limit.stop()  # running tasks stop before their next call, with stop reason "interrupted"
        for future in pending:
            future.cancel()
        for future in pending:
            if not future.cancelled():
                outcomes.append(future.result())
                on_done(outcomes[-1])
        for index, task in enumerate(tasks, 1):
            if index not in {o.index for o in outcomes}:
                summary = {"index": index, "task": task, "approved": False, "stop_reason": "interrupted"}
                summary.update(stop_detail="not started: the batch was stopped with Ctrl-C", calls=0, total_tokens=0)
                outcomes.append(BatchOutcome(index, task, summary, started=False))
    finally:  # every finished task is already collected; a second Ctrl-C must not wait on calls in flight
        pool.shutdown(wait=False, cancel_futures=True)
    return sorted(outcomes, key=lambda o: o.index)


def _silent_console() -> Console:
    """A console that writes nowhere: a batch's runs show nothing of their own."""
    import io

    from rich.console import Console

    return Console(file=io.StringIO(), width=120)


class BatchProgress:
    """The batch's live line: tasks done, approved, tokens, cost and time so far.

    On a terminal it redraws in place (rich Live); elsewhere it prints one line per finished task.
    """

    def __init__(self, display: Display, total: int, budget: BatchBudget, clock: Callable[[], float] = time.monotonic):
        self.display, self.total, self.budget, self._clock = display, total, budget, clock
        self.done = self.approved = 0
        self._started = clock()
        self._live: Any = None

    def line(self) -> str:
        return f"{self.done}/{self.total} tasks done · {self.approved} approved · {self.spending()}"

    def spending(self) -> str:
        cost = format_cost(self.budget.spent_usd if self.budget.cost_known else None)
        return f"{self.budget.spent_tokens:,} tokens · {cost} · {self._clock() - self._started:.1f}s"

    def __enter__(self) -> BatchProgress:
        if self.display.chatty and self.display.console.is_terminal:
            from rich.live import Live
            from rich.text import Text

            self._live = Live(console=self.display.console, get_renderable=lambda: Text(self.line()))
            self._live.start()
        return self

    def finished(self, outcome: BatchOutcome) -> None:
        self.done += 1
        self.approved += bool(outcome.summary.get("approved"))
        if self.display.chatty and self._live is None:
            s = outcome.summary
            self.display.line(f"task {outcome.index}: {s.get('stop_reason')} · {self.line()}", "dim", soft_wrap=True)

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()


def batch_table(outcomes: Sequence[BatchOutcome]) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(title="Batch results", box=box.SIMPLE_HEAD)
    for column in ("#", "task", "stop reason", "calls", "tokens", "cost", "seconds"):
        table.add_column(
            column,
            justify="left" if column in ("task", "stop reason") else "right",
            no_wrap=column != "task",  # the task wraps; numbers never do
            min_width=14 if column == "task" else None,
        )
    for o in outcomes:
        s = o.summary
        table.add_row(
            str(o.index),
            clip(" ".join(o.task.split()), 60),  # the full task is in --json and the trace
            str(s.get("stop_reason")),
            str(s.get("calls", 0)),
            f"{'~' if s.get('usage_estimated') else ''}{s.get('total_tokens', 0):,}",
            format_cost(s.get("cost_usd")),
            f"{s.get('seconds', 0.0):.1f}",
            style="green" if s.get("approved") else None,
        )
    return table


def batch_exit_code(outcomes: Sequence[BatchOutcome]) -> int:
    """130 if the batch was stopped with Ctrl-C, 2 if a task met a configuration error,
    1 if any task stopped without approval, 0 when every task was approved."""
    reasons = {o.summary.get("stop_reason") for o in outcomes}
    if "interrupted" in reasons:
        return EXIT_INTERRUPTED
    if "config_error" in reasons:
        return EXIT_USAGE
    return EXIT_APPROVED if reasons == {"approved"} else EXIT_NOT_APPROVED


def openai_client(settings: Settings) -> Any:
    """The real SDK client for these settings; thread-safe, so a batch shares one."""
    return _openai().OpenAI(
        api_key=settings.api_key or "not-needed",  # local servers ignore the key
        base_url=settings.base_url,
        max_retries=SDK_MAX_RETRIES,
        timeout=REQUEST_TIMEOUT_S,
    )


def batch_clients(settings: Settings, client: Any = None) -> Callable[[], Any]:
    """What each task of a batch talks to: a fresh demo script each (the script counts its calls),
    or one real client shared by all (the SDK's client is thread-safe). ``client`` is a test's."""
    if client is None and not settings.demo:
        client = openai_client(settings)

    def make() -> Any:
        return client if client is not None else ScriptedClient(demo_script(settings.demo_scenario or "revise"))

    return make


def main_batch(args: argparse.Namespace, display: Display, client: Any = None) -> int:
    """``--batch FILE``: every task of the file, ``--concurrency`` at a time, with a progress line and a table."""
    try:
        load_env_file(display.warn)
        tasks = read_batch(args.batch)
        settings = settings_from_args(args, dict(os.environ))
        unpriced = sorted({m for m in used_models(settings) if price_for(m) is None})
        if args.batch_max_cost is not None and unpriced and not settings.demo:
            raise UsageError(f"--batch-max-cost needs a price, and none is known for {', '.join(unpriced)}")
        if args.output:
            check_output_path(args.output)
    except UsageError as err:
        display.error(str(err))
        return EXIT_USAGE
    make_client = batch_clients(settings, client)
    if args.stream:
        display.warn("--stream shows one run's worker; a batch shows its progress line instead")
    budget = BatchBudget(args.batch_max_tokens, args.batch_max_cost)
    limit = RateLimit(args.rpm, args.tpm)
    if display.chatty:
        where = "scripted demo model (offline), not a real LLM" if settings.demo else settings.server()
        display.line(f"batch of {len(tasks)} tasks · {args.concurrency} at a time · {where}", "dim")
        display.line(f"per task, {preview_line(spend_preview(settings))}", "dim")
    results = args.output.open("a", encoding="utf-8") if args.output else None

    def finished(outcome: BatchOutcome) -> None:
        progress.finished(outcome)
        finished_late(outcome)

    def finished_late(outcome: BatchOutcome) -> None:
        if results is not None:  # written as each task ends, so Ctrl-C loses nothing finished
            results.write(json.dumps(outcome.summary, ensure_ascii=False, default=str) + "\n")
            results.flush()
        if display.mode == "json":  # JSON Lines: one object per task, as each ends
            display.line(json.dumps(outcome.summary, ensure_ascii=False, default=str), soft_wrap=True)

    try:
        with BatchProgress(display, len(tasks), budget) as progress:
            outcomes = run_batch(
                tasks, settings, make_client, concurrency=args.concurrency, budget=budget, limit=limit, on_done=finished
            )
        for o in outcomes:  # tasks Ctrl-C kept from starting are results too
            if not o.started:
                finished_late(o)
    except KeyboardInterrupt:  # a second Ctrl-C while running tasks finish their calls
        display.error(
            "batch abandoned: finished results are in the traces" + (f" and {args.output}" if args.output else "")
        )
        return EXIT_INTERRUPTED
    finally:
        if results is not None:
            results.close()
    if display.chatty:
        display.console.print(batch_table(outcomes))
        approved = sum(bool(o.summary.get("approved")) for o in outcomes)
        display.line(f"{approved} of {len(outcomes)} approved · {progress.spending()}", "bold")
        display.line(f"traces: {settings.log_dir}/<run id>.jsonl (run ids in --json)", "dim")
    elif display.mode == "quiet":
        for o in outcomes:
            if o.summary.get("approved"):
                display.line(o.summary.get("result") or "", soft_wrap=True)
    return batch_exit_code(outcomes)


def main_estimate(args: argparse.Namespace, display: Display) -> int:
    """``--estimate``: what the run (or each task of a batch) can spend under the current limits. No call, no key."""
    try:
        load_env_file(display.warn)
        settings = settings_from_args(args, dict(os.environ))
        tasks = read_batch(args.batch) if args.batch else [args.task or ""]
    except UsageError as err:
        display.error(str(err))
        return EXIT_USAGE
    preview = spend_preview(settings, max(tasks, key=len) if args.batch else tasks[0])
    if display.mode == "json":
        data = {role: {"fewest": vars(low), "most": vars(high)} for role, (low, high) in preview.items()}
        display.line(json.dumps({"tasks": len(tasks), "per_task": data}), soft_wrap=True)
        return EXIT_APPROVED
    display.console.print(preview_table(preview, settings))
    if args.batch:
        high = preview["total"][1]
        tokens = (
            len(tasks) * high.tokens
            if args.batch_max_tokens is None
            else min(args.batch_max_tokens, len(tasks) * high.tokens)
        )
        display.line(f"{len(tasks)} tasks: at most {len(tasks) * high.calls:,} calls and {tokens:,} tokens in all")
    display.line(
        "fewest: approved at the first draft (prompts as estimated, replies not counted); "
        "most: every rung of the ladder at the largest prompts, capped by the budgets",
        "dim",
    )
    return EXIT_APPROVED


# -- The classroom: step through, show, replay and draw a run; the human rung --
#
# What an instructor needs in front of a class, kept out of the loop's way: each
# mode is a hook the loop already has (LLM.before_call, LLM.human, the client) or
# a reader of the trace a run leaves behind.

STEP_SUMMARY_CHARS = 160  # how much of a prompt --step shows: enough to say what is asked, not the whole prompt
HUMAN_ASKS = 3  # unreadable answers at the human rung before the ladder's own step is kept


class Answers:
    """Lines typed by the person at the front of the class, or piped in by a script.

    ``ask`` returns the line without its newline, or None once input has ended:
    then --step stops pausing and the run carries on by itself.
    """

    def __init__(self, stream: Any, display: Display):
        self.stream, self.display = stream, display
        self.ended = False
        self.is_terminal = bool(getattr(stream, "isatty", lambda: False)())

    def ask(self, question: str) -> str | None:
        if self.ended:
            return None
        out = self.display.console if self.display.chatty else self.display.errors
        from rich.text import Text

        out.print(Text(question, style="bold"), end="")
        line = self.stream.readline()
        if not line:  # end of input
            self.ended = True
            out.print(Text("(end of input: the run goes on without pausing)", style="dim"))
            return None
        if not self.is_terminal:  # echo a scripted answer, so the transcript reads like a session
            out.print(Text(line.rstrip("\n")))
        return line.strip()


def prompt_summary(messages: list[dict[str, Any]]) -> str:
    """What a request asks, in a line: its last message's opening words and the size of it all.

    >>> prompt_summary([system("You are..."), user("Task:\\nWrite a haiku about agents")])
    '2 messages, ~29 tokens · last (user): Task: Write a haiku about agents'
    """
    last = messages[-1] if messages else {"role": "?", "content": ""}
    said = first_line(str(last.get("content") or ""), STEP_SUMMARY_CHARS)
    return f"{len(messages)} messages, ~{estimate_tokens(messages)} tokens · last ({last['role']}): {said}"


class Stepper:
    """--step: a pause before every model call, showing what is about to be sent."""

    def __init__(self, answers: Answers, display: Display):
        self.answers, self.display = answers, display

    def pause(self, role: str, messages: list[dict[str, Any]], max_tokens: int, spent: int, budget: int) -> None:
        if self.answers.ended:
            return
        body = f"{prompt_summary(messages)}\nmax_tokens {max_tokens} · {spent} tokens so far · {budget - spent} of {budget} left"
        if self.display.chatty:
            self.display.panel(body, f"next call: {role}", "blue")
        answer = self.answers.ask("Enter sends it, q then Enter stops the run: ")
        if answer is not None and answer.lower() in ("q", "quit", "stop"):
            raise StopRun("stopped_by_user", f"stopped at the pause before the {role}'s call")


def attach_stepper(llm: LLM, answers: Answers) -> None:
    stepper = Stepper(answers, llm.display)
    llm.before_call = lambda role, messages, limit: stepper.pause(
        role, messages, limit, llm.ledger.total_tokens, llm.settings.max_tokens
    )


# The human rung: what a person may answer when the ladder would re-plan or give up.
HUMAN_CHOICES: dict[str, tuple[NextStep, str]] = {
    "a": ("accept", "approve the last draft"),
    "f": ("revise", "give the worker feedback, and it revises"),
    "p": ("replan", "ask the planner for a new plan"),
    "s": ("give_up", "stop the run"),
}


class HumanRung:
    """--human: the top of the escalation ladder is a person at the terminal.

    The person's choice is recorded in history and trace like a verdict. The
    loop's gates still hold: a revision or a new plan is one more round, and
    the iteration, token, cost and time limits refuse it as they refuse any.
    A person may allow a plan past --max-plans: that limit exists to ask them.
    """

    def __init__(self, answers: Answers):
        self.answers = answers

    def decide(self, state: SharedState, llm: LLM, step: NextStep) -> NextStep:
        would = "re-plan" if step == "replan" else "give up"
        menu = "\n".join(f"  {key}  {what}" for key, (_, what) in HUMAN_CHOICES.items())
        question = (
            f"The critic rejected draft {state['worker_attempts']} of plan v{state['plan_version']}, and the ladder "
            f"would {would}. The last draft and its feedback are above.\n{menu}"
        )
        draw_step(llm, "human", f"Your call · iteration {state['iteration']}", question, None, "bright_blue")
        if not llm.display.chatty:  # --quiet or --json: the panel is not drawn, and the person still needs the menu
            from rich.text import Text

            llm.display.errors.print(Text(question))
        said: list[list[str]] = []  # [question, answer] pairs, so --show can print them again
        for _ in range(HUMAN_ASKS):
            answer = self.ask(f"{'/'.join(HUMAN_CHOICES)}: ", said)
            if answer is None:
                break
            if answer[:1].lower() in HUMAN_CHOICES:
                chosen, _ = HUMAN_CHOICES[answer[:1].lower()]
                feedback = ""
                if chosen == "revise":
                    feedback = clip(self.ask("feedback for the worker: ", said) or "", NOTES_MAX_CHARS)
                    state["notes"]["human"] = feedback  # the worker reads every note
                record_human(state, llm, chosen, feedback, said)
                failed = [c["measured"] for c in state["draft_facts"].get("checks", []) if not c["passed"]]
                if chosen == "accept" and failed:  # a person may overrule code, but not silently
                    llm.warn(f"a human approved a draft that fails a check code made: {'; '.join(failed)}")
                if chosen == "give_up":
                    raise StopRun("stopped_by_user", f"a human stopped the run at iteration {state['iteration']}")
                return chosen
        record_human(state, llm, "none", "", said)
        llm.warn(f"no answer from the human: the ladder's own step ({step}) is kept")
        return step

    def ask(self, question: str, said: list[list[str]]) -> str | None:
        answer = self.answers.ask(question)
        said.append([question, "" if answer is None else answer])
        return answer


def record_human(state: SharedState, llm: LLM, action: str, feedback: str, said: list[list[str]]) -> None:
    where = {"iteration": state["iteration"], "plan_version": state["plan_version"]}
    llm.trace.event("human", **where, action=action, feedback=feedback, said=said)
    state["history"].append(HistoryItem(kind="human", action=action, feedback=feedback, **where))  # type: ignore[typeddict-item]


def attach_classroom(llm: LLM, args: argparse.Namespace, stdin: Any) -> None:
    """Wire --step and --human to the person at the keyboard (or to lines piped in)."""
    answers = Answers(stdin, llm.display)
    if (args.step or args.human) and args.task == "-":
        llm.display.warn(
            "the task came from standard input, which leaves nothing to read answers from: no pauses, no questions"
        )
        answers.ended = True
    if args.step:
        attach_stepper(llm, answers)
    if args.human:
        if answers.is_terminal:
            llm.human = HumanRung(answers)
        else:
            llm.display.warn("--human needs a terminal and none is attached: the ladder decides alone")


# -- Reading a recorded run back: show it, or replay it as the model --


class ReplayMismatch(StopRun):
    """A request differs from the recorded run that is being replayed (exit 2)."""


# What --show, --replay and --diagram read from each kind of event; a trace without them cannot be drawn or replayed.
TRACE_FIELDS = {
    "call": ("role", "model", "prompt", "reply", "prompt_tokens", "completion_tokens"),
    "step": ("role", "title", "body", "style"),
    "verdict": ("approved",),
    "escalation": ("action", "iteration", "plan_version", "worker_attempts"),
    "human": ("action",),
    "end": ("stop_reason",),
}


def read_trace(path: Path) -> list[dict[str, Any]]:
    """A trace's events, or UsageError with one clear line: missing, not a trace, or cut short."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read the trace {path}: {getattr(err, 'strerror', None) or err}") from err
    lines, events = text.splitlines(), list[dict[str, Any]]()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            if number == len(lines) and not text.endswith("\n"):  # the writer stopped mid-line
                raise UsageError(f"{path} is cut short: its last line is half written") from None
            raise UsageError(f"{path} is not a trace: line {number} is not JSON") from None
        if not isinstance(event, dict) or "event" not in event:
            raise UsageError(f"{path} is not a trace: line {number} is not a trace event")
        missing = [key for key in TRACE_FIELDS.get(event["event"], ()) if key not in event]
        if missing or not all(isinstance(event.get(k, 0), int) for k in ("prompt_tokens", "completion_tokens")):
            raise UsageError(
                f"{path} is not a trace of this program: its {event['event']} event on line {number} "
                f"lacks {', '.join(missing) or 'token counts'}"
            )
        events.append(event)
    if not events or events[0]["event"] != "start":
        raise UsageError(f"{path} is not a trace: it does not begin with a start event")
    if events[-1]["event"] != "end":
        raise UsageError(f"{path} is cut short: it has no end event (the run was killed before it finished)")
    return events


def reply_from(event: dict[str, Any]) -> Reply:
    """A recorded call, as the Reply the gateway made of it live."""
    content = event.get("reply") or ""
    return Reply(
        event["role"],
        event["model"],
        content,
        {"role": "assistant", "content": content},
        event.get("tool_calls") or [],
        event["prompt_tokens"],
        event["completion_tokens"],
        bool(event.get("usage_estimated")),
        event.get("cost_usd"),
        event.get("latency_s") or 0.0,
        event.get("finish_reason"),
        event.get("max_tokens") or 0,
    )


def show_escalation(display: Display, step: str, attempts: int, plan_version: int) -> None:
    if step == "revise":
        display.note(f"rejected {times(attempts)} on this plan: the worker revises")
    elif step == "replan":
        display.warn(f"plan v{plan_version} was rejected {times(attempts)}: escalating to the planner")


def show_recorded(path: Path, display: Display, stepper: Stepper | None = None) -> int:
    """--show: draw a recorded run again from its trace, as it looked live. No model, no key."""
    events = read_trace(path)
    start = events[0]
    if display.chatty:
        display.panel(f"A recorded run, drawn from {path}: no model is called.", "recorded run", "blue")
        if start.get("demo"):
            display.panel("It was played by the scripted demo model, not a real LLM.", "offline demo", "red")
        models = ", ".join(f"{role}={model}" for role, model in start.get("models", {}).items())
        display.line(f"run {start.get('run_id')} · {start.get('server')} · {models}", "dim")
    ledger, last = Ledger(), dict[str, Reply]()
    for event in events:
        kind = event["event"]
        if kind == "call":
            if stepper is not None:
                budget = start.get("limits", {}).get("max_tokens") or MAX_TOTAL_TOKENS
                stepper.pause(
                    event["role"], event.get("prompt") or [], event.get("max_tokens") or 0, ledger.total_tokens, budget
                )
            display.prompt(event["role"], event.get("prompt") or [], event.get("max_tokens") or 0)  # --verbose
            reply = last[event["role"]] = reply_from(event)
            if reply.role == "critic":
                display.raw_reply("critic", reply.content)  # --verbose, as show_verdict() does live
            ledger.add(
                reply.role, reply.prompt_tokens, reply.completion_tokens, reply.cost_usd, reply.seconds, reply.estimated
            )
        elif kind == "step":
            display.step(
                event["title"], event["body"], last.get(event["role"]) if event.get("replied") else None, event["style"]
            )
        elif kind == "warning":
            display.warn(event["message"])
        elif kind == "verdict" and event.get("source") != "code":
            display.note(f"verdict read from {event.get('source')}: {event.get('why')}")
        elif kind == "human" and display.chatty:
            for question, answer in event.get("said") or []:
                display.line(f"{question}{answer}", "bold")
        elif kind == "escalation":
            show_escalation(display, event["action"], event["worker_attempts"], event["plan_version"])
    end = events[-1]
    state = new_state(start.get("task") or "")
    state["result"], state["stop_reason"], state["stop_detail"] = (
        end.get("result"),
        end["stop_reason"],
        end.get("detail"),
    )
    state["status"] = "approved" if end["stop_reason"] == "approved" else "stopped"
    state["iteration"], state["plan_version"] = end.get("iterations") or 0, end.get("plan_version") or 0
    display.summary(state, ledger, path)
    return EXIT_APPROVED


def first_difference(recorded: list[dict[str, Any]], sent: list[dict[str, Any]]) -> str | None:
    """Where a request first differs from the recorded one, in one line; None when they match.

    >>> first_difference([user("Write a haiku")], [user("Write a poem")])
    "message 1 (user) differs at character 9: recorded 'haiku' but now 'poem'"
    """
    for i, (old, new) in enumerate(zip(recorded, sent, strict=False), 1):
        if old.get("role") != new.get("role"):
            return f"message {i} is from the {new.get('role')}, recorded from the {old.get('role')}"
        a, b = str(old.get("content") or ""), str(new.get("content") or "")
        if a != b:
            at = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            return (
                f"message {i} ({new.get('role')}) differs at character {at + 1}: "
                f"recorded {first_line(a[at : at + 40], 40)!r} but now {first_line(b[at : at + 40], 40)!r}"
            )
    if len(recorded) != len(sent):
        return f"it has {len(sent)} messages, the recording {len(recorded)}"
    return None


class ReplayClient:
    """Stands in for ``openai.OpenAI`` with a recorded run's replies: the real loop, offline.

    Requests are matched per role, in order. A request that is not the recorded
    one ends the run (ReplayMismatch, exit 2): a replay never falls through to a
    live model, so a changed prompt shows up as a failed replay.
    """

    def __init__(self, events: list[dict[str, Any]], source: Path):
        self.source = source
        self.recorded: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            if event["event"] == "call":
                self.recorded.setdefault(event["role"], []).append(event)
        self.used: dict[str, int] = {}
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, **request: Any) -> Any:
        role = request_role(request) or "unknown role"
        n = self.used[role] = self.used.get(role, 0) + 1
        queue = self.recorded.get(role, [])
        if n > len(queue):
            raise ReplayMismatch(
                "replay_mismatch", f"the {role}'s call {n} is not in {self.source} ({len(queue)} recorded)"
            )
        event = queue[n - 1]
        if problem := first_difference(event.get("prompt") or [], request["messages"]):
            raise ReplayMismatch("replay_mismatch", f"the {role}'s request {n} is not the recorded one: {problem}")
        usage = None if event.get("usage_estimated") else (event["prompt_tokens"], event["completion_tokens"])
        calls = [(c["function"]["name"], c["function"]["arguments"]) for c in event.get("tool_calls") or []]
        body = completion_body(event.get("reply"), model=request["model"], usage=usage, tool_calls=calls or None)
        body["choices"][0]["finish_reason"] = event.get("finish_reason") or "stop"
        return as_attributes(body)


LIMIT_FIELDS = ("max_iterations", "max_tokens", "max_plans", "max_cost", "timeout")  # the start event's limits


def replay_setup(path: Path, settings: Settings) -> tuple[Settings, ReplayClient]:
    """Settings and client for --replay: the recorded models (an added role's too) and limits, no server, no key.

    The recorded limits apply, whatever the flags say: the budget gate must refuse what it refused live.
    """
    events = read_trace(path)
    models = dict(events[0].get("models") or {})
    calls = [e for e in events if e["event"] == "call"]
    models.update({e["role"]: e["model"] for e in calls})
    default = calls[0]["model"] if calls else settings.default_model
    limits = {k: v for k, v in (events[0].get("limits") or {}).items() if k in LIMIT_FIELDS}
    replayed = replace(
        settings,
        demo=False,
        replay=str(path),
        api_key=None,
        base_url=None,
        models=models,
        default_model=default,
        **limits,
    )
    return replayed, ReplayClient(events, path)


# -- Drawing a recorded run, and the classroom's flags --

MERMAID_UNSAFE = re.compile(r"[;#<>{}\[\]]")  # characters that end or break a Mermaid statement
LADDER_WORDS = {  # each rung of the ladder, as a diagram note
    "revise": "revise · the worker tries again",
    "replan": "re-plan · the planner writes a new plan",
    "give_up": "give up · a human is needed",
    "accept": "accept · a human approved the draft",
}


def mermaid_text(text: str, limit: int = 60) -> str:
    return first_line(MERMAID_UNSAFE.sub(" ", str(text)), limit)


def mermaid_diagram(events: list[dict[str, Any]]) -> str:
    """A recorded run as a Mermaid sequence diagram: who called whom, the tokens, verdicts and the stop."""
    called = dict.fromkeys(e["role"] for e in events if e["event"] == "call")
    alias = {"orchestrator": "O", "human": "H"}
    for role in [*ROLES, *called]:  # one capital letter each (no Mermaid keyword is one letter); a digit on a clash
        ids = [role[:1].upper(), *(f"{role[:1].upper()}{n}" for n in range(2, 99))]
        alias.setdefault(role, next(a for a in ids if a not in alias.values()))
    shown = ["orchestrator", *ROLES, *[r for r in called if r not in ROLES]]
    if any(e["event"] == "human" for e in events):
        shown.append("human")
    lines = ["sequenceDiagram", *(f"    participant {alias[r]} as {r}" for r in shown)]
    numbers: dict[str, int] = {}
    for e in events:
        kind = e["event"]
        if kind == "call":
            who, role = alias[e["role"]], e["role"]
            n = numbers[role] = numbers.get(role, 0) + 1
            mark = "~" if e.get("usage_estimated") else ""
            cut = " · cut off" if e.get("finish_reason") == "length" else ""
            lines.append(f"    O->>{who}: {role} call {n} · {mark}{e['prompt_tokens']} tokens in")
            lines.append(f"    {who}-->>O: {mark}{e['completion_tokens']} tokens out{cut}")
        elif kind == "verdict":
            said = "APPROVED" if e["approved"] else "REJECTED"
            by, where = ("code", "O") if e.get("source") == "code" else ("the critic", alias["critic"])
            lines.append(f"    Note over {where}: {said} by {by} · {mermaid_text(e.get('feedback') or '', 50)}")
        elif kind == "escalation":
            lines.append(f"    Note over O: {LADDER_WORDS.get(e['action'], mermaid_text(e['action']))}")
        elif kind == "human":
            feedback = mermaid_text(e.get("feedback") or "", 40)
            lines += ["    O->>H: your call", f"    H-->>O: {mermaid_text(e['action'])} {feedback}".rstrip()]
        elif kind == "decision":
            used = f" · overridden, {e['used']}" if e.get("overridden") else ""
            lines.append(f"    Note over O: the director chose {mermaid_text(e.get('choice') or 'nothing')}{used}")
        elif kind == "end":
            tokens = (e.get("total_tokens") or {}).get("total", 0)
            lines.append(f"    Note over O: stop · {e['stop_reason']} · {e.get('calls', 0)} calls, {tokens} tokens")
    return "\n".join(lines)


def show_or_draw(args: argparse.Namespace, display: Display, stdin: Any) -> int:
    """--show and --diagram: read a recorded run; a bad file gets one line and exit 2."""
    try:
        if args.diagram:
            display.line(mermaid_diagram(read_trace(args.diagram)), soft_wrap=True)
            return EXIT_APPROVED
        stepper = Stepper(Answers(stdin, display), display) if args.step else None
        return show_recorded(args.show, display, stepper)
    except UsageError as err:
        display.error(str(err))
        return EXIT_USAGE
    except StopRun as halt:  # q at a --step pause
        display.line(f"stop: {halt.detail}", "bold red")
        return EXIT_NOT_APPROVED


def add_classroom_flags(p: argparse.ArgumentParser) -> None:
    room = p.add_argument_group("classroom")
    room.add_argument("--step", action="store_true", help="pause before every model call (Enter goes on, q stops)")
    room.add_argument(
        "--human", action="store_true", help="ask the person at the terminal when the ladder would re-plan or give up"
    )
    recorded = room.add_mutually_exclusive_group()
    recorded.add_argument("--show", type=Path, metavar="TRACE", help="draw a recorded run again, with no model")
    recorded.add_argument(
        "--replay", type=Path, metavar="TRACE", help="run the loop with a recorded run's replies as the model"
    )
    recorded.add_argument(
        "--diagram", type=Path, metavar="TRACE", help="print a recorded run as a Mermaid sequence diagram"
    )


# -- The command line ---------------------------------------------------------

EPILOG = """quickstart:
  pip install -r requirements.txt
  python multi_agent_system.py "Write a haiku about agents"     (no key: scripted demo model)

real models (environment or .env):
  OPENAI_API_KEY=sk-...                                          OpenAI
  OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.2  Ollama (no key needed)
  OPENAI_BASE_URL=http://localhost:1234/v1                       LM Studio
  OPENAI_BASE_URL=http://localhost:8080/v1                       llama.cpp server
  {role_envs}{pad}one model per role

exit codes: 0 approved, 1 stopped without approval, 2 usage or configuration error, 130 interrupted
  --batch: 0 every task approved, 1 some task not, 2 bad file or a configuration error, 130 interrupted
traces: one JSON line per event in logs/<run id>.jsonl"""


def exit_code_for(stop_reason: str | None, success: str = "approved") -> int:
    """0 for success, 130 for Ctrl-C, 2 for a configuration error, 1 for any other stop."""
    if stop_reason == success:
        return EXIT_APPROVED
    if stop_reason == "interrupted":
        return EXIT_INTERRUPTED
    if stop_reason in ("config_error", "replay_mismatch"):
        return EXIT_USAGE
    return EXIT_NOT_APPROVED


def positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (0 < value < math.inf):  # also refuses nan and inf
            raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="multi_agent_system.py",
        description="A Planner, a Worker and a Critic work one task together, under hard budgets.",
        epilog=EPILOG.format(role_envs=" / ".join(r.env for r in ROLES.values()), pad="  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("task", nargs="?", help='what to do, in quotes; "-" reads it from standard input')
    models = p.add_argument_group("models")
    models.add_argument("--model", help=f"model for every role (default: OPENAI_MODEL or {DEFAULT_MODEL})")
    for role in ROLES.values():
        models.add_argument(role.flag, help=f"model for the {role.name} (default: {role.env} or --model)")
    models.add_argument("--demo", action="store_true", help="use the scripted demo model even if a key is set")
    models.add_argument(
        "--demo-scenario",
        choices=sorted(DEMO_SCENARIOS),
        help="which path the demo plays (implies --demo; default revise)",
    )
    limits = p.add_argument_group("limits")
    for flag, default, help_text in (
        ("--max-iterations", MAX_ITERATIONS, "worker/critic rounds"),
        ("--max-tokens", MAX_TOTAL_TOKENS, "token budget for the whole run"),
        ("--max-plans", MAX_PLANS, "plans before giving up"),
    ):
        limits.add_argument(
            flag, type=positive(int), default=default, metavar="N", help=f"{help_text} (default {default})"
        )
    limits.add_argument(
        "--max-cost",
        type=positive(float),
        metavar="USD",
        help="cost ceiling in dollars (needs a model with a known price)",
    )
    limits.add_argument("--timeout", type=positive(float), metavar="SECONDS", help="time limit for the whole run")
    out = p.add_argument_group("output")
    shown = out.add_mutually_exclusive_group()
    shown.add_argument("-v", "--verbose", action="store_true", help="show full prompts, replies, retries and clamps")
    shown.add_argument("-q", "--quiet", action="store_true", help="print only the approved result")
    shown.add_argument("--json", action="store_true", help="print one JSON object describing the run")
    out.add_argument("--output", type=Path, metavar="FILE", help="also write the approved result to FILE")
    out.add_argument(
        "--log-dir", type=Path, default=Path("logs"), metavar="DIR", help="where traces go (default logs/)"
    )
    add_batch_stream_estimate_arguments(p)
    add_classroom_flags(p)  # --step, --human, --show, --replay, --diagram
    return p


def add_batch_stream_estimate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stream", action="store_true", help="show the worker's reply as it is written")
    p.add_argument(
        "--estimate",
        action="store_true",
        help="print the fewest and most calls, tokens and dollars the run can spend, then exit (no call, no key)",
    )
    batch = p.add_argument_group("batch (many tasks, one key)")
    batch.add_argument(
        "--batch", type=Path, metavar="FILE", help='run every task in FILE: one per line, or JSONL {"task": ...}'
    )
    batch.add_argument(
        "--concurrency",
        type=positive(int),
        default=BATCH_CONCURRENCY,
        metavar="N",
        help=f"tasks running at once (default {BATCH_CONCURRENCY})",
    )
    batch.add_argument("--batch-max-tokens", type=positive(int), metavar="N", help="token ceiling for the whole batch")
    batch.add_argument("--batch-max-cost", type=positive(float), metavar="USD", help="cost ceiling for the whole batch")
    batch.add_argument("--rpm", type=positive(int), metavar="N", help="requests per minute, all tasks together")
    batch.add_argument("--tpm", type=positive(int), metavar="N", help="tokens per minute, all tasks together")


def read_task(arg: str | None, stdin: Any) -> str:
    where = "standard input" if arg == "-" else "the task"
    try:
        task = stdin.read() if arg == "-" else (arg or "")
    except UnicodeDecodeError as err:
        raise UsageError(f"{where} is not UTF-8 text (byte {err.object[err.start]:#04x} at {err.start})") from None
    task = task.strip()
    bad = next((i for i, ch in enumerate(task) if "\ud800" <= ch <= "\udfff"), None)  # bytes argv could not decode
    if bad is not None:
        raise UsageError(f"{where} is not UTF-8 text (an undecodable byte at character {bad})")
    if "\0" in task:
        raise UsageError(f"{where} contains a NUL byte at character {task.index(chr(0))}: is it a binary file?")
    if not task:
        raise UsageError('no task given: try  python multi_agent_system.py "Write a haiku about agents"')
    if len(task) > TASK_MAX_CHARS:
        raise UsageError(f"the task is {len(task)} characters; the limit is {TASK_MAX_CHARS} (TASK_MAX_CHARS)")
    return task


def settings_from_env(
    environ: dict[str, str],
    *,
    model: str | None = None,
    role_models: dict[str, str | None] | None = None,
    demo: bool = False,
    **limits: Any,
) -> Settings:
    """Settings from the environment, with flags (when given) taking precedence.

    Stage 3 builds its settings here too, so every program picks a server,
    a model and demo mode by the same rules. ``limits`` are Settings fields.
    """
    api_key = environ.get("OPENAI_API_KEY", "").strip() or None
    base_url = environ.get("OPENAI_BASE_URL", "").strip() or None
    if base_url:
        check_base_url(base_url)
    default_model = model or environ.get("OPENAI_MODEL", "").strip() or DEFAULT_MODEL
    models = {
        role: flag or environ.get(f"{role.upper()}_MODEL", "").strip() or default_model
        for role, flag in (role_models or {}).items()
    }
    settings = Settings(
        default_model=default_model,
        models=models,
        api_key=api_key,
        base_url=base_url,
        demo=demo or not (api_key or base_url),
        **limits,
    )
    if settings.max_cost is not None:
        used = [settings.model_for(role) for role in models] or [settings.model_for("any")]
        unpriced = sorted({m for m in used if price_for(m) is None})
        if unpriced:
            raise UsageError(
                f"--max-cost needs a price, and none is known for {', '.join(unpriced)}: "
                "add it to PRICES_PER_MILLION or drop --max-cost"
            )
    return settings


def check_base_url(url: str) -> None:
    """Refuse, before any call, a server address the SDK could only fail on later."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it validates it
    except ValueError as err:
        raise UsageError(f"OPENAI_BASE_URL is not a valid address ({err}): try http://localhost:11434/v1") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = redact(url.split("@")[-1])  # never echo a user:password@ part
        raise UsageError(f"OPENAI_BASE_URL must start with http:// or https:// and name a host, got '{shown}'")


def settings_from_args(args: argparse.Namespace, environ: dict[str, str]) -> Settings:
    return settings_from_env(
        environ,
        model=args.model,
        role_models={name: getattr(args, f"{name}_model") for name in ROLES},
        demo=bool(args.demo or args.demo_scenario),
        demo_scenario=args.demo_scenario or "revise",
        max_iterations=args.max_iterations,
        max_tokens=args.max_tokens,
        max_plans=args.max_plans,
        max_cost=args.max_cost,
        timeout=args.timeout,
        log_dir=args.log_dir,
    )


def load_env_file(warn: Callable[[str], None] | None = None) -> None:
    """Read .env from the current folder or a parent; real environment variables win.

    A line dotenv cannot parse is skipped with a warning (to ``warn`` when given);
    a file that cannot be read as UTF-8 text is a UsageError.
    """
    from dotenv import find_dotenv, load_dotenv

    path = find_dotenv(usecwd=True)
    if not path:
        return
    skipped: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            skipped.append(record.getMessage())

    logger, handler = logging.getLogger("dotenv.main"), _Collect(level=logging.WARNING)
    if warn is not None:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        load_dotenv(path)
    except ValueError as err:  # a NUL byte: the environment cannot hold it
        if isinstance(err, UnicodeDecodeError):
            raise UsageError(f"{path} is not UTF-8 text (byte {err.object[err.start]:#04x} at {err.start})") from None
        raise UsageError(f"{path} cannot be read as settings: {err}") from None
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    if warn is not None:
        for message in skipped:
            warn(f"{path}: {message}; that line was skipped")


def run_summary(state: SharedState, llm: LLM) -> dict[str, Any]:
    return {
        "approved": state["status"] == "approved",
        "result": state["result"],
        "stop_reason": state["stop_reason"],
        "stop_detail": state["stop_detail"],
        "iterations": state["iteration"],
        "plans": state["plan_version"],
        "calls": llm.ledger.calls,
        "total_tokens": state["total_tokens"]["total"],
        "tokens": state["total_tokens"],
        "usage_estimated": llm.ledger.estimated,
        "cached_prompt_tokens": llm.ledger.cached_tokens,
        "cost_usd": state["cost_usd"],
        "demo": llm.settings.demo,
        "replayed_from": llm.settings.replay,  # --replay: the recorded run whose replies stood in for the model
        "run_id": llm.trace.run_id,
        "trace": str(llm.trace.path) if llm.trace.path else None,
    }


def check_output_path(path: Path) -> None:
    """Refuse, before any model call is paid for, an output path that cannot be written."""
    if path.is_dir():
        raise UsageError(f"cannot write the result to {path}: it is a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"cannot write the result to {path}: the file is read-only")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # the first folder that exists
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write the result to {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write the result to {path}: {folder} is not writable")


def save_beside_trace(trace: Trace, text: str) -> Path | None:
    """Where a result goes when its own path failed after the run was paid for: next to the trace."""
    if trace.path is None:
        return None
    rescue = trace.path.with_suffix(".result.txt")
    try:
        write_atomically(rescue, text)
    except OSError:
        return None
    return rescue


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename: no half-written file, ever."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise OSError(err.errno, err.strerror, str(path)) from err


def ctrl_c_exits(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a program's ``main`` so that Ctrl-C where no run catches it (start-up, the last
    lines of output) exits 130 with one line instead of a traceback. A run that is under
    way catches Ctrl-C itself, to write its trace's ``end`` event and keep its work."""

    @functools.wraps(main)
    def guarded(*args: Any, **kwargs: Any) -> int:
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            sys.stderr.write("interrupted: stopped with Ctrl-C\n")
            return EXIT_INTERRUPTED

    return guarded


@ctrl_c_exits
def main(
    argv: list[str] | None = None,
    *,
    console: Console | None = None,
    client: Any = None,
    loop: Callable[[str, LLM], SharedState] = orchestrate,
    script: Callable[[str], Responder] = demo_script,
) -> int:
    """The command line. ``console`` and ``client`` let tests capture output and fake the API;
    ``loop`` and ``script`` let a variant (stages/variants/) swap the orchestrator and its demo replies."""
    try:
        args = build_parser().parse_args(argv)  # before rich is imported: --help stays fast
    except SystemExit as exit_:  # argparse has printed its message; --help exits 0
        return EXIT_USAGE if exit_.code else EXIT_APPROVED
    from rich.console import Console

    console = console or Console()
    mode: Mode = "verbose" if args.verbose else "quiet" if args.quiet else "json" if args.json else "normal"
    display = Display(console, mode)
    if args.show or args.diagram:  # a recorded run: no task, no model, no key
        return show_or_draw(args, display, sys.stdin)
    if args.estimate or args.batch:
        return main_estimate(args, display) if args.estimate else main_batch(args, display, client)
    try:
        load_env_file(display.warn)
        task = read_task(args.task, sys.stdin)
        if args.output:
            check_output_path(args.output)
        settings = settings_from_args(args, dict(os.environ))
        if args.replay:
            settings, client = replay_setup(args.replay, settings)
        run_id = new_run_id()
        trace = Trace.in_dir(settings.log_dir, run_id)
    except UsageError as err:
        display.error(str(err))
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C while the task was still being typed into stdin
        display.error("interrupted before the run started: nothing was sent")
        return EXIT_INTERRUPTED
    if settings.demo and client is None:
        client = ScriptedClient(script(settings.demo_scenario or "revise"))
    if args.stream:
        client = StreamingClient(client or openai_client(settings), display)
    llm = LLM(settings, display, trace, client=client)
    state: SharedState | None = None
    attach_classroom(llm, args, sys.stdin)
    try:
        display.banner(settings, run_id, trace.path)  # says plainly when the scripted model stands in
        if display.chatty:
            free = f" on {settings.default_model} (the demo itself is free)" if settings.demo else ""
            display.line(preview_line(spend_preview(settings, task)) + free, "dim")
        if settings.demo and set(settings.models.values()) != {DEFAULT_MODEL}:
            why = "--demo was given" if args.demo or args.demo_scenario else "no OPENAI_API_KEY or OPENAI_BASE_URL"
            display.warn(f"model names are ignored: the scripted demo model runs ({why})")
        with sdk_retries_shown(display, trace):
            state = loop(task, llm)
        return report(state, llm, args, mode)
    except OSError as err:  # the result could not be written: it is kept beside the trace
        rescued = save_beside_trace(trace, (state["result"] or "") + "\n") if state else None
        kept = f"; the result was saved to {rescued}" if rescued else ""
        where = err.filename or "the output"  # no file name: writing to the terminal or a pipe failed
        display.error(f"cannot write {where}: {err.strerror}{kept}")
        return EXIT_USAGE
    finally:
        trace.close()


def report(state: SharedState, llm: LLM, args: argparse.Namespace, mode: Mode) -> int:
    """Show how the run ended, write the approved result, and return the exit code."""
    display, console = llm.display, llm.display.console
    server_fault = state["stop_reason"] in ("config_error", "api_error", "replay_mismatch")
    if server_fault:
        display.error(state["stop_detail"] or str(state["stop_reason"]))
    approved = state["status"] == "approved"
    if args.output and approved:
        write_atomically(args.output, (state["result"] or "") + "\n")
    if mode == "json":
        console.print_json(json.dumps(run_summary(state, llm)))
    elif mode == "quiet":
        if approved:
            display.line(state["result"] or "", soft_wrap=True)
        elif not server_fault:  # that one line is already out
            display.error(f"stopped without approval: {state['stop_reason']} ({state['stop_detail']})")
    else:
        display.summary(state, llm.ledger, llm.trace.path)
        if args.output and approved:
            display.line(f"result written to {args.output}", "dim")
    return exit_code_for(state["stop_reason"])


if __name__ == "__main__":
    sys.exit(main())
