"""The cascade's operating point: thresholds for a frontier share, a quality target, a budget."""

from openfirst.cascade.policy import threshold_for_quality, threshold_for_share


def test_thresholds_calibrated_for_a_share_and_for_a_quality_target():
    conf = [0.9, 0.2, 0.5, 0.5, 0.99]
    assert sum(c < threshold_for_share(conf, 0.2) for c in conf) == 1  # the least confident
    assert sum(c < threshold_for_share(conf, 0.4) for c in conf) == 3  # the second is a tie at 0.5: both go
    assert sum(c < threshold_for_share(conf, 0.8) for c in conf) == 4
    assert threshold_for_share(conf, 0.0) == 0.0 and sum(c < threshold_for_share(conf, 1.0) for c in conf) == 5
    right = [True, False, False, True, True]
    t = threshold_for_quality(conf, right, 1.0)  # escalating 0.2 and both 0.5s reaches 100%
    assert sum(c < t for c in conf) == 3
    assert threshold_for_quality(conf, right, 0.6) == 0.0  # already met locally


def test_a_threshold_for_a_budget_never_overspends():
    from openfirst.cascade.policy import threshold_for_budget

    conf = [0.9, 0.2, 0.5, 0.5, 0.99]
    # 0.002 USD per input at 0.005 per escalation: at most 40% escalate; the 0.5 tie would make 60%
    assert sum(c < threshold_for_budget(conf, 0.002, 0.005) for c in conf) == 1
    assert sum(c < threshold_for_budget(conf, 0.01, 0.005) for c in conf) == 5
    assert threshold_for_budget(conf, 0.0, 0.005) == 0.0
