"""Agents as services: the messages, the service that runs an agent, and the orchestrator's gateway to services.

A request carries the shared state, the run's limits and what the run has
spent so far; the service runs the chapter's own agent function on that state,
through the chapter's own ``ask()``, with a gateway whose budget view starts
from those totals, so a service never spends more than the request allows.
The reply carries what the agent wrote into the state, each model call's
accounting, and the trace events the step made; the orchestrator checks it,
applies it to its state, writes the events into its own trace and saves the
state. Both messages are pydantic models, checked on receipt: a malformed,
oversized or wrongly typed message is refused with a logged reason.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import io
import json
import logging
import threading
import types
import typing
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from machinery import telemetry
from machinery.batch import BatchBudget
from machinery.bus import REPLAYED, AgentError, BusBase, BusError, BusTimeout, Refused
from machinery.checks import Requirement
from machinery.demo import ScriptedClient, demo_script
from machinery.gateway import LLM, estimate_text_tokens, openai_client
from machinery.output import Display, Trace
from machinery.prices import price_for
from multi_agent_system import (
    DEMO_MODEL,
    PROMPT_MAX_CHARS,
    BudgetExhausted,
    ModelUnavailable,
    Reply,
    Settings,
    SharedState,
    StopRun,
    TokenCount,
    critic_agent,
    planner_agent,
    role_cap,
    worker_agent,
)

log = logging.getLogger("agents.services")

AGENTS = {"planner": planner_agent, "worker": worker_agent, "critic": critic_agent}  # the chapter's own functions
# Which keys of the shared state each agent writes (the chapter's SharedState docstring); a reply may write no other.
WRITES = {
    "planner": {"plan", "plan_version", "worker_attempts", "history"},
    "worker": {"result", "worker_attempts", "draft_facts"},
    "critic": {"critic_approved", "critic_feedback", "best", "history"},
}
EVENTS = {"call", "verdict", "dispute", "warning"}  # the trace events an agent's step makes
STEP_RESERVE = 4  # a batch reserves this many times a step's prompt and cap: two calls, and room to judge a draft
RUNS = "agent_runs"  # key-value bucket: run id -> the run's task, settings and state after its latest step
REPLY_WAIT_S = 600.0  # without --timeout, how long a request may wait for a service
TEXT_MAX = 200_000  # characters in any one text field of a message


class Message(BaseModel):
    """What every message says: which run, which message, what caused it, for which agent."""

    model_config = ConfigDict(extra="forbid", strict=True)

    run_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    message_id: str = Field(pattern=r"^[A-Za-z0-9_=.-]{1,128}$")
    causation_id: str = Field(max_length=128)
    role: Literal["planner", "worker", "critic"]


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    max_iterations: int
    max_tokens: int
    max_plans: int
    max_cost: float | None
    timeout: float | None


class Spent(BaseModel):
    """What the run had spent when the request was sent: where the service's budget view starts."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: int = Field(ge=0)
    completion: int = Field(ge=0)
    cost_usd: float | None
    seconds: float = Field(ge=0)
    calls: dict[str, int]  # per role: the scripted demo model answers by these counts
    estimate_scale: float = Field(ge=1.0)  # the gateway's prompt estimates, scaled up by what servers counted


class Request(Message):
    kind: Literal["request"] = "request"
    state: dict[str, Any]
    default_model: str = Field(max_length=200)
    models: dict[str, str]
    demo: bool
    demo_scenario: str | None
    limits: Limits
    spent: Spent
    allowance: int = Field(ge=0)  # tokens this request may spend, at most
    allowance_usd: float | None  # dollars, when a cost ceiling applies


