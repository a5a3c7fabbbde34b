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
is a rejection no model can overturn; a rejection that contradicts what code
measured is not taken as stated either. The loop never returns worse than its
best draft: the critic keeps the best so far, and a run that stops without
approval returns it, saying why. Limits are code too: the orchestrator
starts no round past ``MAX_ITERATIONS``, and every model call goes through
``ask()``, where the budget gate (``completion_allowance``) enforces a hard cap
of ``MAX_TOTAL_TOKENS`` tokens, and optional cost and time limits. Every run
ends, and ``state["stop_reason"]`` says why.

This file is the pattern, top to bottom: the limits, the roles, the shared
state, the orchestrator, the three agents with their prompts, the checks code
makes and the budget gate. What runs it lives beside it in ``machinery/``, one
module per job (the model gateway, the screen and trace, the demo model, the
command line, the optional tools). Those modules import this one; this one
imports only small leaf modules (verdicts, checks, plans), so it reads alone.

Run it: ``python multi_agent_system.py "Write a haiku about agents" --verbose``.
With no key a scripted demo model stands in; ``OPENAI_API_KEY`` uses OpenAI,
``OPENAI_BASE_URL`` any OpenAI-compatible server (Ollama, LM Studio, llama.cpp).
A model-driven orchestrator is its own short file, stages/variants/model_driven.py,
so the two loops can be diffed.
"""

from __future__ import annotations

import sys

if sys.version_info < (3, 10):  # noqa: UP036 - the one line an older Python gets, instead of a traceback later
    sys.stderr.write(f"error: this kit needs Python 3.10 or newer; this is Python {sys.version.split()[0]}\n")
    sys.exit(2)  # a configuration error, like any other

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict

from machinery.checks import (
    EVERY_DRAFT,
    Requirement,
    cleaned,
    code_blocks,
    distance,
    format_facts,
    measure,
    spelled_out,
)
from machinery.disputes import NO_FAULT, disputed, no_fault_named, reasons
from machinery.finder import requirements_from_task
from machinery.plans import fallback_plan, plan_problem, plan_schema, read_plan
from machinery.repairs import MENDED, repaired
from machinery.text import clip, fit, largest, times
from machinery.verdicts import Verdict, parse_verdict, verdict_schema

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
DEMO_MODEL = "scripted-demo"  # the name the offline stand-in answers to; never a real model

# Prompt-size bounds. Every variable part of a prompt is cut to one of these,
# so no prompt grows with the number of iterations (see PROMPT_MAX_CHARS).
TASK_MAX_CHARS = 4_000  # longer tasks are refused up front with a clear message
PLAN_MAX_CHARS = 3_000  # a plan as shown to the worker and critic
DRAFT_MAX_CHARS = 6_000  # a draft as shown to the critic, or back to the worker
FEEDBACK_MAX_CHARS = 1_500  # one round of critic feedback, in full
NOTES_MAX_CHARS = 1_500  # what added agents (a researcher, say) leave for the worker, all together
CHECKLIST_MAX_CHARS = 600  # the worker's line of requirements that code will check
FACTS_MAX_CHARS = 500  # what code measured in a draft, as the critic reads it
CLIP_CHARS = 300  # an old plan or old feedback, shortened
HISTORY_MAX = 6  # reviews whose feedback the worker sees; older ones stay in the trace only
EARLIER_PLANS_SHOWN = 3  # failed plans the planner is reminded of
OWN_FEEDBACK_SHOWN = 3  # earlier verdicts the critic is reminded of
SYSTEM_PROMPT_MAX_CHARS = 1_200  # the longest system prompt fits in this
# The worker's prompt is the largest: system, task, plan, notes, checklist, one draft shown again with its
# feedback, the feedback listed (the newest whole), and headings. Tested in tests/test_orchestrator.py.
PROMPT_MAX_CHARS = SYSTEM_PROMPT_MAX_CHARS + TASK_MAX_CHARS + PLAN_MAX_CHARS + NOTES_MAX_CHARS + CHECKLIST_MAX_CHARS
PROMPT_MAX_CHARS += DRAFT_MAX_CHARS + 2 * FEEDBACK_MAX_CHARS + HISTORY_MAX * CLIP_CHARS + 1_000


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
        Role("planner", "cyan", 300),  # no usable plan on the live bench needed more than 177
        Role("worker", "yellow", 1200),
        Role("critic", "magenta", 400),
    )
}
DEFAULT_ROLE_MAX_TOKENS = 800  # for roles that are not in ROLES (stage 3 has its own)


def role_cap(role: str) -> int:
    return ROLES[role].max_tokens if role in ROLES else DEFAULT_ROLE_MAX_TOKENS


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
    """Base class for this project's own errors."""


