"""--batch: many tasks at once, sharing one key, one budget and one rate limit.

Each task is an ordinary run of the chapter's ``orchestrate``, with its own
gateway, ledger and trace; a ``GatedClient`` in front of the shared client makes
every call reserve from the batch's budget and wait for the rate limit first.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from machinery.compare import plain_call, side_by_side
from machinery.config import check_output_path, load_env_file, read_batch, settings_from_args
from machinery.demo import ScriptedClient, demo_script
from machinery.estimate import preview_line, spend_preview, used_models
from machinery.gateway import LLM, estimate_text_tokens, estimate_tokens, openai_client, openai_sdk
from machinery.output import Display, Trace, new_run_id, run_summary
from machinery.prices import format_cost, price_for
from machinery.text import first_line, fit_parts, shorten
from multi_agent_system import (
    EXIT_APPROVED,
    EXIT_INTERRUPTED,
    EXIT_NOT_APPROVED,
    EXIT_USAGE,
    MIN_USEFUL_COMPLETION,
    BudgetExhausted,
    Price,
    Settings,
    SharedState,
    StopRun,
    UsageError,
    orchestrate,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

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
    openai = openai_sdk()
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


def run_batch(
    tasks: Sequence[str],
    settings: Settings,
    make_client: Callable[[], Any],
    *,
    concurrency: int = BATCH_CONCURRENCY,
    budget: BatchBudget | None = None,
    limit: RateLimit | None = None,
    on_done: Callable[[BatchOutcome], None] = lambda outcome: None,
    compare: bool = False,
    gateway: Callable[[Settings, Display, Trace], LLM] | None = None,
    loop: Callable[[str, Any], SharedState] = orchestrate,
) -> list[BatchOutcome]:
    """Run every task through ``orchestrate``, ``concurrency`` at a time, each with its own
    settings, gateway, ledger, trace and run id; they share only the budget and the rate limit.

    Threads are enough: the runs wait on the network, and the SDK client is
    thread-safe. A task that fails, even with a bug, is recorded and the
    others go on. Ctrl-C stops the batch: no new task starts, running tasks
    stop before their next call, and every finished result and trace is kept.
    ``gateway`` and ``loop`` let a variant run its own loop through its own gateway
    (stages/variants/message_passing.py: agents as services, the budget reserved per request).
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    budget, limit = budget or BatchBudget(), limit or RateLimit()
    outcomes: list[BatchOutcome] = []

    def run_one(index: int, task: str) -> BatchOutcome:
        run_id = new_run_id()
        trace = Trace.in_dir(settings.log_dir, run_id)
        quiet = _silent_console()
        display = Display(quiet, "quiet", errors=quiet)
        llm: LLM | None = None
        single: dict[str, Any] | None = None
        try:  # a bug anywhere in a task, its plain --compare call included, ends that task alone
            gate = GatedClient(make_client(), budget, limit) if gateway is None else None
            single = plain_call(task, replace(settings), display, trace, gate) if compare and gate else None
            llm = (  # after the plain call: the loop's clock and ledger are its own
                LLM(replace(settings), display, trace, client=gate)
                if gateway is None
                else gateway(replace(settings), display, trace)
            )
            state = loop(task, llm)
            summary = run_summary(state, llm)
            if single is not None:
                summary["compare"] = side_by_side(task, single, state, llm)
        except Exception as err:  # a bug in one run must not end the others: record it, go on
            summary = {
                "approved": False,
                "stop_reason": "crashed",
                "stop_detail": first_line(f"{type(err).__name__}: {err}"),
            }
            ledger = None if llm is None else llm.ledger
            summary.update(run_id=run_id, trace=str(trace.path), result=None)
            plain = single or {}  # its plain --compare call, if made, was spent from the same budget
            cost, plain_cost = (ledger.cost_usd if ledger else 0.0), plain.get("cost_usd", 0.0)  # None: unknown
            summary.update(
                calls=(ledger.calls if ledger else 0) + plain.get("calls", 0),
                total_tokens=(ledger.total_tokens if ledger else 0) + plain.get("tokens", 0),
                cost_usd=None if cost is None or plain_cost is None else cost + plain_cost,
            )
        finally:
            trace.close()
        summary["seconds"] = round(llm.elapsed(), 3) if llm is not None else 0.0
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

    def line(self, head: str = "") -> str:
        """The progress so far, on one line of the screen: the cost, then the tokens, are left out when it is narrow."""
        done = [head, f"{self.done}/{self.total} tasks done", f"{self.approved} approved"]
        return fit_parts([*done, *self.parts()], self.display.console.width - 1, drop=[4, 3])

    def parts(self) -> list[str]:
        cost = format_cost(self.budget.spent_usd if self.budget.cost_known else None)
        return [f"{self.budget.spent_tokens:,} tokens", cost, f"{self._clock() - self._started:.1f}s"]

    def spending(self) -> str:
        return " · ".join(self.parts())

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
            self.display.line(self.line(f"task {outcome.index}: {s.get('stop_reason')}"), "dim", soft_wrap=True)

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()


