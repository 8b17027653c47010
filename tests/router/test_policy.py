import numpy as np
import pytest

from openfirst.core.errors import ConfigError
from openfirst.router.policy import NEVER, Target, choose_operating_point, target_from_flags, threshold_for_share

YL = np.array([1, 1, 0, 0, 1, 0, 1, 1, 0, 1], float)
YF = np.array([1, 1, 1, 1, 1, 0, 1, 1, 1, 1], float)
SCORE = np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.7, 0.15, 0.25, 0.6, 0.05])
LC, FC = np.full(10, 0.001), np.full(10, 0.01)


def op(kind, value):
    return choose_operating_point(SCORE, YL, YF, LC, FC, Target(kind=kind, value=value))


def test_frontier_share_target_never_exceeds_share():
    p = op("frontier_share", 0.25)
    assert p.frontier_share == pytest.approx(0.2)
    assert (SCORE >= p.threshold).mean() == pytest.approx(p.frontier_share)
    assert op("frontier_share", 0.0).threshold == NEVER


def test_quality_target_takes_smallest_share():
    p = op("quality", 0.95)  # frontier accuracy 0.9 -> need 0.855
    assert p.met and p.expected_accuracy >= 0.855 and p.frontier_share == pytest.approx(0.4)
    assert op("quality", 0.85).frontier_share == pytest.approx(0.2)  # needs 0.765: two gains


def test_budget_target_best_accuracy_within_budget():
    p = op("budget", 0.0047)
    assert p.expected_cost <= 0.0047 and p.frontier_share == pytest.approx(0.4)
    unmet = op("budget", 0.0001)
    assert not unmet.met and unmet.frontier_share == 0


def test_target_flags():
    assert target_from_flags(None, None, None) == Target(kind="quality", value=0.95)
    with pytest.raises(ConfigError):
        target_from_flags(0.2, 0.9, None)
    with pytest.raises(ConfigError):
        target_from_flags(1.5, None, None)


@pytest.mark.parametrize("share,threshold,realised", [
    (0.25, 7.0, 0.3),   # 2.5 queries: halves round up -> 3 -> the 3rd highest score, 7
    (0.2, 8.0, 0.2),
    (0.04, NEVER, 0.0),  # 0.4 of a query rounds to none
    (0.05, 9.0, 0.1),   # 0.5 rounds up to one
    (1.0, 0.0, 1.0),
    (0.0, NEVER, 0.0),
])
def test_threshold_for_share_hand_computed(share, threshold, realised):
    scores = np.arange(10.0)
    t = threshold_for_share(scores, share)
    assert t == threshold and (scores >= t).mean() == pytest.approx(realised)


def test_threshold_for_share_ties_all_go_and_bad_input_is_refused():
    scores = np.array([3.0, 1.0, 1.0, 1.0, 0.0])
    assert threshold_for_share(scores, 0.4) == 1.0 and (scores >= 1.0).mean() == 0.8  # ties at the 2nd score go
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError):
            threshold_for_share(scores, bad)
    with pytest.raises(ConfigError):
        threshold_for_share(np.array([]), 0.5)


def test_operating_point_thresholds_use_the_same_rule():
    for share in (0.1, 0.3, 0.6):
        p = op("frontier_share", share)
        assert p.threshold == threshold_for_share(SCORE, p.frontier_share)