class OutOfOrderError(AgentSystemError):
    """An agent ran before what it needs existed: a bug in the caller, so fail fast."""


class UsageError(AgentSystemError):
    """A bad flag, an empty task or a configuration that cannot work: one line, exit code 2."""


class StopRun(AgentSystemError):
    """Ends the loop with a stop reason (a key of STOP_REASONS) and one line of detail."""

    def __init__(self, stop_reason: str, detail: str):
        super().__init__(detail)
        self.stop_reason, self.detail = stop_reason, detail


class BudgetExhausted(StopRun):
    """A budget gate refused the next call (tokens, cost or time)."""


class ModelUnavailable(StopRun):
    """The server refused (config_error) or kept failing (api_error); the SDK's retries are spent."""


@dataclass
class Settings:
    """What one run may do. machinery/config.py builds it from flags and the environment."""

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
    log_dir: Path = Path("logs")  # where traces go
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
    kind "review"     (critic):       iteration, plan_version, attempt, draft, approved, feedback, judge
    kind "escalation" (orchestrator): iteration, plan_version, action ("revise", "replan", "give_up", "accept")
    kind "human"      (orchestrator, for a person at --human): iteration, plan_version, action, feedback
    """

    kind: Literal["plan", "review", "escalation", "human"]
    iteration: int
    plan_version: int
    attempt: int
    plan: str
    draft: str
    approved: bool
    feedback: str
    judge: Literal["code", "critic"]  # who rejected or approved: code's checks, or the critic's model
    action: str


class Best(TypedDict):
    """The best draft so far, by what code measured and what the critic said (see ``better``)."""

    draft: str
    approved: bool  # the critic approved it: nothing ranks above that
    passed: int  # checks passed, of ``checks``
    checks: int
    distance: float  # how far its failed counts are from passing (machinery/checks.py distance)
    failed: list[str]  # the requirements it failed, as the task words them
    feedback: str
    iteration: int
    plan_version: int
    attempt: int
    why: str  # why it is the best, in words


class SharedState(TypedDict):
    """The one dict every agent reads and writes. Who writes each key:

    task             orchestrator, once at the start
    plan             planner (the current plan)
    plan_version     planner (1 for the first plan, +1 per re-plan)
    requirements     orchestrator, found in the task by code (machinery/finder.py), before any model is asked
    notes            any added agent, under its role's name; the worker reads them all (a person's, at --human)
    result           worker (the newest draft); at a stop without approval, the orchestrator puts the best draft here
    best             critic, after every verdict: the best draft so far (approved first, then most checks passed,
                     then nearest to the counts asked for); the worker revises it when a newer draft did worse
    worker_attempts  worker (+1 per draft); planner resets it to 0 with each new plan
    draft_facts      worker: what code measured in its newest draft, requirement checks included
    critic_approved  critic
    critic_feedback  critic
    history          planner, critic and orchestrator append; nobody edits or removes
    iteration        orchestrator (+1 per worker/critic round)
    total_tokens     orchestrator, from the gateway's count after every step
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
    best: Best | None
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
        best=None,
        history=[],
        iteration=0,
        total_tokens=TokenCount(prompt=0, completion=0, total=0),
        cost_usd=0.0,
        status="running",
        stop_reason=None,
        stop_detail=None,
    )


# -- What the loop needs from the machinery: a model to ask, and a place to show and record --


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
    estimated: bool  # the server sent no usage: the counts are estimates
    cost_usd: float | None
    seconds: float
    finish_reason: str | None
    max_tokens: int
    cached_tokens: int = 0  # prompt tokens the server read from its prompt cache

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Price:
    input_per_token: float  # USD
    output_per_token: float


NextStep = Literal["revise", "replan", "give_up", "accept"]  # only a person (--human) ever says "accept"


class Gateway(Protocol):
    """The model gateway, as the loop sees it. machinery/gateway.py's ``LLM`` is the real one.

    Only ``complete`` talks to a model; ``record`` shows and records a moment of
    the run (a panel, a trace event) and writes nothing into the state.
    """

    settings: Settings
    human: Any  # --human: a callable (state, step) -> (step, feedback), or None

    def complete(  # options: structured output (schema, and reply_format, the same in words), tools
        self,
        role: str,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        schema: dict[str, Any] | None = None,
        reply_format: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
    ) -> Reply: ...
    def estimate(self, messages: list[dict[str, Any]], extras: Sequence[Any] = ()) -> int: ...
    def spent(self) -> tuple[TokenCount, float | None]: ...
    def price(self, role: str) -> Price | None: ...
    def elapsed(self) -> float: ...
    def warn(self, text: str) -> None: ...
    def record(self, event: str, state: SharedState, **details: Any) -> None: ...