class Call(BaseModel):
    """One model call a service made, as the orchestrator's ledger counts it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str
    tokens_in: int = Field(ge=0)
    tokens_out: int = Field(ge=0)
    cost_usd: float | None
    seconds: float = Field(ge=0)
    estimated: bool
    cached_tokens: int = Field(ge=0)
    content: str = Field(max_length=TEXT_MAX)
    finish_reason: str | None
    max_tokens: int


class AgentReply(Message):
    kind: Literal["reply", "stop"]  # stop: a gate or the model server stopped the run during this step
    content: str = Field(max_length=TEXT_MAX)  # the last call's reply ("" when code decided without a call)
    tokens_in: int = Field(ge=0)
    tokens_out: int = Field(ge=0)
    model: str
    seconds: float = Field(ge=0)
    calls: list[Call] = Field(max_length=10)
    writes: dict[str, Any]  # the keys of the state the agent wrote; "history": only the items it appended
    events: list[dict[str, Any]] = Field(max_length=50)
    stop_reason: str | None
    stop_detail: str | None = Field(max_length=2_000)
    estimate_scale: float = Field(ge=1.0)
    request_digest: str  # what the reply answers: a hash of the request's role and state


# -- The shared state as JSON, checked against the chapter's SharedState --------


def loosen(hint: Any) -> Any:
    """A SharedState type pydantic can check here: nested TypedDicts and dataclasses become dicts."""
    if typing.is_typeddict(hint) or dataclasses.is_dataclass(hint):
        return dict[str, Any]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return list[loosen(args[0])]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(loosen(a) for a in args)]  # noqa: UP007 - built from a tuple at run time
    return hint


@functools.cache
def state_model() -> type[BaseModel]:
    """A pydantic model of every key of the chapter's SharedState (a key a student adds is checked too)."""
    fields: dict[str, Any] = {name: (loosen(hint), ...) for name, hint in typing.get_type_hints(SharedState).items()}
    return create_model("SharedStateMessage", __config__=ConfigDict(extra="forbid", strict=True), **fields)


def state_to_json(state: SharedState) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(dict(state))
    data["requirements"] = [dataclasses.asdict(r) for r in state["requirements"]]
    return data


def state_from_json(data: Any) -> SharedState:
    """The state a message carries, or Refused saying what is wrong with it."""
    try:
        state_model().model_validate(data)
        requirements = [Requirement(**r) for r in data["requirements"]]
    except (ValidationError, TypeError) as err:
        raise Refused(f"the state is malformed: {first_error(err)}") from None
    return typing.cast(SharedState, copy.deepcopy(data) | {"requirements": requirements})


def first_error(err: Exception) -> str:
    if isinstance(err, ValidationError):
        e = err.errors()[0]
        return f"{'.'.join(str(p) for p in e['loc']) or 'the message'}: {e['msg']} ({err.error_count()} problem(s))"
    return str(err).splitlines()[0][:200]


def digest(role: str, state: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([role, state], sort_keys=True, default=str).encode()).hexdigest()[:32]


def parse(model: type[Message], payload: bytes) -> Any:
    try:
        return model.model_validate_json(payload)
    except ValidationError as err:
        raise Refused(f"not a valid {model.__name__}: {first_error(err)}") from None


# -- The service: one role, the chapter's agent, a gateway that starts where the run is --


class MemoryTrace(Trace):
    """A trace kept in memory: a service sends its step's events back; the orchestrator writes the trace."""

    def __init__(self, run_id: str):
        super().__init__(None, run_id)
        self.events: list[dict[str, Any]] = []
        self.secrets: list[str] = []

    def hide(self, secret: str | None) -> None:
        if secret and len(secret) >= 8:
            self.secrets.append(secret)

    def event(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"event": kind, **fields}, ensure_ascii=False, default=str)
        for secret in self.secrets:
            line = line.replace(secret, "[redacted]")
        self.events.append(json.loads(line))


class ServiceGateway(LLM):
    """The chapter's gateway, in a service, for one request: spending and time count from the run's totals."""

    def __init__(self, settings: Settings, spent: Spent, client: Any, run_id: str):
        from rich.console import Console

        quiet = Console(file=io.StringIO())
        super().__init__(settings, Display(quiet, "quiet", errors=quiet), MemoryTrace(run_id), client=client)
        self.before = spent
        self._estimate_scale = spent.estimate_scale

    def spent(self) -> tuple[TokenCount, float | None]:
        own, usd = super().spent()
        prompt, completion = self.before.prompt + own["prompt"], self.before.completion + own["completion"]
        cost = None if usd is None or self.before.cost_usd is None else self.before.cost_usd + usd
        return TokenCount(prompt=prompt, completion=completion, total=prompt + completion), cost

    def elapsed(self) -> float:
        return self.before.seconds + super().elapsed()

    def close(self) -> None:
        """Close the client made for this request (a test's or a demo script is not ours to close)."""
        if self._owns_client and self._client is not None:
            self._client.close()

    def scale(self) -> float:
        return self._estimate_scale

    def _check_budget_share(self) -> None:
        """The orchestrator warns about the run's budget; a service sees only one step."""

    def complete(self, role: str, messages: list[dict[str, Any]], **options: Any) -> Reply:
        model = self.settings.model_for(role)
        with telemetry.span(f"chat {model}", telemetry.agent_attributes("chat", role, model)) as add:
            reply = super().complete(role, messages, **options)
            add(telemetry.agent_attributes("chat", role, model, reply.prompt_tokens, reply.completion_tokens))
        return reply


