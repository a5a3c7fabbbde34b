"""Shared test fixtures: a fake OpenAI client, a network guard, captured output.

Every test runs offline and without a key. The fake client hands back real
``openai`` response objects from scripted queues (one queue, or one per role),
records every request, and fails the test loudly when the code asks for more
replies than the test scripted.

Tests of the loop build their queues and expected numbers from the chapter's
constants (``per_role``, ``ladder``), so a student who changes a limit,
rewords a prompt or adds an agent breaks only the tests about that change.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from openai.types.chat import ChatCompletion
from rich.console import Console

import multi_agent_system as mas
from machinery.demo import completion_body
from machinery.gateway import LLM, ROLE_HEADER, estimate_tokens, request_role
from machinery.output import Display, Mode, Trace


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A docstring's worked example quotes the code as shipped, as the documents do: it is marked ``docs``
    too, so that ``-m "not docs"`` leaves it out while a student edits a constant or a prompt."""
    for item in items:
        if isinstance(item, pytest.DoctestItem):
            item.add_marker(pytest.mark.docs)


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real network, no real key, no stray .env: only loopback sockets may connect."""
    real_connect = socket.socket.connect

    def guarded_connect(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if sock.family == socket.AF_UNIX or host in LOOPBACK:
            return real_connect(sock, address)
        raise AssertionError(f"a test tried to reach the network: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", *(role.env for role in mas.ROLES.values())):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # traces land in tmp_path/logs, and no .env is found


class FakeClient:
    """Stands in for ``openai.OpenAI``: replies come from scripted queues.

    Two forms:

    ``FakeClient(r1, r2, ...)``
        one queue, answered in call order whoever asks (stage 3's tests use this);
    ``FakeClient(planner=[...], worker=[...], critic=[...])``
        one queue per role, chosen by the request's role header (``request_role``).
        A role whose queue runs dry fails the test, naming the role and the call;
        ``critic=[]`` therefore means "the critic must not be called". A role given
        no queue at all (an agent a student added, say "researcher") gets the
        labelled reply ``"(fake <role> reply)"``, recorded in ``defaulted``, so
        adding an agent does not break the tests of the others. Its usage is
        honest (the prompt counted as the gateway estimates it), so the extra
        call does not teach the gateway to scale up every later estimate.

    Queue items are ChatCompletion objects (see ``completion``), exceptions,
    which are raised as the server's answer, or callables that get the request
    and return either (for a reply that depends on what was spent before it).
    ``calls`` records every request.
    """

    def __init__(self, *replies: Any, **by_role: list[Any]):
        if replies and by_role:
            raise TypeError("FakeClient takes one queue of replies or one queue per role, not both")
        self.queue = list(replies)
        self.by_role = {role: list(queue) for role, queue in by_role.items()} if by_role else None
        self.calls: list[dict[str, Any]] = []
        self.defaulted: list[str] = []  # roles that had no queue, once per call they made
        self.chat = self
        self.completions = self

    def create(self, **request: Any) -> Any:
        self.calls.append(request)
        item = self._next(request)
        if callable(item) and not isinstance(item, BaseException):
            item = item(request)
        if isinstance(item, BaseException):
            raise item
        return item

    def _next(self, request: dict[str, Any]) -> Any:
        number, role = len(self.calls), request_role(request)
        if self.by_role is None:
            if not self.queue:
                first = request["messages"][0]["content"][:60]
                raise AssertionError(f"FakeClient: unexpected call #{number} from {role!r} (first message {first!r}…)")
            return self.queue.pop(0)
        if role is None:
            raise AssertionError(f"FakeClient: call #{number} has no {ROLE_HEADER} header, so no role to answer")
        if role not in self.by_role:
            self.defaulted.append(role)
            return default_reply(role, request)
        queue = self.by_role[role]
        if not queue:
            raise AssertionError(
                f"FakeClient: the {role}'s call {self.roles().count(role)} (call #{number} in all) "
                f"has no scripted reply: the {role} queue ran dry"
            )
        return queue.pop(0)

    def roles(self, *only: str) -> list[str]:
        """Which agent made each call, read from the role header; ``only`` keeps just those roles."""
        seen = [request_role(call) or "?" for call in self.calls]
        return [role for role in seen if role in only] if only else seen

    def calls_of(self, role: str) -> list[dict[str, Any]]:
        """The requests one role sent, in order."""
        return [call for call in self.calls if request_role(call) == role]


LOOP_ROLES = ("planner", "worker", "critic")  # the chapter's own agents; tests of the loop follow only these


def interruptible() -> None:
    """For ``preexec_fn``: a child that ctrl-c reaches, as a terminal's would. A test runner started in the
    background (``cmd &`` in a script) ignores SIGINT, its children inherit that, and Python keeps it ignored."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def per_role(verdicts: list[bool], plans: int) -> dict[str, list[Any]]:
    """Per-role queues for a run: ``plans`` plans, one draft per verdict, the critic's verdicts in order."""
    return {
        "planner": [completion(f"1. Step one of plan {n}.") for n in range(1, plans + 1)],
        "worker": [completion(f"draft {n}") for n in range(1, len(verdicts) + 1)],
        "critic": [verdict(ok, f"feedback {n}") for n, ok in enumerate(verdicts, 1)],
    }


@dataclass(frozen=True)
class Ladder:
    rounds: int  # worker+critic rounds
    plans: int
    stop_reason: str


def ladder(verdicts: list[bool], max_plans: int | None = None, max_iterations: int | None = None) -> Ladder:
    """What the escalation ladder promises for a critic that gives ``verdicts`` (then "no" for ever).

    Worked out from the rules, not by running the loop: each plan gets
    REJECTIONS_BEFORE_REPLAN rounds; round k runs under plan ceil(k / R); after
    max_plans plans are rejected the run gives up, and no round starts past
    max_iterations (give_up is decided first when both fall on the same round).
    """
    per_plan = mas.REJECTIONS_BEFORE_REPLAN
    max_plans = mas.MAX_PLANS if max_plans is None else max_plans
    max_iterations = mas.MAX_ITERATIONS if max_iterations is None else max_iterations
    last_round = min(max_iterations, max_plans * per_plan)
    if True in verdicts and verdicts.index(True) + 1 <= last_round:
        rounds, reason = verdicts.index(True) + 1, "approved"
    else:
        rounds = last_round
        reason = "escalation_exhausted" if max_plans * per_plan <= max_iterations else "max_iterations"
    return Ladder(rounds, math.ceil(rounds / per_plan), reason)


def completion(
    text: str | None = "ok",
    prompt_tokens: int | None = 100,
    completion_tokens: int | None = 20,
    model: str = "gpt-4o-mini",
    **kwargs: Any,
) -> Any:
    usage = None if prompt_tokens is None else (prompt_tokens, completion_tokens or 0)
    body = completion_body(text, model=model, usage=usage, **kwargs)
    return ChatCompletion.model_validate(body)  # a real SDK object, as a server's reply becomes


def default_reply(role: str, request: dict[str, Any]) -> Any:
    """What an agent no test scripted gets: a labelled reply whose prompt is counted as the gateway estimates it."""
    return completion(f"(fake {role} reply)", estimate_tokens(request["messages"]), 20)


def verdict(approved: bool, feedback: str = "Fix the ending.") -> Any:
    return completion(f'{{"approved": {str(approved).lower()}, "feedback": "{feedback}"}}')


def patch_everywhere(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, value: Any) -> None:
    """Replace ``module.name`` and every copy of it that another of our modules imported by name."""
    import sys

    original = getattr(module, name)
    for loaded in list(sys.modules.values()):
        home = getattr(loaded, "__name__", "")
        if home.split(".")[0] in ("multi_agent_system", "machinery", "stages", "bench") and (
            getattr(loaded, name, None) is original
        ):
            monkeypatch.setattr(loaded, name, value)


@pytest.fixture
def console() -> Console:
    return Console(file=StringIO(), width=120, color_system=None)


def output(console: Console) -> str:
    return console.file.getvalue()  # type: ignore[attr-defined]


@pytest.fixture
def make_llm(tmp_path: Path, console: Console) -> Callable[..., LLM]:
    """Build an LLM around a client, with captured output and a trace in tmp_path."""

    def build(client: Any, mode: Mode = "normal", **settings: Any) -> LLM:
        settings.setdefault("default_model", "gpt-4o-mini")
        trace = Trace(tmp_path / "trace.jsonl", "test-run")
        return LLM(mas.Settings(**settings), Display(console, mode), trace, client=client)

    return build


ROOT = Path(__file__).resolve().parent.parent


def tool(name: str) -> Any:
    """A module of tools/, imported by name (tools/ is a folder of scripts, not a package)."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "tools"))


@functools.cache
def shipped(relative: str) -> ModuleType:
    """A module of ours as shipped: its text at git HEAD, loaded apart from the file a student may be editing.

    Tests about what the starter does *as shipped* (it fails every build task of the checker, say) run on
    this copy, so a student who edits the starter as EXERCISE.md asks breaks none of them. Outside a git
    checkout, or for a file not yet committed, the file itself is loaded. The copy is a module of its own
    (``shipped_<stem>``), imported once; monkeypatch it as you would the real one.
    """
    shown = subprocess.run(["git", "show", f"HEAD:{relative}"], cwd=ROOT, capture_output=True, check=False)
    source = shown.stdout if shown.returncode == 0 and shown.stdout else (ROOT / relative).read_bytes()
    name = f"shipped_{Path(relative).stem}"
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(ROOT / relative))
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(ROOT / relative)
    sys.modules[name] = module  # dataclasses and pydantic look their module up while the class is built
    exec(compile(source, str(ROOT / relative), "exec"), module.__dict__)
    return module


def shipped_starter() -> ModuleType:
    """The stage 3 exercise's starter as shipped (see ``shipped``)."""
    return shipped("stages/stage3/activity/starter_workflow.py")