# -- The orchestrator: plain Python decides who runs next --------------------


def orchestrate(task: str, llm: Gateway) -> SharedState:
    """Run Planner -> Worker -> Critic until a stop reason (STOP_REASONS) ends the loop, and return the state
    with its result (without approval: the best draft) and that reason. Where each one is decided:
    approved, max_iterations and escalation_exhausted below; token_budget, cost_budget and timeout in
    completion_allowance (timeout mid-call in the gateway); config_error and api_error in the gateway;
    interrupted and crashed in the except clauses below; stopped_by_user in the classroom hooks (--step, --human).
    """
    settings = llm.settings
    state = new_state(task)
    llm.record("start", state)
    step: NextStep = "replan"  # the first plan is a re-plan from nothing
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
            step = decide_next_step(state["worker_attempts"], state["plan_version"], settings)
            if step != "revise" and llm.human is not None:  # the top rung: a person decides, if one is there
                step = ask_human(state, llm, step)
            where = {"iteration": state["iteration"], "plan_version": state["plan_version"]}
            state["history"].append(HistoryItem(kind="escalation", action=step, **where))  # type: ignore[typeddict-item]
            llm.record("escalation", state, step=step)
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
    except Exception:  # a bug (OutOfOrderError among them): the trace still ends, then the error goes up
        finish(state, "crashed", "an unexpected error ended the run")
        raise
    finally:
        state["total_tokens"], state["cost_usd"] = llm.spent()  # a step that failed midway may have paid for a call
        if state["status"] != "approved" and state["best"] is not None:  # never worse than the best draft so far
            state["result"] = state["best"]["draft"]
        llm.record("end", state)
    return state


def run_step(state: SharedState, llm: Gateway, role: str, agent: Any) -> Reply | None:
    """One agent's turn; then the state learns what the run has spent, and the screen shows the step."""
    reply = agent(state, llm)
    state["total_tokens"], state["cost_usd"] = llm.spent()
    llm.record("step", state, role=role, reply=reply)
    return reply


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


def ask_human(state: SharedState, llm: Gateway, step: NextStep) -> NextStep:
    """--human: a person at the terminal takes the ladder's top rung. Their feedback is a note for the worker."""
    step, feedback = llm.human(state, step)  # raises StopRun("stopped_by_user") when they say stop
    where = {"iteration": state["iteration"], "plan_version": state["plan_version"]}
    state["history"].append(HistoryItem(kind="human", action=step, feedback=feedback, **where))  # type: ignore[typeddict-item]
    if feedback:
        state["notes"]["human"] = clip(feedback, NOTES_MAX_CHARS)
    return step


def finish(state: SharedState, reason: str, detail: str) -> None:
    state["status"] = "approved" if reason == "approved" else "stopped"
    state["stop_reason"], state["stop_detail"] = reason, detail


# -- The agents. Each reads the shared state, calls its model, writes back -----


def system(text: str) -> dict[str, Any]:
    return {"role": "system", "content": text}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def reviews(state: SharedState) -> list[HistoryItem]:
    return [item for item in state["history"] if item["kind"] == "review"]


def lessons(items: list[HistoryItem], newest_whole: bool = False) -> str:
    """Earlier feedback, oldest first, each clipped (the newest to ``FEEDBACK_MAX_CHARS`` if ``newest_whole``);
    feedback said word for word again is shown once, with a count.

    >>> print(lessons([{"feedback": "Add an example."}] * 5 + [{"feedback": "Shorter."}]))
    - Add an example. (said 5 times)
    - Shorter.
    """
    said: dict[str, int] = {}
    for r in items:
        said[r["feedback"]] = said.get(r["feedback"], 0) + 1
    newest = items[-1]["feedback"] if items and newest_whole else None
    return "\n".join(
        f"- {clip(text, FEEDBACK_MAX_CHARS if text == newest else CLIP_CHARS)}"
        + (f" (said {times(n)})" if n > 1 else "")
        for text, n in said.items()
    )


PLANNER_PROMPT = """You are the Planner on a team of three agents: Planner, Worker, Critic.
Write 3 to 6 short steps that tell a Worker how to do the task in one pass. Steps say what to do; they never contain the finished work.
Reply with JSON: {"steps": ["..."]}."""