class AgentService:
    """One role's service: checks a request, runs the chapter's agent on its state, replies with what changed.

    ``model`` is where this service's model server is (its own environment: the key never
    travels in a message); ``client_for`` lets tests and the in-process bus hand in a client.
    """

    def __init__(self, role: str, model: Settings, client_for: Callable[[Request], Any] | None = None):
        if role not in AGENTS:
            raise ValueError(f"no service for the role {role!r}: choose one of {', '.join(AGENTS)}")
        self.role, self.model, self.client_for = role, model, client_for
        self._shared: Any = None
        self._lock = threading.Lock()

    def client(self, request: Request) -> Any:
        """The test's client; a fresh demo script; the service's one client; or, for a run with a time limit,
        None: the gateway then makes a client of its own, which it closes if the call is abandoned at the
        limit (the shared one would go on retrying it)."""
        if self.client_for is not None:
            return self.client_for(request)
        if request.demo:  # a fresh script that knows how many calls the run has made of each role
            return ScriptedClient(demo_script(request.demo_scenario or "revise", request.spent.calls))
        if request.limits.timeout is not None:
            return None
        with self._lock:  # one client for the service's life: making one costs milliseconds of CPU
            if self._shared is None:
                self._shared = openai_client(self.model)
            return self._shared

    def settings(self, request: Request) -> Settings:
        """The run's limits, narrowed to the request's allowance; the model server is this service's own."""
        limits, spent = request.limits, request.spent
        max_cost = limits.max_cost
        if request.allowance_usd is not None:  # a batch's cost ceiling: what this request reserved
            max_cost = min(max_cost or float("inf"), (spent.cost_usd or 0.0) + request.allowance_usd)
        priced = price_for(settings_model(request, self.role)) is not None
        return Settings(
            default_model=request.default_model,
            models=dict(request.models),
            api_key=self.model.api_key,
            base_url=self.model.base_url,
            demo=request.demo,
            demo_scenario=request.demo_scenario,
            max_iterations=limits.max_iterations,
            max_tokens=min(limits.max_tokens, spent.prompt + spent.completion + request.allowance),
            max_plans=limits.max_plans,
            max_cost=max_cost if priced else None,  # no price: the orchestrator's settings refused a ceiling
            timeout=limits.timeout,
        )

    def handle(self, payload: bytes, headers: dict[str, str]) -> tuple[bytes, bool]:
        """The bus's handler: a checked request in, a reply out; Refused for anything this service will not run.

        The reply is kept as the request's answer unless the step stopped at the time limit or on a
        failing server: a resumed run sends the request again and gets a fresh try, not that stop.
        """
        request: Request = parse(Request, payload)
        if request.role != self.role:
            raise Refused(f"this service runs the {self.role}, not the {request.role}")
        if headers.get("Nats-Msg-Id", request.message_id) != request.message_id:
            raise Refused("the message id in the body differs from the header's")
        state = state_from_json(request.state)
        before = state_to_json(state)
        settings = self.settings(request)
        stop: StopRun | None = None
        if not request.demo and self.model.demo:
            stop = ModelUnavailable(
                "config_error",
                f"the {self.role} service has no model server: set OPENAI_BASE_URL or OPENAI_API_KEY where it runs",
            )
            llm = None
        else:
            llm = ServiceGateway(settings, request.spent, self.client(request), request.run_id)
            try:
                AGENTS[self.role](state, llm)
            except StopRun as halt:  # a gate, or the model server: the run stops, and the orchestrator says why
                stop = halt
            finally:
                llm.close()
        reply = self.reply(request, before, state_to_json(state), llm, stop)
        log.info(
            "%s: %s: %d call(s), %d tokens, %.2fs%s",
            self.role, request.message_id, len(reply.calls), reply.tokens_in + reply.tokens_out, reply.seconds,
            f", stop: {stop.stop_reason}" if stop else "",
        )  # fmt: skip
        return reply.model_dump_json().encode(), reply.stop_reason not in ("timeout", "api_error")

    def reply(
        self,
        request: Request,
        before: dict[str, Any],
        after: dict[str, Any],
        llm: ServiceGateway | None,
        stop: StopRun | None,
    ) -> AgentReply:
        writes = {key: value for key, value in after.items() if value != before.get(key) and key != "history"}
        added = after["history"][len(before["history"]) :]
        if added:
            writes["history"] = added
        events = typing.cast(MemoryTrace, llm.trace).events if llm is not None else []
        calls = [
            Call(
                model=e["model"],
                tokens_in=e["prompt_tokens"],
                tokens_out=e["completion_tokens"],
                cost_usd=e.get("cost_usd"),
                seconds=e.get("latency_s") or 0.0,
                estimated=bool(e.get("usage_estimated")),
                cached_tokens=e.get("cached_tokens") or 0,
                content=e.get("reply") or "",
                finish_reason=e.get("finish_reason"),
                max_tokens=e.get("max_tokens") or 0,
            )
            for e in events
            if e["event"] == "call"
        ]
        return AgentReply(
            run_id=request.run_id,
            message_id=f"{request.message_id}.reply",
            causation_id=request.message_id,
            role=request.role,
            kind="stop" if stop else "reply",
            content=calls[-1].content if calls else "",
            tokens_in=sum(c.tokens_in for c in calls),
            tokens_out=sum(c.tokens_out for c in calls),
            model=calls[-1].model if calls else settings_model(request, self.role),
            seconds=round(sum(c.seconds for c in calls), 3),
            calls=calls,
            writes=writes,
            events=events,
            stop_reason=stop.stop_reason if stop else None,
            stop_detail=stop.detail if stop else None,
            estimate_scale=llm.scale() if llm is not None else request.spent.estimate_scale,
            request_digest=digest(request.role, request.state),
        )


