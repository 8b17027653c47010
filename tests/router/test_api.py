"""The Router: save/load round trip, routing decisions, thresholds for a share, refusal of bad artifacts."""

import json

import numpy as np
import pytest

from tests.router.conftest import E, TEXTS

from openfirst.router.api import Router
from openfirst.router.artifact import ARRAYS_FILE, CONFIG_FILE
from openfirst.router.errors import ArtifactError

def test_artifact_round_trip(tmp_path, fitted_router):
    router = fitted_router
    router.save(tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [ARRAYS_FILE, CONFIG_FILE]
    loaded = Router.load(tmp_path / "r")
    for a, b in zip(router.scores(E, TEXTS), loaded.scores(E, TEXTS)):
        np.testing.assert_allclose(a, b)
    assert loaded.threshold == 0.1
    cfg = json.loads((tmp_path / "r" / CONFIG_FILE).read_text())
    assert cfg["embedder"]["model"] == "fake-8d" and "scikit-learn" in cfg["versions"]


def hashing_router(threshold: float = 0.0) -> Router:
    from openfirst.router.fake_embedder import HashingEmbedder
    from openfirst.router.scorer import EnsembleScorer, RoutingScorer

    emb = HashingEmbedder(16)
    texts = [f"hard proof of theorem {i}" if i % 2 else f"easy sum {i} plus {i}" for i in range(60)]
    local = np.array([0.0 if i % 2 else 1.0 for i in range(60)])
    scorer = EnsembleScorer([RoutingScorer("local", "logreg", {"C": 1.0}, ["embedding"])])
    scorer.fit(emb.encode(texts), texts, local)
    spec = {"model": emb.model_id, "dimension": emb.dimension, "normalized": True}
    return Router(scorer, threshold, {"embedder": spec}, embedder=emb)


def test_route_decides_by_score_against_threshold_and_explains():
    router = hashing_router()
    hard, easy = router.route_many(["hard proof of theorem 99", "easy sum 7 plus 7"])
    assert hard.target == "frontier" and easy.target == "local"
    assert hard.score >= router.threshold > easy.score and hard.p_success < easy.p_success
    assert ">=" in hard.reason and "<" in easy.reason
    with pytest.raises(Exception, match="empty"):
        router.route_many(["  "])


def test_threshold_for_share_on_sample_queries(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENFIRST_CACHE", str(tmp_path))
    router = hashing_router()
    queries = [f"hard proof of theorem {i}" for i in range(3)] + [f"easy sum {i} plus 1" for i in range(7)]
    monkeypatch.setattr(type(router.embedder_spec), "embedder", lambda spec, **kw: router.embedder)
    t = router.threshold_for_share(queries, 0.3)
    router.threshold = t
    assert [d.target for d in router.route_many(queries)].count("frontier") == 3


def test_embedding_dimension_mismatch_is_refused():
    router = hashing_router()
    with pytest.raises(ArtifactError, match="dimension"):
        router.scores(np.zeros((1, 5), np.float32), ["x"])


def test_nan_threshold_or_missing_array_is_refused_even_with_recomputed_checksums(tmp_path, fitted_router):
    from openfirst.router.artifact import load_artifact, save_artifact

    fitted_router.save(tmp_path / "r")
    config, arrays = load_artifact(tmp_path / "r")
    for key in ("config_sha256", "arrays_sha256", "format", "format_version", "versions"):
        config.pop(key, None)
    save_artifact(tmp_path / "nan", dict(config, threshold=float("nan")), arrays)  # checksums recomputed
    with pytest.raises(ArtifactError, match="threshold"):
        Router.load(tmp_path / "nan")
    save_artifact(tmp_path / "hole", config, {k: v for k, v in arrays.items() if k != "m1/local/points"})
    with pytest.raises(ArtifactError, match="points"):
        Router.load(tmp_path / "hole")
