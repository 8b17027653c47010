"""Frontier spending: a request's reservations against its key's daily ledger, one implementation for /extract
and chat."""

import pytest

from openfirst.pipeline import Route
from openfirst.service.auth import Caller, KeySettings
from openfirst.service.spending import FrontierBudgetExceeded, Ledger, Spend


def caller(budget, over_budget="local"):
    return Caller(KeySettings(name="team", sha256="0" * 64, frontier_budget_usd_per_day=budget,
                              over_budget=over_budget))


def test_a_reservation_is_the_worst_case_and_settles_to_the_real_cost():
    c = caller(1.0)
    spend = Spend(c)
    route = Route("frontier", "router", reason="sure")
    assert spend.admit(0, route, lambda: 0.6) is route and c.ledger.reserved == pytest.approx(0.6)
    moved = spend.admit(1, route, lambda: 0.6)  # 0.6 + 0.6 > 1.0: stays local
    assert (moved.target, moved.decided_by) == ("local", "budget") and "over its frontier budget" in moved.reason
    spend.settle(0, 0.1)
    assert (c.ledger.reserved, c.ledger.spent) == (0.0, pytest.approx(0.1))
    assert spend.admit(2, route, lambda: 0.6).target == "frontier"
    spend.settle_all(None)  # cut off: the reservation is booked as spent
    assert c.ledger.spent == pytest.approx(0.7) and c.ledger.state()["budget_usd"] == 1.0


def test_past_the_budget_a_reject_key_is_refused_and_keys_without_a_budget_are_not_counted():
    spend = Spend(caller(0.5, over_budget="reject"))
    with pytest.raises(FrontierBudgetExceeded):
        spend.admit(0, Route("frontier", "router"), lambda: 0.6)
    free = Spend(caller(None))
    assert free.admit(0, Route("frontier", "router"), lambda: 1e9).target == "frontier" and not free.reserved
    assert Spend(None).admit(0, Route("frontier", "router"), lambda: 1e9).target == "frontier"
    assert Spend(caller(1.0)).admit(0, Route("local", "router"), lambda: 1 / 0).target == "local"  # not priced


def test_the_ledger_never_reserves_past_its_budget():
    ledger = Ledger(1.0)
    assert ledger.reserve(0.7) and not ledger.reserve(0.4) and ledger.reserve(0.3)
