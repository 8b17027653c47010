"""Policy curves from records: cross-fitted router and combination, AUROC, and the full analysis on FAKE records."""

import numpy as np
import pytest

from openfirst.cascade import evaluation as ev
from openfirst.cascade.bench import analyse, frontier_outcomes, slot_f1


def test_auroc():
    assert ev.auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert ev.auroc([0.5, 0.5], [0, 1]) == 0.5
    assert np.isnan(ev.auroc([0.1, 0.2], [1, 1]))


def _fake_records(n=200, seed=0):
    """FAKE local records: the model is right on 60%, and its token confidence knows it (noisily)."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        right = rng.random() < 0.6
        lp = float(np.log(np.clip(rng.normal(0.8 if right else 0.4, 0.15), 0.01, 1.0)))
        value = "Oslo" if right else "Osl"
        out = f'{{"city":"{value}"}}'
        records.append({"intent": "GetWeather", "text": f"weather in Oslo number {i}", "gold": {"city": ["Oslo"]},
                        "predicted": {"city": value}, "valid": True, "error": None, "all_right": right,
                        "output": out, "token_texts": ['{"', "city", '":"', value, '"}'],
                        "token_logprobs": [0.0, 0.0, 0.0, lp, 0.0], "seconds": 1.0, "prompt_tokens": 300,
                        "completion_tokens": 8})
    return records


def test_the_analysis_ranks_policies_from_cross_fitted_estimates():
    records = _fake_records()
    emb = np.random.default_rng(1).normal(size=(len(records), 8))  # uninformative: the router cannot know
    out = analyse(records, emb / np.linalg.norm(emb, axis=1, keepdims=True), 1.0)
    p = out["policies"]
    assert out["auroc_confidence"] > 0.85 and out["local_accuracy"] == pytest.approx(
        np.mean([r["all_right"] for r in records]))
    assert p["cascade"]["apgr"] > p["router"]["apgr"] + 0.2
    assert abs(p["router"]["apgr"] - 0.5) < 0.15  # no signal in the embeddings: about random
    assert p["cascade"]["cpt_80"] < 0.6 and out["frontier_accuracy"] == 1.0
    assert set(out["auroc_by_aggregation"]) == {"min", "mean", "first", "product"}


def test_an_imperfect_frontier_loses_slots_on_the_stated_share():
    records = _fake_records(400)
    right, preds = frontier_outcomes(records, 0.7, seed=0)
    assert 0.62 < right.mean() < 0.78 and all(len(p) <= 1 for p in preds)


def test_slot_f1_per_intent_and_macro():
    out = slot_f1(_fake_records(50, seed=2))
    assert set(out["per_intent"]) == {"GetWeather"} and 0 < out["macro"] < 1
