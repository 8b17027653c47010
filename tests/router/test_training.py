"""Training end to end on a FAKE embedder (hashed words): nested CV, the final study, the shipped threshold."""

import numpy as np
import pytest

from openfirst.core.errors import ConfigError
from openfirst.router.fake_embedder import HashingEmbedder
from openfirst.router.policy import Target, threshold_for_share
from openfirst.router.records import log_from_rows
from openfirst.router.training import cross_validate, train_router
from openfirst.router.tuning import TuneOptions

FAST = TuneOptions(trials=3, outer_folds=2, inner_folds=2, seed=1, show_progress=False, ensemble_size=2)


def synthetic_log(n: int = 80):
    """Queries with 'proof' fail locally, sums succeed; the frontier gets everything right."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        hard = i % 3 == 0
        words = ["prove the theorem about primes"] if hard else ["add the numbers", "sum of two values"]
        local = float(not hard) if rng.random() > 0.1 else float(hard)
        rows.append({"id": str(i), "query": f"{words[i % len(words)]} {i}", "local_score": local,
                     "frontier_score": 1.0})
    return log_from_rows(rows, "synthetic")


def test_nested_cv_learns_the_signal():
    cv = cross_validate(synthetic_log(), HashingEmbedder(16), FAST, (0.001, 0.01))
    metrics = cv.report(Target(kind="frontier_share", value=0.4))
    assert cv.nested.score.shape == (80,) and len(cv.nested.fold_results) == 2
    assert metrics["apgr"] > 0.6  # random is 0.5; 10% of the labels are flipped
    assert set(np.unique(cv.nested.fold_of)) == {0, 1}


def test_train_router_threshold_routes_the_operating_point_share():
    log = synthetic_log()
    emb = HashingEmbedder(16)
    router, report, cv = train_router(log, emb, FAST, Target(kind="frontier_share", value=0.35), (0.001, 0.01))
    share = report["operating_point"]["frontier_share"]
    assert 0 < share <= 0.35
    full_score, _ = router.scores(emb.encode(log.queries), log.queries)
    assert router.threshold == threshold_for_share(full_score, share)
    assert router.embedder_spec.model == "fake-hashing-16" and router.embedder_spec.dimension == 16
    assert report["cv"]["kind"].startswith("tuned on all data")


def test_too_few_records_is_a_clear_error():
    with pytest.raises(ConfigError, match="too few"):
        cross_validate(synthetic_log(10), HashingEmbedder(8), FAST, (0.0, 0.0))
