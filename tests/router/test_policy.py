import numpy as np
import pytest

from router.errors import ConfigError
from router.policy import NEVER, Target, choose_operating_point, target_from_flags

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
