"""The Router: save/load round trip, routing decisions, thresholds for a share, refusal of bad artifacts."""

import json

import numpy as np
import pytest

from tests.helpers import E, TEXTS

from openfirst.router.api import Router
from openfirst.router.artifact import ARRAYS_FILE, CONFIG_FILE
from openfirst.router.errors import ArtifactError
from openfirst.router.fake_embedder import hashing_router

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


def test_route_decides_by_score_against_threshold_and_explains():
    router = hashing_router()
    hard, easy = router.route_many(["prove the theorem 99", "refund my order 7"])
    assert hard.target == "frontier" and easy.target == "local"
    assert hard.score >= router.threshold > easy.score and hard.p_success < easy.p_success
    assert ">=" in hard.reason and "<" in easy.reason
    with pytest.raises(Exception, match="empty"):
        router.route_many(["  "])


def test_threshold_for_share_on_sample_queries(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENFIRST_CACHE", str(tmp_path))
    router = hashing_router()
    queries = [f"prove the theorem {i}" for i in range(3)] + [f"refund my order {i}" for i in range(7)]
    monkeypatch.setattr(type(router.embedder_spec), "embedder", lambda spec, **kw: router.embedder)
    t = router.threshold_for_share(queries, 0.3)
    assert [d.target for d in router.route_many(queries, threshold=t)].count("frontier") == 3
    d = router.route_many(queries[:1])[0]
    again = router.decide(d.score, d.p_success, threshold=d.score)  # the threshold applies to the score
    assert again.target == "frontier" and again.threshold == d.score and router.decide(d.score, 0.5).target == d.target


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