TASK_MIN_WIDTH = 12  # the table's task column, however narrow the screen


def batch_table(outcomes: Sequence[BatchOutcome], width: int = 80) -> Table:
    """One row per task. Each task is shortened, after a whole word, to one line of the room the other
    columns leave in ``width`` (the full task is in --json and the trace); numbers are never cut."""
    from rich import box
    from rich.table import Table

    headers = ("#", "task", "stop reason", "calls", "tokens", "cost", "seconds")
    rows = [
        [
            str(o.index),
            o.task,
            str(o.summary.get("stop_reason")),
            str(o.summary.get("calls", 0)),
            f"{'~' if o.summary.get('usage_estimated') else ''}{o.summary.get('total_tokens', 0):,}",
            format_cost(o.summary.get("cost_usd")),
            f"{o.summary.get('seconds', 0.0):.1f}",
        ]
        for o in outcomes
    ]
    others = sum(max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers) if h != "task")
    frame = 3 * len(headers) + 1  # each column's padding either side and a rule between columns, and the edges
    room = max(TASK_MIN_WIDTH, width - others - frame)
    table = Table(title="Batch results", box=box.SIMPLE_HEAD)
    for column in headers:
        table.add_column(column, justify="left" if column in ("task", "stop reason") else "right", no_wrap=True)
    for o, row in zip(outcomes, rows, strict=True):
        row[1] = shorten(row[1], room)
        table.add_row(*row, style="green" if o.summary.get("approved") else None)
    return table


def compare_totals(outcomes: Sequence[BatchOutcome]) -> str:
    """--compare over a batch: how many tasks passed every check, and the tokens, one plain call against the loop."""
    both = [o.summary["compare"] for o in outcomes if "compare" in o.summary]

    def side(name: str) -> str:
        met = sum(1 for b in both if b[name].get("result") is not None and b[name]["passed"] == b[name]["checks"])
        return f"{met} of {len(both)} passed every check, {sum(b[name]['tokens'] for b in both):,} tokens"

    return f"one plain call: {side('single')} · the loop: {side('loop')}"


def batch_exit_code(outcomes: Sequence[BatchOutcome]) -> int:
    """130 if the batch was stopped with Ctrl-C, 2 if a task met a configuration error,
    1 if any task stopped without approval, 0 when every task was approved."""
    reasons = {o.summary.get("stop_reason") for o in outcomes}
    if "interrupted" in reasons:
        return EXIT_INTERRUPTED
    if "config_error" in reasons:
        return EXIT_USAGE
    return EXIT_APPROVED if reasons == {"approved"} else EXIT_NOT_APPROVED


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
                tasks,
                settings,
                make_client,
                concurrency=args.concurrency,
                budget=budget,
                limit=limit,
                on_done=finished,
                compare=args.compare,
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
        display.console.print(batch_table(outcomes, display.console.width))
        approved = sum(bool(o.summary.get("approved")) for o in outcomes)
        display.line(f"{approved} of {len(outcomes)} approved · {progress.spending()}", "bold")
        if args.compare:
            display.line(compare_totals(outcomes), "bold")
        display.line(f"traces: {settings.log_dir}/<run id>.jsonl (run ids in --json)", "dim")
    elif display.mode == "quiet":
        for o in outcomes:
            if o.summary.get("approved"):
                display.line(o.summary.get("result") or "", soft_wrap=True)
    return batch_exit_code(outcomes)