def planner_agent(state: SharedState, llm: Gateway) -> Reply:
    """Write a plan (a new one, if earlier plans failed). Writes: plan, plan_version, worker_attempts.

    Code checks the plan is a plan: a reply that is really the answer, or that plans
    the review process instead of the task, is replaced by a plan code writes.
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
    reply = ask(llm, "planner", messages, schema=plan_schema())
    steps = read_plan(reply.content)
    # Not asked again: on the live bench a 1.5B planner fixed its plan only half the time, and first drafts
    # from the plans it fixed passed code's checks less often (13 of 39) than from code's plan (21 of 46).
    if problem := plan_problem(steps, state["task"], state["requirements"], reply.finish_reason == "length"):
        llm.warn(f"the planner's reply is not a usable plan ({problem}): code writes one from the task")
        steps = fallback_plan(state["task"], state["requirements"])
    state["plan"] = plan = "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))
    state["plan_version"] += 1
    state["worker_attempts"] = 0  # attempts are counted per plan
    state["history"].append(
        HistoryItem(kind="plan", plan_version=state["plan_version"], plan=clip(plan, PLAN_MAX_CHARS))
    )
    return reply


WORKER_PROMPT = """You are the Worker. Do the task exactly as asked. Reply with the finished work only:
no preamble, no notes on the plan, no commentary. When feedback is included, fix every point it raises."""
# What the worker's prompt says around the task. A small model copies such lines into its work: code takes
# a line that repeats one off the draft, and rejects a draft that repeats one inside its own lines.
PLAN_HEADING, CHECKS_HEADING = "Steps you may follow", "Code will check:"
REJECTED_HEADING, REVISE = (
    "That draft was rejected",
    "Return a new, complete version that fixes every point, and nothing else.",
)
LESSONS_HEADING = "Earlier feedback (do not repeat these mistakes):"
REPEATED = "Your last draft repeated a rejected one word for word: write it afresh."
ECHOES = (PLAN_HEADING, CHECKS_HEADING, REJECTED_HEADING, REVISE, LESSONS_HEADING, REPEATED)


def worker_agent(state: SharedState, llm: Gateway) -> Reply:
    """Produce a draft from the plan and the feedback so far. Writes: result, worker_attempts, draft_facts.

    Code reads the draft before anyone judges it: lines that only introduce or close it, or repeat the
    prompt, are taken off (so is a code fence around all of it, when the task asked for none), a draft
    over a count is cut to it (machinery/repairs.py), and a draft sent again word for word is asked for once
    more, afresh.
    """
    if not state["plan"]:
        raise OutOfOrderError("worker_agent needs a plan: run planner_agent first")
    state["worker_attempts"] += 1
    reply = write_draft(state, llm, worker_messages(state))
    if not passed(state, "new_draft"):  # a word-for-word repeat: asked once more, afresh, before anyone judges it
        llm.warn("the worker sent a rejected draft again, word for word: asking once more, afresh")
        reply = write_draft(state, llm, worker_messages(state, afresh=True))
    return reply


def write_draft(state: SharedState, llm: Gateway, messages: list[dict[str, Any]]) -> Reply:
    reply = ask(llm, "worker", messages, reserve=critique_cost(state, llm))
    # "Sure, here is...:", the prompt's headings, the task's own sentences copied out are not the work;
    # nor is a fence around all of it, when the task asked for none
    state["result"] = draft = cleaned(reply.content, ECHOES, state["task"], state["requirements"])
    checks = [*state["requirements"], *run_checks(state)]
    cut_off, fix = reply.finish_reason == "length", None
    if not cut_off and (fix := repaired(draft, checks)):  # told "cut 1 sentence", a small model wrote 3 again
        state["result"] = draft = fix.draft  # code cuts a surplus or moves paragraph breaks; it writes no word
        llm.warn(f"{MENDED}: {fix.how}")
    state["draft_facts"] = measure_draft(draft, cut_off, checks) | ({"mended": fix.how} if fix else {})
    return reply


def passed(state: SharedState, kind: str) -> bool:
    return all(c["passed"] for c in state["draft_facts"].get("checks", []) if c["kind"] == kind)


def worker_messages(state: SharedState, afresh: bool = False) -> list[dict[str, Any]]:
    """The task first, in its own words, and the plan after it, inline: a small model given a plan first,
    or under a heading of its own, copies it. Then the feedback so far, listed, newest last.

    A draft code rejected is not shown again: as its own earlier turn, a 1.5B model sent it back or echoed
    the feedback (of 40 revision prompts from live runs, 0 passed code's checks that way, 9 written afresh:
    bench/revision_shapes.py). A draft the critic rejected after code passed it does come back, as the
    worker's turn followed by the critic's reasons; so does the best draft, when a later one did worse.
    """
    steps = "; ".join(state["plan"].splitlines()) if state["plan"] else ""
    parts = [state["task"], f"{PLAN_HEADING} (plan v{state['plan_version']}): {clip(steps, PLAN_MAX_CHARS)}"]
    if state["requirements"]:
        checklist = "; ".join(dict.fromkeys(spelled_out(r) for r in state["requirements"]))  # one quote, two bounds
        parts.append(clip(f"{CHECKS_HEADING} {checklist}.", CHECKLIST_MAX_CHARS))
    if state["notes"]:
        notes = "\n\n".join(f"Notes from the {role}:\n{note}" for role, note in state["notes"].items())
        parts.append(clip(notes, NOTES_MAX_CHARS))
    shown = reviews(state)[-HISTORY_MAX:]
    best, newest = state["best"], {c["requirement"] for c in state["draft_facts"].get("checks", []) if not c["passed"]}
    again: HistoryItem | None = None  # the one draft shown again, to revise
    # none after a word-for-word repeat: shown its own rejected draft, a small model may send it again
    latest = shown[-1] if shown and not afresh and passed(state, "new_draft") else None
    if latest and latest.get("judge") == "critic" and latest["plan_version"] == state["plan_version"]:
        again = latest  # the critic's reasons, about these words
    elif latest and best and best["draft"].strip() and not best["failed"] and newest:  # a later one did worse
        note = f"\n(A later draft failed what this one passed: {'; '.join(sorted(newest))}. Revise this one.)"
        again = HistoryItem(draft=best["draft"], feedback=best["feedback"] + note, attempt=best["attempt"])
        again["plan_version"] = best["plan_version"]
    shown_again = (again["plan_version"], again["attempt"]) if again else None
    listed = [r for r in shown if (r["plan_version"], r["attempt"]) != shown_again]
    if listed:
        parts.append(f"{LESSONS_HEADING}\n" + lessons(listed, newest_whole=again is None))
    if afresh:
        parts.append(REPEATED)
    messages = [system(WORKER_PROMPT), user("\n\n".join(parts))]
    if again is not None:
        messages.append({"role": "assistant", "content": clip(again["draft"], DRAFT_MAX_CHARS)})
        messages.append(
            user(
                f"{REJECTED_HEADING} (plan v{again['plan_version']}, draft {again['attempt']}):\n"
                f"{clip(again['feedback'], FEEDBACK_MAX_CHARS)}\n\n{REVISE}"
            )
        )
    return messages


CRITIC_PROMPT = """You are the Critic. Decide whether the draft fully does the task; do not rewrite it.
Code has measured the draft and its checks passed: do not recount. Judge what code cannot: is it correct, on topic, complete, in the form asked?
Approve only if nothing the task asks for is missing or wrong; then leave the feedback empty. To reject, say exactly what to change (at most 80 words), consistent with your earlier feedback, and invent no requirement the task does not state."""
# The verdict's shape in words. The gateway adds it to the system prompt only while the server
# is not enforcing the JSON schema itself (the schema says the same, and is paid for too). The
# planner's prompt keeps its shape line always: without it the local 1.5B model wrote long,
# indented plans that ran into their token cap.
CRITIC_FORMAT = """Reply with JSON: {"approved": true or false, "feedback": "..."}
or else make your first line APPROVED: YES or APPROVED: NO and your second line FEEDBACK: and your reasons."""
# Said to a critic that rejected a draft while naming no fault in it, quoting the sentence that praised it.
AGAIN = "If the draft does all the task asks, approve it: improvements it does not ask for are no reason to reject."


def critic_agent(state: SharedState, llm: Gateway) -> Reply | None:
    """Judge the newest draft. Writes: critic_approved, critic_feedback, and a review in history.

    What code can check, code checks: an empty draft, or one that fails a
    requirement check, is rejected without a model call, with feedback saying
    what was measured. A draft or verdict cut off at its token limit is never
    approved, whatever the model says. The model judges the rest (once more, if judge_again() asks it).
    """
    if state["result"] is None or not state["plan"]:
        raise OutOfOrderError("critic_agent needs a plan and a draft: run planner_agent and worker_agent first")
    facts = state["draft_facts"]  # measured by code when the worker wrote the draft
    failed = [c for c in facts["checks"] if not c["passed"]]
    reply = None
    if not state["result"].strip():
        verdict = Verdict(False, "The draft was empty. Produce the complete work.", "code", "empty draft")
    elif failed:  # a failed check is a rejection no model can overturn
        said = dict.fromkeys(c["measured"] for c in failed)  # one parse error fails several checks: say it once
        feedback = "Code measured the draft: " + "; ".join(said) + ". Fix this first."
        verdict = Verdict(False, feedback, "code", f"{len(failed)} requirement check(s) failed")
    else:
        messages = critic_view(state, llm)
        reply = ask(llm, "critic", messages, schema=verdict_schema(), reply_format=CRITIC_FORMAT)
        verdict = read_verdict(reply, facts)
        whole_no = verdict.said_no and reply.finish_reason != "length" and not facts.get("cut_off")  # its own no, uncut
        if claims := [] if verdict.approved else disputed(verdict.feedback, facts):
            verdict, reply = judge_again(state, llm, messages, reply, verdict, claims)
        elif whole_no and (praise := no_fault_named(verdict.feedback)):
            verdict, reply = judge_again(state, llm, messages, reply, verdict, [], praise)
    feedback = verdict.feedback or ("Approved." if verdict.approved else f"Not approved: {verdict.why}.")
    state["critic_approved"], state["critic_feedback"] = verdict.approved, feedback
    state["best"] = better(state["best"], state, verdict.approved, feedback)
    state["history"].append(
        HistoryItem(
            kind="review",
            iteration=state["iteration"],
            plan_version=state["plan_version"],
            attempt=state["worker_attempts"],
            draft=clip(state["result"], DRAFT_MAX_CHARS),
            approved=verdict.approved,
            feedback=clip(feedback, FEEDBACK_MAX_CHARS),
            judge="code" if reply is None else "critic",
        )
    )
    llm.record("verdict", state, verdict=verdict, reply=reply)
    return reply


def read_verdict(reply: Reply, facts: dict[str, Any]) -> Verdict:
    """The critic's verdict, never an approval of a draft or a verdict cut off at its token limit."""
    verdict = parse_verdict(reply.content)
    if verdict.approved and reply.finish_reason == "length":
        verdict = verdict.overruled("the verdict was cut off at max_tokens")
    if verdict.approved and facts.get("cut_off"):
        verdict = verdict.overruled("the draft was cut off: it is incomplete")
    return verdict


