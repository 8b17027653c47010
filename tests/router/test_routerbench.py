"""RouterBench-style evaluation on hand-made matrices: decisions, hull, AIQ, the oracle, the zero router."""

import numpy as np
import pytest

from openfirst.router.routerbench import Point, aiq, choose, cost_to_match, hull, oracle_point, report

# three queries, three models: cheap (right on q0), medium (right on q0, q1), dear (right on all)
SCORES = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1]], dtype=float)
COST = np.tile([1.0, 2.0, 10.0], (3, 1))


def test_a_decision_trades_predicted_success_against_cost():
    p = np.array([[0.9, 0.95, 0.99], [0.2, 0.8, 0.9], [0.1, 0.2, 0.9]])
    assert choose(p, COST, 0.0).tolist() == [2, 2, 2]  # accuracy first
    assert choose(p, COST, 1.0).tolist() == [0, 0, 0]  # cost first
    assert choose(p, COST, 0.06).tolist() == [0, 1, 2]
    assert choose(np.ones((1, 3)), COST[:1], 0.0).tolist() == [0]  # ties go to the cheaper


def test_the_hull_is_non_decreasing_and_concave_and_aiq_is_its_mean_height():
    pts = [Point(1, 0.3), Point(2, 0.2), Point(3, 0.5), Point(4, 0.55), Point(10, 0.6), Point(5, 0.9)]
    assert [(p.cost, p.accuracy) for p in hull(pts)] == [(1, 0.3), (5, 0.9)]  # (3, 0.5) is under the chord
    assert aiq([Point(1, 0.5), Point(3, 0.5)], 1, 3) == pytest.approx(0.5)
    assert aiq([Point(1, 0.0), Point(3, 1.0)], 1, 3) == pytest.approx(0.5, abs=1e-3)
    assert aiq([Point(2, 1.0)], 1, 3) == pytest.approx(0.5, abs=1e-3)  # nothing reachable below cost 2


def test_the_oracle_the_best_single_model_and_the_cost_to_match_it():
    assert oracle_point(SCORES, COST) == Point((1 + 2 + 10) / 3, 1.0)
    perfect = report(SCORES, COST, SCORES, ["cheap", "medium", "dear"])
    assert perfect["best_single"] == {"model": "dear", "cost": 10.0, "accuracy": 1.0}
    assert perfect["cost_to_match_best_single"] == pytest.approx(13 / 3 / 10)
    assert perfect["aiq"] == pytest.approx(perfect["baselines"]["oracle"]["aiq"])
    assert perfect["aiq"] > perfect["baselines"]["zero"]["aiq"]
    blind = report(np.zeros_like(SCORES), COST, SCORES, ["cheap", "medium", "dear"], baselines={"oracle_p": SCORES})
    assert blind["cost_to_match_best_single"] is None  # a router that always takes the cheapest never matches
    assert blind["baselines"]["oracle_p"]["aiq"] == pytest.approx(perfect["aiq"])
    assert cost_to_match([Point(5, 1.0), Point(8, 1.0)], Point(10, 1.0)) == 0.5
    assert set(perfect) >= {"curve", "aiq", "best_single", "cost_to_match_best_single", "baselines"}


def test_the_sweep_reaches_the_cheapest_model_even_when_costs_differ_by_a_hair():
    from openfirst.router.routerbench import lambdas_for

    cost = np.tile([1.44e-4, 1.52e-4, 1.4e-3], (2, 1))  # 7.2B vs 7.6B parameters: a tiny price gap
    p = np.array([[0.1, 0.9, 0.95], [0.2, 0.99, 0.3]])
    assert choose(p, cost, lambdas_for(p, cost)[-1]).tolist() == [0, 0]
