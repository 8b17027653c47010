import numpy as np
import pytest

from openfirst.router.metrics import oracle_priority, routing_curve


def test_random_router_apgr_is_one_half():
    rng = np.random.default_rng(0)
    yl, yf = rng.integers(0, 2, 500), rng.integers(0, 2, 500)
    if yf.mean() == yl.mean():
        yf[0] = 1 - yf[0]
    curve = routing_curve(np.zeros(500), yl, yf)  # all tied = expectation of random routing
    assert curve.apgr() == pytest.approx(0.5)
    assert curve.cpt(0.5) == pytest.approx(0.5)
    assert curve.cpt(0.8) == pytest.approx(0.8)
    # a random permutation is close to the expectation
    assert routing_curve(rng.random(500), yl, yf).apgr() == pytest.approx(0.5, abs=0.12)


def test_hand_computed_curve():
    # 4 queries: local right on q0,q1; frontier right on q0,q2,q3
    yl = np.array([1, 1, 0, 0])
    yf = np.array([1, 0, 1, 1])
    pr = np.array([0.1, 0.2, 0.9, 0.5])  # routes q2, then q3, then q1, then q0
    c = routing_curve(pr, yl, yf)
    assert c.share.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert c.accuracy.tolist() == [0.5, 0.75, 1.0, 0.75, 0.75]
    # acc_local 0.5, acc_frontier 0.75 -> PGR = [0, 1, 2, 1, 1]
    assert c.pgr.tolist() == [0, 1, 2, 1, 1]
    assert c.apgr() == pytest.approx(0.25 * (0.5 + 1.5 + 1.5 + 1))
    assert c.cpt(0.5) == pytest.approx(0.125)
    assert c.cpt(1.0) == pytest.approx(0.25)
    assert c.cpt(3.0) != c.cpt(3.0)  # never reached: nan


def test_oracle_curve_routes_gains_first_and_beats_everything():
    yl = np.array([1, 0, 0, 1, 0, 1])
    yf = np.array([1, 1, 1, 0, 0, 1])
    oracle = routing_curve(oracle_priority(yl, yf), yl, yf)
    # the oracle's best accuracy: every query answered by whichever model is right
    assert oracle.accuracy.max() == pytest.approx(np.maximum(yl, yf).mean())
    rng = np.random.default_rng(1)
    for _ in range(20):
        assert routing_curve(rng.random(6), yl, yf).apgr() <= oracle.apgr() + 1e-12


def test_ties_are_linear_and_costs_tracked():
    yl = np.array([0, 0, 1, 1])
    yf = np.array([1, 1, 1, 1])
    c = routing_curve(np.array([1, 1, 0, 0]), yl, yf, np.full(4, 1.0), np.full(4, 10.0))
    assert c.share.tolist() == [0, 0.5, 1.0]
    assert c.cost.tolist() == [1.0, 5.5, 10.0]
    assert c.at_share(0.25) == (pytest.approx(0.75), pytest.approx(3.25))


def test_calibration_metrics():
    from openfirst.router.metrics import calibration

    y = np.array([1, 0] * 50)
    perfect = calibration(np.full(100, 0.5), y)
    assert perfect["ece"] == pytest.approx(0.0) and perfect["brier"] == pytest.approx(0.25)
    bad = calibration(np.where(y == 1, 0.0, 1.0), y)
    assert bad["brier"] == pytest.approx(1.0) and bad["ece"] == pytest.approx(1.0)