def settings_model(request: Request, role: str) -> str:
    return DEMO_MODEL if request.demo else request.models.get(role) or request.default_model


# -- The orchestrator's side: a gateway whose agents are services ----------------


class RemoteGateway(LLM):
    """The chapter's gateway for the orchestrator, with one more step: ``remote(role, state)``.

    It sends the state to the role's service, waits within the run's time limit, checks the
    reply is the answer to that request, counts its calls in the ledger, writes its events
    into this run's trace and its writes into the state. ``record`` also saves the run
    (task, settings, state) after each step, so ``--resume`` can continue it. Message ids are
    ``<run id>.<step>``: a resumed run sends the same ids, and steps already answered come
    back from the broker's reply store without a new call.
    """

    def __init__(
        self,
        settings: Settings,
        display: Display,
        trace: Trace,
        bus: BusBase,
        *,
        budget: BatchBudget | None = None,
        resumed: int = 0,
    ):
        super().__init__(settings, display, trace)
        self.bus, self.budget, self.resumed = bus, budget, resumed
        self.step, self.replayed, self.cause = 0, 0, trace.run_id
        self.saved_task: str | None = None

    @property
    def run_id(self) -> str:
        return self.trace.run_id

    def remote(self, role: str, state: SharedState) -> Reply | None:
        """One agent's step, run by its service; StopRun if the service, the broker or a gate stops the run."""
        s, (tokens, usd) = self.settings, self.spent()
        if s.timeout is not None and self.elapsed() >= s.timeout:
            raise BudgetExhausted("timeout", f"{s.timeout:g}s time limit reached")
        self.step += 1
        msg_id = f"{self.run_id}.{self.step}"
        allowance, allowance_usd = s.max_tokens - tokens["total"], None  # the run's own limits travel in limits
        held: tuple[int, float] = (0, 0.0)
        if self.budget is not None:  # the batch's ceilings: reserve this step's worst case before sending it
            worst = STEP_RESERVE * (
                estimate_text_tokens(json.dumps(state_to_json(state))[:PROMPT_MAX_CHARS]) + role_cap(role)
            )
            allowance, held_tokens, held_usd = self.budget.reserve(
                0, min(allowance, worst), price_for(s.model_for(role))
            )
            held = (held_tokens, held_usd)
            if self.budget.max_cost is not None:
                allowance_usd = held_usd
        request = Request(
            run_id=self.run_id,
            message_id=msg_id,
            causation_id=self.cause,
            role=role,  # type: ignore[arg-type]
            state=state_to_json(state),
            default_model=s.default_model,
            models=dict(s.models),
            demo=s.demo,
            demo_scenario=s.demo_scenario,
            limits=Limits(
                max_iterations=s.max_iterations,
                max_tokens=s.max_tokens,
                max_plans=s.max_plans,
                max_cost=s.max_cost,
                timeout=s.timeout,
            ),
            spent=Spent(
                prompt=tokens["prompt"],
                completion=tokens["completion"],
                cost_usd=usd,
                seconds=round(self.elapsed(), 3),
                calls={r: stats.calls for r, stats in self.ledger.roles.items()},
                estimate_scale=self._estimate_scale,
            ),
            allowance=max(0, allowance),
            allowance_usd=allowance_usd,
        )
        model = s.model_for(role)
        try:
            with telemetry.span(f"invoke_agent {role}", telemetry.agent_attributes("invoke_agent", role, model)) as add:
                reply, replayed = self.exchange(request)
                add(telemetry.agent_attributes("invoke_agent", role, reply.model, reply.tokens_in, reply.tokens_out))
            self.cause = msg_id
            return self.apply(reply, state, replayed)  # counts the reply's calls in the ledger, a stop reply's too
        finally:
            if self.budget is not None:  # settled after apply(): only then are the step's calls in the ledger
                spent_now = self.spent()
                self.budget.settle(
                    held,
                    spent_now[0]["total"] - tokens["total"],
                    None if spent_now[1] is None or usd is None else spent_now[1] - usd,
                )

    def exchange(self, request: Request) -> tuple[AgentReply, bool]:
        """Send the request and wait for its reply, within the run's time limit; StopRun when none can come."""
        s, role = self.settings, request.role
        wait = REPLY_WAIT_S if s.timeout is None else max(0.1, s.timeout - self.elapsed())
        try:
            payload, headers = self.bus.request(role, request.model_dump_json().encode(), request.message_id, wait)
        except BusTimeout:
            if s.timeout is not None and self.elapsed() >= s.timeout - 0.2:
                raise BudgetExhausted(
                    "timeout", f"{s.timeout:g}s time limit reached: no {role} service answered"
                ) from None
            raise ModelUnavailable(
                "api_error", f"no {role} service answered within {wait:g}s: is one running?"
            ) from None
        except AgentError as err:
            raise StopRun("crashed", str(err)) from None
        except BusError as err:
            raise ModelUnavailable("api_error", str(err)) from None
        replayed = headers.get(REPLAYED) == "1"
        try:
            reply: AgentReply = parse(AgentReply, payload)
        except Refused as refusal:
            log.warning("run %s: refused the %s's reply to %s: %s", self.run_id, role, request.message_id, refusal)
            raise ModelUnavailable("api_error", f"the {role} service's reply was refused: {refusal}") from None
        problem = self.mismatch(reply, request)
        if problem:
            log.warning("run %s: refused the %s's reply to %s: %s", self.run_id, role, request.message_id, problem)
            if replayed and problem.startswith("it answers a different request"):
                raise StopRun(
                    "replay_mismatch",
                    f"step {self.step} of the saved run sent a different request: was the code changed?",
                )
            raise ModelUnavailable("api_error", f"the {role} service's reply was refused: {problem}")
        return reply, replayed

    def mismatch(self, reply: AgentReply, request: Request) -> str | None:
        """Why a reply is not the answer to this request of this run, or None."""
        if (reply.run_id, reply.causation_id, reply.role) != (request.run_id, request.message_id, request.role):
            return f"it answers {reply.role} {reply.causation_id} of run {reply.run_id}"
        if reply.request_digest != digest(request.role, request.state):
            return "it answers a different request with the same id"
        if bad := set(reply.writes) - WRITES[request.role]:
            return f"the {request.role} may not write {', '.join(sorted(bad))}"
        if bad_events := {e.get("event") for e in reply.events} - EVENTS:
            return f"unknown trace events {sorted(map(str, bad_events))}"
        if reply.kind == "stop" and reply.stop_reason not in STOPS_A_SERVICE_MAY_SAY:
            return f"a stop reason a service may not give: {reply.stop_reason}"
        return None

    def apply(self, reply: AgentReply, state: SharedState, replayed: bool) -> Reply | None:
        """Count the reply's calls, write its events into the trace and its writes into the state."""
        for call in reply.calls:  # counted first: tokens a service spent are spent, even if its writes are refused
            self.ledger.add(
                reply.role,
                call.tokens_in,
                call.tokens_out,
                call.cost_usd,
                call.seconds,
                call.estimated,
                call.cached_tokens,
            )
        self._estimate_scale = max(self._estimate_scale, reply.estimate_scale)
        merged = state_to_json(state)
        for key, value in reply.writes.items():
            merged[key] = merged["history"] + value if key == "history" else value
        try:
            new = state_from_json(merged)
        except Refused as refusal:
            log.warning(
                "run %s: refused the %s's reply to %s: %s", self.run_id, reply.role, reply.causation_id, refusal
            )
            raise ModelUnavailable("api_error", f"the {reply.role} service's reply was refused: {refusal}") from None
        for event in reply.events:
            fields = {k: v for k, v in event.items() if k not in ("event", "ts", "run_id")}
            self.trace.event(event["event"], **fields)
            if event["event"] == "warning":
                self.display.warn(str(fields.get("message")))
            elif event["event"] == "call":
                self.display.prompt(reply.role, fields.get("prompt") or [], fields.get("max_tokens") or 0)
        if replayed:
            self.replayed += 1
            self.display.note(f"{reply.role}: the saved reply to step {self.step} (no new call)")
        self._check_budget_share()
        state.update(new)
        if reply.kind == "stop":
            kind = (
                BudgetExhausted if reply.stop_reason in ("token_budget", "cost_budget", "timeout") else ModelUnavailable
            )
            raise kind(reply.stop_reason or "api_error", reply.stop_detail or "")
        if not reply.calls:
            return None
        last = reply.calls[-1]
        message = {"role": "assistant", "content": last.content}
        return Reply(
            reply.role, last.model, last.content, message, [], last.tokens_in, last.tokens_out, last.estimated,
            last.cost_usd, last.seconds, last.finish_reason, last.max_tokens, last.cached_tokens,
        )  # fmt: skip

    def record(self, event: str, state: SharedState, **details: Any) -> None:
        if event in ("step", "escalation", "end"):  # saved first: a warning that it failed goes before the end
            self.save(state)
        super().record(event, state, **details)
        if event == "start":  # said in the trace, after its start event: where the agents ran
            self.trace.event("services", bus=self.bus.url, resumed_after_step=self.resumed)
            if self.resumed:
                self.warn(f"resumed run {self.run_id}: {self.resumed} saved step(s) come from the reply store")
            self.save(state)

    def save(self, state: SharedState) -> None:
        """The run after its latest step, in the key-value store; a broker that is gone only costs a warning."""
        s, (tokens, usd) = self.settings, self.spent()
        record = {
            "run_id": self.run_id,
            "task": state["task"],
            "step": self.step,
            "settings": {
                "default_model": s.default_model,
                "models": s.models,
                "demo": s.demo,
                "demo_scenario": s.demo_scenario,
                "max_iterations": s.max_iterations,
                "max_tokens": s.max_tokens,
                "max_plans": s.max_plans,
                "max_cost": s.max_cost,
                "timeout": s.timeout,
            },
            "state": state_to_json(state),
            "spent": {"tokens": tokens, "cost_usd": usd, "calls": self.ledger.calls},
            "trace": str(self.trace.path) if self.trace.path else None,
            "saved": datetime.now(timezone.utc).isoformat(),
        }
        try:
            self.bus.kv_put(RUNS, self.run_id, json.dumps(record, default=str).encode())
        except (BusError, OSError) as err:
            self.warn(f"the run's state could not be saved ({err}); its trace keeps what happened")


STOPS_A_SERVICE_MAY_SAY = {"token_budget", "cost_budget", "timeout", "config_error", "api_error", "stopped_by_user"}


def load_run(bus: BusBase, run_id: str) -> dict[str, Any]:
    """A saved run, or BusError saying why it cannot be resumed."""
    raw = bus.kv_get(RUNS, run_id)
    if raw is None:
        raise BusError(f"no saved run {run_id} at {bus.url} (a run without --broker is saved under --log-dir)")
    saved: dict[str, Any] = json.loads(raw)
    if saved["state"].get("status") == "approved":
        raise BusError(f"run {run_id} was approved already: nothing to resume")
    return saved


def saved_settings(saved: dict[str, Any], settings: Settings) -> Settings:
    """The settings a run was started with (its limits and models); the model server and key are today's."""
    return dataclasses.replace(settings, **saved["settings"])
