"""The router over N models on synthetic embeddings: it learns which cheap model succeeds where, beats random
mixtures of single models, and its saved artifact predicts what the fitted one did (numpy only)."""

import numpy as np
import pytest

from openfirst.router.multi_router import (MultiData, MultiModelRouter, fit_model, knn_baseline, lambda_for_target,
                                           mlp_baseline, nested, predict)
from openfirst.router.routerbench import report

RNG = np.random.default_rng(3)
N = 240
CLUSTER = RNG.integers(0, 2, N)
EMB = (RNG.normal(size=(N, 8)) + 3.0 * np.eye(8)[CLUSTER]).astype(np.float32)
TEXTS = [f"query {i} " + "word " * int(c * 5) for i, c in enumerate(CLUSTER)]
# cheap model a is right on cluster 0, cheap model b on cluster 1, the dear model c on 80% of everything
SCORES = np.column_stack([(CLUSTER == 0) & (RNG.random(N) < 0.9), (CLUSTER == 1) & (RNG.random(N) < 0.9),
                          RNG.random(N) < 0.8]).astype(float)
COSTS = np.tile([0.001, 0.001, 0.01], (N, 1))
DATA = MultiData(EMB, TEXTS, SCORES, COSTS, np.arange(N), ["a", "b", "c"])


def test_nested_predictions_route_each_cluster_to_its_cheap_model_and_beat_the_baselines_floor():
    res = nested(DATA, trials=2, outer_folds=2, inner_folds=2, seed=0,
                 baselines={"knn": knn_baseline(10), "mlp": mlp_baseline()})
    rep = report(res.p_oof, res.expected_cost, SCORES, ["a", "b", "c"], baselines=res.baselines, true_cost=COSTS)
    assert rep["aiq"] > rep["baselines"]["zero"]["aiq"] + 0.1 and rep["cost_to_match_best_single"] is not None
    assert rep["cost_to_match_best_single"] < 0.5  # the best single model's accuracy at under half its cost
    assert set(rep["baselines"]) == {"oracle", "zero", "knn", "mlp"} and len(res.configs) == 2


def test_the_saved_router_predicts_what_the_fitted_one_did(tmp_path):
    config = {"family": "blend", "params": {"k": 15, "hidden": 16, "alpha": 0.01, "weight": 0.5},
              "features": ["embedding", "text_stats"]}
    state = fit_model(config, DATA, 0)
    p = predict(config, state, EMB, TEXTS)
    lam, point = lambda_for_target(p, COSTS.mean(axis=0), SCORES, COSTS, "budget", 0.002)
    assert point["met"] and point["cost"] <= 0.002 + 1e-12
    router = MultiModelRouter(["a", "b", "c"], config, state, COSTS.mean(axis=0), lam, {"model": "fake-8d"})
    again = MultiModelRouter.load(router.save(tmp_path / "r"))
    assert np.allclose(again.p_success(EMB, TEXTS), p) and again.models == ["a", "b", "c"]
    picks = again.decide(p)
    assert COSTS[np.arange(N), picks].mean() <= 0.002 + 1e-12
    assert (picks[CLUSTER == 0] == 0).mean() > 0.7 and (picks[CLUSTER == 1] == 1).mean() > 0.7  # the rest: c
    with pytest.raises(Exception):
        MultiModelRouter.load(tmp_path / "missing")


def test_records_with_only_some_models_scored_are_learned_from_and_measured_on_the_complete_ones(tmp_path):
    from openfirst.core.errors import ConfigError
    from openfirst.router.multi_router import train_multi

    partial = SCORES.copy()
    rng = np.random.default_rng(5)
    live = np.arange(N) >= 60  # a live log: only the answering model's outcome on most records
    for i in np.flatnonzero(live):
        keep = rng.integers(0, 3)
        partial[i, [j for j in range(3) if j != keep]] = np.nan
    data = MultiData(EMB, TEXTS, partial, COSTS, np.arange(N), ["a", "b", "c"])
    router, summary = train_multi(data, trials=2, inner_folds=2, outer_folds=2, seed=0, kind="budget",
                                  value=0.002, embedder={"model": "fake-8d"})
    assert summary["records_trained"] == N and summary["records_evaluated"] == 60
    again = MultiModelRouter.load(router.save(tmp_path / "partial"))
    picks = again.decide(again.p_success(EMB, TEXTS))
    assert (picks[CLUSTER == 0] == 0).mean() > 0.7 and (picks[CLUSTER == 1] == 1).mean() > 0.7
    knn = {"family": "knn", "params": {"k": 15}, "features": ["embedding"]}
    state = fit_model(knn, data, 0)
    assert "known" in state and np.all((predict(knn, state, EMB, TEXTS) >= 0) & (predict(knn, state, EMB, TEXTS) <= 1))
    few = MultiData(EMB, TEXTS, np.where(np.arange(N)[:, None] < 3, SCORES, partial), COSTS, np.arange(N),
                    ["a", "b", "c"])
    few.scores[3:60, 0] = np.nan
    with pytest.raises(ConfigError, match="every model's score"):
        train_multi(few, trials=1, inner_folds=2, outer_folds=2, seed=0, kind="budget", value=0.002,
                    embedder={"model": "fake-8d"})