def judge_again(
    state: SharedState, llm: Gateway, messages: list[dict], reply: Reply, verdict: Verdict, claims: list, praise=""
) -> tuple[Verdict, Reply]:
    """Code outranks the critic both ways: a rejection that contradicts what code measured is asked again,
    once, with the measurements; a claim made again (or with no budget for a second call) is set aside, and
    only the rest of the feedback reaches the worker (told of a claim, a small model acts on it). ``why``
    says what was set aside. A rejection naming no fault, only ``praise``, is asked again too."""
    facts, first = state["draft_facts"], claims or [(praise, NO_FAULT)]
    told = "; ".join(f"you said '{clip(claim, 100)}', but code measured {measured}" for claim, measured in claims)
    again = f"You rejected the draft, yet said '{praise.rstrip('.')}'. {AGAIN}"
    again = f"Code's measurements are facts: {told}. Judge the draft again." if claims else again
    messages = [*messages, reply.message, user(again)]
    try:
        reply = ask(llm, "critic", messages, schema=verdict_schema(), reply_format=CRITIC_FORMAT)
        verdict = read_verdict(reply, facts)
        claims = [] if verdict.approved else disputed(verdict.feedback, facts)
        llm.record("dispute", state, claims=claims, outcome="asked again", first=first)
    except BudgetExhausted:
        llm.record("dispute", state, claims=claims, outcome="no room to ask again", first=first)
    if not claims:
        return verdict, reply
    kept = [reason for reason in reasons(verdict.feedback) if reason not in dict(claims)]
    notes = [
        f"code measured {measured}; the critic's claim '{clip(claim, 80)}' was set aside" for claim, measured in claims
    ]
    feedback = " ".join(kept) or (  # no reason left: say what to do (told only "improve", a small model apologised)
        "The draft meets every requirement code measured. Write the task's answer again, meeting them too, with better "
        "wording or content; write only the answer."
    )
    return Verdict(False, feedback, verdict.source, "; ".join(notes)), reply


