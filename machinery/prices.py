"""Prices, and what each role has spent: the numbers the cost budget and the spending table read."""

from __future__ import annotations

from dataclasses import dataclass, field

from multi_agent_system import DEMO_MODEL, Price

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
