"""A route: its target, the stage that decided, the router's own choice, and moves by later stages."""

import pytest

from openfirst.pipeline import DECIDERS, OperatingPoint, Route


def test_a_route_moved_by_a_later_stage_keeps_the_router_s_numbers_and_its_reason():
    r = Route("frontier", "router", 0.4, 0.7, 0.5, "score 0.7 >= 0.5")
    moved = r.moved("local", "budget", "key 'a' is over its frontier budget")
    assert (moved.target, moved.decided_by, moved.score, moved.threshold) == ("local", "budget", 0.7, 0.5)
    assert moved.reason == "score 0.7 >= 0.5; key 'a' is over its frontier budget"
    assert moved.router_chose == "frontier" and r.moved("local", "fallback", "x", replace_reason=True).reason == "x"


def test_pinned_routes_and_the_one_vocabulary():
    pinned = Route("local", "privacy", pin_reasons=("email",))
    assert pinned.pinned and pinned.public()["pin_reasons"] == ["email"] and pinned.router_chose is None
    assert DECIDERS == ("router", "privacy", "default", "fallback", "cascade", "policy", "budget")
    assert OperatingPoint().empty and not OperatingPoint(threshold=0.2).empty
    with pytest.raises(ValueError):
        OperatingPoint(frontier_share=1.5)