def better(best: Best | None, state: SharedState, approved: bool, feedback: str) -> Best:
    """The newest draft, if it ranks at least as high as the best so far: the critic's approval first,
    then the fewest failed checks, then the nearest to the counts the task asks for (a tie goes to the newer)."""
    checks = state["draft_facts"]["checks"]
    failed = [c for c in checks if not c["passed"]]
    distance = round(sum(c.get("distance", 1.0) for c in failed), 3)
    it, plan, attempt = state["iteration"], state["plan_version"], state["worker_attempts"]
    why = f"{'approved; ' if approved else ''}{len(checks) - len(failed)} of {len(checks)} code checks passed"
    why += f", {distance:g} off the counts asked for" if distance else ""
    new = Best(
        draft=state["result"] or "",
        approved=approved,
        passed=len(checks) - len(failed),
        checks=len(checks),
        distance=distance,
        failed=[c["requirement"] for c in failed],
        feedback=clip(feedback, FEEDBACK_MAX_CHARS),
        iteration=it,
        plan_version=plan,
        attempt=attempt,
        why=f"iteration {it} (plan v{plan}, draft {attempt}): {why}",
    )

    def rank(b: Best) -> tuple[bool, bool, int, float]:  # an empty draft passes the checks it has, but is nothing
        return b["approved"], bool(b["draft"].strip()), -len(b["failed"]), -b["distance"]

    return best if best is not None and rank(best) > rank(new) else new


