"""Fixtures for the router's unit tests: a small fitted router on the synthetic data of tests/helpers.py."""

import pytest

from openfirst.router.api import Router
from openfirst.router.scorer import EnsembleScorer, RoutingScorer
from tests.helpers import E, TEXTS, YF, YL


@pytest.fixture
def fitted_router() -> Router:
    """A small fitted router (gain + kNN members) on synthetic 8-d embeddings."""
    members = [RoutingScorer("gain", "logreg", {"C": 0.1}, ["embedding", "text_stats"]),
               RoutingScorer("local", "knn", {"k": 9}, ["embedding"])]
    scorer = EnsembleScorer(members).fit(E, TEXTS, YL, YF)
    return Router(scorer, 0.1, {"embedder": {"model": "fake-8d", "dimension": 8, "normalized": True}})
