"""Fixtures for the router's unit tests: synthetic embeddings, texts and outcomes (no model runs)."""

import numpy as np
import pytest

from openfirst.router.api import Router
from openfirst.router.scorer import EnsembleScorer, RoutingScorer

RNG = np.random.default_rng(0)
E = RNG.normal(size=(120, 8)).astype(np.float32)
TEXTS = [("word " * int(k)).strip() for k in RNG.integers(1, 30, 120)]
YL = (E[:, 0] + 0.3 * RNG.normal(size=120) > 0).astype(float)
YF = np.maximum(YL, (RNG.random(120) > 0.4)).astype(float)


@pytest.fixture
def fitted_router() -> Router:
    """A small fitted router (gain + kNN members) on synthetic 8-d embeddings."""
    members = [RoutingScorer("gain", "logreg", {"C": 0.1}, ["embedding", "text_stats"]),
               RoutingScorer("local", "knn", {"k": 9}, ["embedding"])]
    scorer = EnsembleScorer(members).fit(E, TEXTS, YL, YF)
    return Router(scorer, 0.1, {"embedder": {"model": "fake-8d", "dimension": 8, "normalized": True}})
