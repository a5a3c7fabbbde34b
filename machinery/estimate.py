"""--estimate: what one run (or each task of a batch) can spend under its limits, before it spends anything."""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from machinery.config import load_env_file, read_batch, settings_from_args
from machinery.gateway import estimate_text_tokens
from machinery.output import Display
from machinery.prices import format_cost, price_for
from multi_agent_system import (
    BYTES_PER_TOKEN_MOST,
    CLIP_CHARS,
    CRITIC_FORMAT,
    CRITIC_PROMPT,
    DRAFT_MAX_CHARS,
    EARLIER_PLANS_SHOWN,
    EXIT_APPROVED,
    EXIT_USAGE,
    OWN_FEEDBACK_SHOWN,
    PLANNER_PROMPT,
    PROMPT_MAX_CHARS,
    REJECTIONS_BEFORE_REPLAN,
    ROLES,
    SYSTEM_PROMPT_MAX_CHARS,
    TASK_MAX_CHARS,
    WORKER_PROMPT,
    Settings,
    UsageError,
    role_cap,
    system,
    user,
)

if TYPE_CHECKING:
    from rich.table import Table


@dataclass(frozen=True)
class Spend:
    """Calls, tokens and dollars; ``usd`` is None when a model's price is unknown."""

    calls: int
    tokens: int
    usd: float | None


def call_bounds(settings: Settings) -> dict[str, tuple[int, int]]:
    """Fewest and most calls per role. Fewest: approved on the first draft. Most: the whole ladder,
    one planner call per plan (code writes the plan that replaces an unusable reply), the worker and the
    critic asked twice a round (a repeated draft; a rejection asked again).

    >>> call_bounds(Settings(max_iterations=10, max_plans=3))
    {'planner': (1, 3), 'worker': (1, 11), 'critic': (1, 12)}
    """
    rounds = min(settings.max_iterations, settings.max_plans * REJECTIONS_BEFORE_REPLAN)
    plans = min(settings.max_plans, math.ceil(rounds / REJECTIONS_BEFORE_REPLAN))
    # a worker that repeats a rejected draft is asked once more (not in the first round); the critic is asked
    # twice in a round whose rejection disputes code or names no fault (judge_again())
    bounds = {"planner": (1, plans), "worker": (1, 2 * rounds - 1), "critic": (1, 2 * rounds)}
    # an agent a student adds (EXPERIMENTS.md, experiment 13) may be called anywhere: at most once a round
    return bounds | {role: (0, rounds) for role in ROLES if role not in bounds}


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
            math.ceil(len(m["content"].encode()) / BYTES_PER_TOKEN_MOST) for m in first_prompts.get(role, [])
        )
        again = role_cap(role) + 200 if role == "critic" else 0  # judge_again() re-reads its reply, and a note
        prompt_cap = estimate_text_tokens("x" * largest_prompt.get(role, PROMPT_MAX_CHARS)) + again
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


def cost_range(low: Spend, high: Spend) -> str:
    """ "$0.000050-$0.0209", or "cost unknown" once, when a model has no price."""
    if low.usd is None or high.usd is None:
        return format_cost(None)
    return f"{format_cost(low.usd)}-{format_cost(high.usd)}"


def preview_line(preview: dict[str, tuple[Spend, Spend]]) -> str:
    """The banner's one line: the run's fewest and most calls, tokens and dollars."""
    low, high = preview["total"]
    return f"can spend: {low.calls}-{high.calls} calls, ~{low.tokens:,}-{high.tokens:,} tokens, {cost_range(low, high)}"


def preview_table(preview: dict[str, tuple[Spend, Spend]], settings: Settings) -> Table:
    """Per role: the model, and the fewest and most calls, tokens and dollars. Narrow enough for 80
    columns with a long local model name; a name longer still folds onto a second line, never the numbers."""
    from rich import box
    from rich.table import Table

    title = f"What one run can spend (--max-tokens {settings.max_tokens:,})"
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for column in ("role", "model", "calls", "tokens", "cost"):
        left = column in ("role", "model")
        table.add_column(column, justify="left" if left else "right", overflow="fold", no_wrap=column != "model")
    for role, (low, high) in preview.items():
        model = "" if role == "total" else settings.models.get(role) or settings.default_model
        table.add_row(
            role,
            model,
            f"{low.calls}-{high.calls}",
            f"~{low.tokens:,}-{high.tokens:,}",
            cost_range(low, high),
            style="bold" if role == "total" else None,
        )
    return table


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
    display.line("fewest: approved at the first draft (prompts as estimated, replies not counted)", "dim")
    display.line("most: every rung of the ladder at the largest prompts, capped by the budgets", "dim")
    return EXIT_APPROVED
