"""--compare: one plain call with the task alone, made before the loop, measured the same way."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

from rich.console import Console

import multi_agent_system as mas
from conftest import FakeClient, completion, output, verdict
from machinery.cli import main
from machinery.compare import SINGLE
from machinery.gateway import estimate_tokens

TASK = "Write a haiku about agents"


def loop_replies() -> dict[str, list]:
    return {
        "planner": [completion("1. Write the haiku.")],
        "worker": [completion("Agents hand off work\nlines pass from one desk to next\nthe critic nods yes")],
        "critic": [verdict(True, "Good.")],
    }


def run(console: Console, client: FakeClient, *flags: str) -> int:
    return main([TASK, "--json", "--compare", *flags], console=console, client=client)


def test_the_plain_call_comes_first_with_the_task_alone_and_the_workers_cap(console, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    client = FakeClient(single=[completion("Sure, here is a haiku:\nOne\nTwo\nThree")], **loop_replies())
    assert run(console, client) == mas.EXIT_APPROVED
    first = client.calls[0]
    assert client.roles()[0] == SINGLE
    assert first["messages"] == [{"role": "user", "content": TASK}]
    settings = mas.Settings()
    cap = mas.completion_allowance("worker", estimate_tokens(first["messages"]), 0, 0.0, 0.0, None, settings)
    assert first["max_tokens"] == cap


def test_the_loops_ledger_is_its_own_and_the_plain_answer_loses_its_opener(console, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    client = FakeClient(single=[completion("Sure, here is a haiku:\nOne\nTwo\nThree")], **loop_replies())
    run(console, client)
    shown = json.loads(output(console))
    both = shown["compare"]
    assert both["single"]["result"] == "One\nTwo\nThree"
    assert both["single"]["calls"] == 1
    assert shown["calls"] == both["loop"]["calls"] == len(client.calls) - 1  # the plain call is not the loop's


def test_the_plain_answer_is_cut_to_a_count_as_the_workers_drafts_are(console, monkeypatch) -> None:
    """Code's cuts cost no call: they are not the loop's to claim over the plain call."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    client = FakeClient(single=[completion("One line\nTwo lines\nThree lines\n\nA fourth\nA fifth")], **loop_replies())
    run(console, client)
    single = json.loads(output(console))["compare"]["single"]
    assert single["result"] == "One line\nTwo lines\nThree lines" and not single["failed"]
    assert single["mended"] == "kept the first 1 of 2 stanzas (3 lines)"


def test_a_failed_plain_call_is_one_warning_and_the_loop_still_runs(console, monkeypatch) -> None:
    import openai

    class Refused(openai.BadRequestError):  # a server's 400, without building an HTTP response
        def __init__(self) -> None:
            Exception.__init__(self, "context too long")
            self.message, self.status_code, self.body = str(self), 400, None

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    client = FakeClient(single=[Refused()], **loop_replies())
    assert main([TASK, "--compare"], console=console, client=client) == mas.EXIT_APPROVED
    shown = output(console)
    assert "the plain call for --compare failed" in shown
    assert "Traceback" not in shown


def test_ctrl_c_during_the_plain_call_is_one_line_and_the_interrupted_code(console, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    client = FakeClient(single=[KeyboardInterrupt()], **loop_replies())
    assert main([TASK, "--compare"], console=console, client=client) == mas.EXIT_INTERRUPTED
    shown = output(console)
    assert "interrupted during the plain call for --compare" in shown
    assert client.roles() == [SINGLE]  # the loop never started
    assert "Traceback" not in shown


def test_the_plain_call_has_a_budget_of_its_own(console, monkeypatch, tmp_path: Path) -> None:
    # the loop's budget is untouched by the plain call: every call of the loop is allowed what it is without it
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    alone = FakeClient(**loop_replies())
    main([TASK, "--json", "--max-tokens", "1500"], console=Console(file=None, quiet=True), client=alone)
    big = completion("Sure:\n" + "word " * 50, prompt_tokens=100, completion_tokens=900)
    client = FakeClient(single=[big], **loop_replies())
    run(console, client, "--max-tokens", "1500")
    shown = json.loads(output(console))
    assert shown["compare"]["single"]["tokens"] == 1000

    def allowed(fake: FakeClient) -> list[tuple[str, int]]:
        return [
            (role, call["max_tokens"]) for role, call in zip(fake.roles(), fake.calls, strict=True) if role != SINGLE
        ]

    assert allowed(client) == allowed(alone)  # had they shared a budget, the loop would have 1,000 fewer tokens


def test_a_bug_in_a_batch_tasks_plain_call_ends_that_task_alone(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from machinery.batch import run_batch

    class Broken:  # not an SDK client: it raises what no handler expects
        chat = SimpleNamespace(
            completions=SimpleNamespace(create=lambda **_: (_ for _ in ()).throw(RuntimeError("bug")))
        )

    outcomes = run_batch(["a", "b"], mas.Settings(log_dir=tmp_path), Broken, concurrency=1, compare=True)
    assert [o.summary["stop_reason"] for o in outcomes] == ["crashed", "crashed"]
    assert all("RuntimeError: bug" in o.summary["stop_detail"] for o in outcomes)


def test_a_crashed_batch_task_counts_what_its_plain_call_spent(tmp_path: Path) -> None:
    from machinery.batch import run_batch

    client = FakeClient(single=[completion("One\nTwo\nThree", prompt_tokens=40, completion_tokens=8)])

    def crashing_loop(task: str, llm: object) -> mas.SharedState:
        raise RuntimeError("a bug in the loop")

    settings = mas.Settings(log_dir=tmp_path)
    (outcome,) = run_batch(["a"], settings, lambda: client, concurrency=1, compare=True, loop=crashing_loop)
    assert outcome.summary["stop_reason"] == "crashed"
    assert (outcome.summary["calls"], outcome.summary["total_tokens"]) == (1, 48)  # the plain call, paid for


def test_ctrl_c_after_the_plain_call_does_not_blame_it(monkeypatch, tmp_path: Path) -> None:
    class Interrupted(Console):
        def print_json(self, *args: object, **kwargs: object) -> None:
            raise KeyboardInterrupt  # Ctrl-C while the report is written

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    console = Interrupted(file=StringIO(), width=120)
    client = FakeClient(single=[completion("One\nTwo\nThree")], **loop_replies())
    assert run(console, client) == mas.EXIT_INTERRUPTED
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "interrupted; the trace is kept in" in shown and "plain call" not in shown
