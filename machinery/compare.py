"""--compare: the task sent once, unplanned and unreviewed, beside the loop. Is one agent enough?

Before the loop runs, the worker's model gets the task alone: no plan, no
critic, no second try. Code measures that answer with the same checks it
applies to the loop's result, and at the end both are shown side by side:
checks passed, the critic's view, calls, tokens, seconds and cost. The plain
call has its own ledger, so it never eats the loop's budget, and it is in the
trace like any call (role ``single``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from machinery.checks import cleaned
from machinery.finder import requirements_from_task
from machinery.gateway import LLM
from machinery.output import Display, Trace
from machinery.prices import format_cost
from machinery.repairs import MENDED, repaired
from multi_agent_system import Settings, SharedState, StopRun, completion_allowance, measure_draft, user

if TYPE_CHECKING:
    from rich.table import Table

SINGLE = "single"  # the plain call's role; it uses the worker's model


def checked(task: str, text: str) -> dict[str, Any]:
    """How many of the task's checks ``text`` passes: the same measure for the plain call and the loop."""
    checks = measure_draft(text, requirements=requirements_from_task(task))["checks"]
    passed = [c for c in checks if c["passed"]]
    return {"passed": len(passed), "checks": len(checks), "failed": [c["measured"] for c in checks if not c["passed"]]}


def plain_call(task: str, settings: Settings, display: Display, trace: Trace, client: Any) -> dict[str, Any]:
    """One call with the task alone, made before the loop's gateway exists (so its clock, budget and ledger
    are the loop's own), through a gateway of its own with the same client, trace and settings.

    It may write as much as the worker may (the worker's cap, under the same budget gate), and code does to
    its answer what it does to the worker's drafts before measuring it: an opening "Sure, here is...:" line
    taken off, a fence around it when the task forbids fences, and a cut to a count it is over
    (machinery/repairs.py). The cuts cost no call, so they are not the loop's to claim.
    """
    settings = replace(settings, models={**settings.models, SINGLE: settings.model_for("worker")})
    alone = LLM(settings, display, trace, client=client)
    messages = [user(task)]
    try:
        limit = completion_allowance("worker", alone.estimate(messages), 0, 0.0, 0.0, alone.price(SINGLE), settings)
        reply = alone.complete(SINGLE, messages, max_tokens=limit)
    except StopRun as halt:  # the loop meets the same server next, and stops with its own reason
        alone.warn(f"the plain call for --compare failed: {halt.detail}")
        return {"result": None, "error": halt.detail, "calls": alone.ledger.calls, "tokens": alone.ledger.total_tokens}
    needs = requirements_from_task(task)
    text = cleaned(reply.content, task=task, requirements=needs)
    fix = repaired(text, needs) if reply.finish_reason != "length" else None
    if fix:
        text = fix.draft
        alone.warn(f"{MENDED} of the plain call: {fix.how}")
    if display.chatty:
        display.step("One plain call, for --compare (no plan, no critic)", text, reply, "blue")
    return {
        "result": text,
        **checked(task, text),
        "cut_off": reply.finish_reason == "length",
        "mended": fix.how if fix else None,
        "calls": 1,
        "tokens": reply.tokens,
        "seconds": round(reply.seconds, 3),
        "cost_usd": reply.cost_usd,
    }


def side_by_side(task: str, single: dict[str, Any], state: SharedState, llm: LLM) -> dict[str, Any]:
    """Both results, measured the same way: for --json, the batch's results and the table."""
    ledger = llm.ledger
    loop = {
        "result": state["result"],
        **checked(task, state["result"] or ""),
        "approved": state["status"] == "approved",
        "stop_reason": state["stop_reason"],
        "calls": ledger.calls,
        "tokens": ledger.total_tokens,
        "seconds": round(ledger.seconds, 3),
        "cost_usd": ledger.cost_usd,
    }
    return {"single": single, "loop": loop}


def compare_table(both: dict[str, Any]) -> Table:
    from rich.table import Table

    single, loop = both["single"], both["loop"]
    table = Table(title="One plain call beside the loop (--compare)")
    for column in ("", "one plain call", "the loop"):
        table.add_column(column, justify="left" if not column else "right")

    def passed(side: dict[str, Any]) -> str:
        return "error" if side.get("result") is None else f"{side['passed']} of {side['checks']}"

    critic = "approved" if loop["approved"] else f"not approved ({loop['stop_reason']})"
    table.add_row("checks passed", passed(single), passed(loop))
    table.add_row("the critic's view", "not reviewed", critic)
    table.add_row("calls", str(single["calls"]), str(loop["calls"]))
    table.add_row("tokens", f"{single['tokens']:,}", f"{loop['tokens']:,}")
    table.add_row("seconds", f"{single.get('seconds', 0.0):.1f}", f"{loop['seconds']:.1f}")
    table.add_row("cost", format_cost(single.get("cost_usd")), format_cost(loop["cost_usd"]))
    return table