def critic_view(state: SharedState, llm: Gateway) -> list[dict[str, Any]]:
    """The critic's messages, the draft cut (and marked so) only where the whole would not fit in the budget left.

    The worker's reserve (critique_cost) plans for the longest draft; this makes the guarantee hard whatever a
    draft's bytes per token turned out to be, or however the gateway's estimates have learned since.
    """
    facts, draft = fit(format_facts(state["draft_facts"]), FACTS_MAX_CHARS), state["result"] or ""
    room = llm.settings.max_tokens - llm.spent()[0]["total"] - VERDICT_ROOM

    def fits(size: int) -> bool:
        return llm.estimate(critic_messages(state, fit(draft, size), facts), [verdict_schema(), CRITIC_FORMAT]) <= room

    return critic_messages(state, fit(draft, max(largest(len(json.dumps(draft)), fits), 0)), facts)


def critic_messages(state: SharedState, draft: str, facts: str) -> list[dict[str, Any]]:
    """What the critic reads. What never changes comes first (instructions, task), so providers
    can cache that prefix. The plan is not shown: the draft is judged against the task, not the plan's reading of it."""
    parts = [f"Task:\n{state['task']}"]
    # Its own verdicts only: shown code's feedback on earlier drafts ("add 1 bullet point"), a small critic
    # repeated it of a draft code had just passed ("it lacks one more object... only has 3 objects")
    own = [r for r in reviews(state) if r.get("judge") == "critic"][-OWN_FEEDBACK_SHOWN:]
    if own:
        parts.append("Your earlier feedback, oldest first:\n" + lessons(own))
    parts.append(f"Measured by code:\n{facts}")
    parts.append(f"Draft to judge:\n<<<\n{clip(draft, DRAFT_MAX_CHARS)}\n>>>")
    return [system(CRITIC_PROMPT), user("\n\n".join(parts))]


# -- What code can check, code checks (machinery/checks.py measures each kind) --


def run_checks(state: SharedState) -> list[Requirement]:
    """What every draft must also be, given the run so far: new, about the task, not copied from the prompt."""
    rejected = [r["draft"] for r in reviews(state) if not r["approved"]]
    return [
        Requirement("new_draft", rejected, "not a draft already rejected"),
        Requirement("no_chatter", state["task"], "the work itself, not a note to the reviewer"),
        Requirement("no_echo", list(ECHOES), "nothing copied from the prompt"),
    ]


def measure_draft(text: str, cut_off: bool = False, requirements: Sequence[Requirement] = ()) -> dict[str, Any]:
    """Count and check what models miscount, and check every requirement (plus two every draft must meet).

    >>> facts = measure_draft("one two\\nthree", requirements=[Requirement("max_words", 2, "at most 2 words")])
    >>> facts["words"], facts["lines"], [c["passed"] for c in facts["checks"]]
    (3, 2, [False, True, True])
    >>> measure_draft("```python\\ndef f(:\\n```")["code_blocks"][0]["parses"]
    False
    """
    checks = []
    for r in [*requirements, *EVERY_DRAFT]:
        passed, measured = measure(text, r)
        check = {"requirement": r.quote, "kind": r.kind, "passed": passed, "measured": measured}
        checks.append(check | ({} if passed else {"distance": distance(text, r)}))
    return {
        "words": len(text.split()),
        "lines": len([line for line in text.splitlines() if line.strip()]),
        "characters": len(text),
        "code_blocks": code_blocks(text),
        "cut_off": cut_off,  # the worker hit its token limit: the draft is incomplete
        "checks": checks,
    }


# -- The budget gate: every model call passes through ask() -------------------


def ask(
    llm: Gateway, role: str, messages: list[dict[str, Any]], *, reserve: ReadBack | None = None, **options: Any
) -> Reply:
    """The one way agents call a model: the budget gate decides what the call may write, then the gateway sends it.

    ``options`` go to the gateway (``schema``, ``reply_format``, ``tools``, ``tool_choice``);
    ``reserve`` tokens stay free for a later call that reads this reply back (the critique of a draft).
    """
    extras = [options[k] for k in ("schema", "reply_format", "tools") if options.get(k)]
    (tokens, usd), prompt = llm.spent(), llm.estimate(messages, extras)
    limit = completion_allowance(
        role, prompt, tokens["total"], usd, llm.elapsed(), llm.price(role), llm.settings, reserve
    )
    return llm.complete(role, messages, max_tokens=limit, **options)


