"""Frontier spending, one implementation for /extract and chat: a key's `Ledger` per UTC day, and `Spend`, one
request's reservations against it. A frontier call reserves its worst case first (prompt bytes as tokens,
`max_tokens` out, every retry), and is settled with the real cost after, so a key never spends past its budget;
past it, the input stays local (`decided_by: budget`) or the request is refused (429), by the key's policy."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any, Callable

from openfirst.core.errors import OpenFirstError
from openfirst.pipeline.route import Route


class FrontierBudgetExceeded(OpenFirstError):
    """The caller's frontier budget for today cannot cover this request, and its policy is to refuse (HTTP 429)."""

    retryable = True


class BudgetStoreUnavailable(OpenFirstError):
    """The shared budget store cannot be reached, and the key's policy is to refuse rather than stay local (HTTP
    503): no frontier spend without a reservation."""

    retryable = True


class Ledger:
    """A key's frontier spend per UTC day: `reserve` the worst case before a call, `settle` with the real cost."""

    def __init__(self, budget: float | None):
        self.budget = budget
        self.day = self._today()
        self.spent = 0.0
        self.reserved = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def _today() -> dt.date:
        return dt.datetime.now(dt.timezone.utc).date()

    def _roll(self) -> None:
        if self._today() != self.day:
            self.day, self.spent = self._today(), 0.0

    def reserve(self, worst_case_usd: float) -> bool:
        with self._lock:
            self._roll()
            if self.budget is not None and self.spent + self.reserved + worst_case_usd > self.budget + 1e-12:
                return False
            self.reserved += worst_case_usd
            return True

    def settle(self, reserved_usd: float, cost_usd: float | None) -> None:
        """Release a reservation and book the real cost (the reservation itself when the cost is unknown)."""
        with self._lock:
            self._roll()
            self.reserved = max(0.0, self.reserved - reserved_usd)
            self.spent += reserved_usd if cost_usd is None else cost_usd

    def state(self) -> dict[str, Any]:
        with self._lock:
            self._roll()
            return {"day": self.day.isoformat(), "spent_usd": self.spent, "reserved_usd": self.reserved,
                    "budget_usd": self.budget}


class Spend:
    """One request's frontier reservations for `caller` (None, or a key without a budget: nothing is counted),
    per input index."""

    def __init__(self, caller: Any, is_local: Callable[[str], bool] = lambda model: model.split(":")[0] == "local"):
        self.caller, self.is_local = caller, is_local  # is_local: the registry's (a local model is never billed)
        self.reserved: dict[int, float] = {}

    @property
    def counted(self) -> bool:
        return self.caller is not None and self.caller.ledger.budget is not None

    def admit(self, i: int, route: Route, worst_case_usd: Callable[[], float]) -> Route:
        """Reserve input i's worst case for a route to a frontier model: the route itself, or past the budget a
        local one (`decided_by: budget`), or FrontierBudgetExceeded by the key's `over_budget` policy."""
        if not self.counted or self.is_local(route.target):
            return route
        worst = worst_case_usd()
        reserved = self.caller.ledger.reserve(worst)  # None: the shared budget store cannot say (fail closed)
        if reserved:
            self.reserved[i] = self.reserved.get(i, 0.0) + worst
            return route
        reject = self.caller.settings.over_budget == "reject"
        if reserved is None and reject:
            raise BudgetStoreUnavailable(f"key {self.caller.name!r}: the budget store is unreachable, so no frontier "
                                         "spend can be reserved", hint="retry shortly")
        if reject:
            raise FrontierBudgetExceeded(f"key {self.caller.name!r} has spent its frontier budget for today",
                                         hint="retry tomorrow (UTC) or ask for a larger budget")
        why = ("the budget store is unreachable: no frontier spend" if reserved is None else
               f"key {self.caller.name!r} is over its frontier budget")
        return route.moved("local", "budget", why)

    def settle(self, i: int, cost_usd: float | None) -> None:
        """Book input i's frontier cost (None: unknown, e.g. cut off: the reservation is booked)."""
        reserved = self.reserved.pop(i, 0.0)
        if reserved:
            self.caller.ledger.settle(reserved, reserved if cost_usd is None else cost_usd)

    def settle_all(self, cost_usd: float | None = None) -> None:
        for i in list(self.reserved):
            self.settle(i, cost_usd)
