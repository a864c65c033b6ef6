"""Per-app budgets: requests per minute, tokens per minute, tokens per day.

Fixed windows aligned to the clock (each UTC minute, each UTC day), counted in this
process. A request is refused before it reaches the upstream when its app has used
up a window; tokens are charged when the upstream reports them, so calls already in
flight when a budget runs out still finish (and may overshoot it by their own use).

Each process enforces its share: limit / shares (rounded up), where shares is the
pod's replicas times its worker processes. That is exact when the Service spreads an
app's calls evenly; the README says how far off it can be and what global would take.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from proxy.identity.clients import ClientSpec

MINUTE = 60
DAY = 86_400


@dataclass(slots=True)
class _Window:
    """Usage within the current fixed window of `length` seconds."""

    length: int
    limit: int
    start: int = 0
    used: int = 0

    def current(self, now: float) -> "_Window":
        start = int(now // self.length) * self.length
        if start != self.start:
            self.start, self.used = start, 0
        return self

    def reset_in(self, now: float) -> float:
        return self.start + self.length - now


@dataclass(frozen=True, slots=True)
class Exceeded:
    """Which budget is used up and for how long; what the 429 says."""

    kind: str  # "requests" or "tokens"
    period: str  # "minute" or "day"
    limit: int
    retry_after: int  # whole seconds until the window resets
    reset: float  # the same, exact
    requests: "_Window | None" = None
    tokens: "_Window | None" = None


@dataclass(slots=True)
class ClientBudget:
    """One app's windows in this process."""

    requests_minute: _Window | None = None
    tokens_minute: _Window | None = None
    tokens_day: _Window | None = None

    def admit(self, now: float) -> Exceeded | None:
        """Count one request, or say which budget refuses it (nothing is counted then)."""
        for window, kind, period in (
            (self.tokens_day, "tokens", "day"),
            (self.tokens_minute, "tokens", "minute"),
            (self.requests_minute, "requests", "minute"),
        ):
            if window is not None and window.current(now).used >= window.limit:
                reset = window.reset_in(now)
                return Exceeded(
                    kind,
                    period,
                    window.limit,
                    max(1, math.ceil(reset)),
                    reset,
                    self.requests_minute,
                    self.tokens_minute or self.tokens_day,
                )
        if self.requests_minute is not None:
            self.requests_minute.used += 1
        return None

    def charge(self, tokens: int, now: float) -> None:
        for window in (self.tokens_minute, self.tokens_day):
            if window is not None:
                window.current(now).used += tokens


def _share(limit: int | None, shares: int) -> int | None:
    return None if limit is None else max(1, math.ceil(limit / shares))


class Budgets:
    """Every limited app's budget in this process."""

    def __init__(self, clients: list[ClientSpec], shares: int) -> None:
        self.shares = shares
        self.clock: Callable[[], float] = time.time  # wall clock: windows are UTC minutes/days
        self.by_name: dict[str, ClientBudget] = {}
        for client in clients:
            rpm = _share(client.requests_per_minute, shares)
            tpm = _share(client.tokens_per_minute, shares)
            tpd = _share(client.tokens_per_day, shares)
            if rpm is None and tpm is None and tpd is None:
                continue
            self.by_name[client.name] = ClientBudget(
                None if rpm is None else _Window(MINUTE, rpm),
                None if tpm is None else _Window(MINUTE, tpm),
                None if tpd is None else _Window(DAY, tpd),
            )

    def admit(self, name: str) -> Exceeded | None:
        budget = self.by_name.get(name)
        return None if budget is None else budget.admit(self.clock())

    def counts_tokens(self, name: str) -> bool:
        """Whether this app has a token budget (then every call must report its usage)."""
        budget = self.by_name.get(name)
        return budget is not None and (
            budget.tokens_minute is not None or budget.tokens_day is not None
        )

    def charge(self, name: str, tokens: int) -> None:
        budget = self.by_name.get(name)
        if budget is not None and tokens > 0:
            budget.charge(tokens, self.clock())