@dataclass(frozen=True)
class ReadBack:
    """A later call that will read a reply back: its prompt for a reply of n tokens, and its model's price."""

    prompt: Callable[[int], int]
    price: Price | None = None


def critique_cost(state: SharedState, llm: Gateway) -> ReadBack:
    """The critique of a draft of n tokens: its prompt as the critic's own gate will estimate it, at the critic's price.

    The draft is taken as BYTES_PER_TOKEN_MOST bytes a token (the critic is shown no more than that),
    so a draft the worker was allowed to write can always be judged.
    """

    def prompt(n: int) -> int:
        longest = "x" * math.ceil(n * BYTES_PER_TOKEN_MOST)
        messages = critic_messages(state, longest, "x" * FACTS_MAX_CHARS)
        return llm.estimate(messages, [verdict_schema(), CRITIC_FORMAT])

    return ReadBack(prompt, llm.price("critic"))


def completion_allowance(
    role: str,
    prompt_tokens: int,
    spent_tokens: int,
    spent_usd: float | None,
    elapsed: float,
    price: Price | None,
    settings: Settings,
    reserve: ReadBack | None = None,
) -> int:
    """How many tokens the next call may write; BudgetExhausted if it should not be made.

    ``prompt_tokens`` is a high estimate of the call's prompt. The completion
    is clamped so that prompt + completion fits in what is left of the token
    (and cost) budget, so the cap holds even on the last call.

    ``reserve`` is a later call that will read this reply back (the critique of
    a draft): ``reserve.prompt(n)`` is its prompt if the reply is n tokens long,
    and its own reply needs VERDICT_ROOM more, at its own model's price. The
    reply may only be as long as leaves room for both: a draft that could not be
    judged is not worth writing.

    >>> s = Settings(max_tokens=2_000)
    >>> completion_allowance("worker", 500, 0, 0.0, 0.0, None, s)  # the role's own cap
    1200
    >>> completion_allowance("worker", 500, 1_000, 0.0, 0.0, None, s)  # clamped to what is left
    500
    >>> completion_allowance("worker", 500, 1_480, 0.0, 0.0, None, s)
    Traceback (most recent call last):
    ...
    multi_agent_system.BudgetExhausted: worker call skipped: its ~500-token prompt leaves too little room (1480 of 2000 tokens used)
    >>> completion_allowance("worker", 500, 1_000, 0.0, 0.0, None, s, ReadBack(lambda n: 140 + n))  # 140 + the draft + 160
    100
    """
    if settings.timeout is not None and elapsed >= settings.timeout:
        raise BudgetExhausted("timeout", f"{settings.timeout:g}s time limit reached")

    def later(n: int) -> int:  # the tokens of the call that will read n tokens of this reply back
        return 0 if reserve is None else reserve.prompt(n) + VERDICT_ROOM

    tokens_left = settings.max_tokens - spent_tokens - prompt_tokens
    money_left = math.inf
    if settings.max_cost is not None:
        assert price is not None, "the settings refuse --max-cost without a price"
        money_left = settings.max_cost - (spent_usd or 0.0) - prompt_tokens * price.input_per_token

    def fits_tokens(n: int) -> bool:
        return n + later(n) <= tokens_left

    def fits_money(n: int) -> bool:  # this reply is written; the later call's prompt is read, its reply written
        cost = n * price.output_per_token if price else 0.0
        if reserve is not None and reserve.price is not None:
            cost += reserve.prompt(n) * reserve.price.input_per_token + VERDICT_ROOM * reserve.price.output_per_token
        return cost <= money_left

    limit, binding = largest(role_cap(role), fits_tokens), "token_budget"
    if settings.max_cost is not None and not fits_money(limit):
        limit, binding = largest(limit, fits_money), "cost_budget"
    if limit < MIN_USEFUL_COMPLETION:
        spent = f"{spent_tokens} of {settings.max_tokens} tokens used"
        if binding == "cost_budget":
            spent = f"${spent_usd or 0:.6f} of ${settings.max_cost:g} spent"
        needs = f"its ~{prompt_tokens}-token prompt" + (f" (and ~{later(0)} kept for judging it)" if reserve else "")
        raise BudgetExhausted(binding, f"{role} call skipped: {needs} leaves too little room ({spent})")
    return limit


if __name__ == "__main__":  # the command line lives beside the chapter, in machinery/cli.py
    from machinery.cli import main

    sys.exit(main())
