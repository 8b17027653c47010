import json

import numpy as np
import pytest

from router.api import Router
from router.artifact import ARRAYS_FILE, CONFIG_FILE
from router.errors import ArtifactError, NotFittedError
from router.heads import Head
from router.scorer import EnsembleScorer, RoutingScorer

RNG = np.random.default_rng(0)
E = RNG.normal(size=(120, 8)).astype(np.float32)
TEXTS = [("word " * int(k)).strip() for k in RNG.integers(1, 30, 120)]
YL = (E[:, 0] + 0.3 * RNG.normal(size=120) > 0).astype(float)
YF = np.maximum(YL, (RNG.random(120) > 0.4)).astype(float)


@pytest.mark.parametrize("family,params", [("logreg", {"C": 0.5}), ("mlp", {"hidden": 8, "alpha": 1.0, "pca": 8}),
                                           ("knn", {"k": 7})])
def test_heads_learn_and_predict_probabilities(family, params):
    head = Head(family, params).fit(E, YL)
    p = head.predict_proba(E)
    assert p.shape == (120,) and np.all((p >= 0) & (p <= 1))
    assert np.corrcoef(p, YL)[0, 1] > 0.3


def test_numpy_inference_matches_sklearn_logreg():
    from sklearn.linear_model import LogisticRegression

    head = Head("logreg", {"C": 0.5}).fit(E, YL)
    s = head.state_
    ref = LogisticRegression(C=0.5, max_iter=2000).fit((E - s["mean"]) / s["scale"], YL)
    np.testing.assert_allclose(head.predict_proba(E), ref.predict_proba((E - s["mean"]) / s["scale"])[:, 1],
                               rtol=1e-6)


def test_unfitted_head_raises():
    with pytest.raises(NotFittedError):
        Head().predict_proba(E)


def fitted_router() -> Router:
    members = [RoutingScorer("gain", "logreg", {"C": 0.1}, ["embedding", "text_stats"]),
               RoutingScorer("local", "knn", {"k": 9}, ["embedding"])]
    scorer = EnsembleScorer(members).fit(E, TEXTS, YL, YF)
    return Router(scorer, 0.1, {"embedder": {"model": "fake-8d", "dimension": 8, "normalized": True}})


def test_artifact_round_trip(tmp_path):
    router = fitted_router()
    router.save(tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [ARRAYS_FILE, CONFIG_FILE]
    loaded = Router.load(tmp_path / "r")
    for a, b in zip(router.scores(E, TEXTS), loaded.scores(E, TEXTS)):
        np.testing.assert_allclose(a, b)
    assert loaded.threshold == 0.1
    cfg = json.loads((tmp_path / "r" / CONFIG_FILE).read_text())
    assert cfg["embedder"]["model"] == "fake-8d" and "scikit-learn" in cfg["versions"]


def test_no_pickle_in_arrays(tmp_path):
    fitted_router().save(tmp_path / "r")
    with np.load(tmp_path / "r" / ARRAYS_FILE, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)


def test_tampered_arrays_are_refused(tmp_path):
    fitted_router().save(tmp_path / "r")
    path = tmp_path / "r" / ARRAYS_FILE
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match="modified"):
        Router.load(tmp_path / "r")


def saved_with_config_edit(tmp_path, key, value):
    """Save a router, then change one key of its router.json by hand."""
    fitted_router().save(tmp_path / "r")
    path = tmp_path / "r" / CONFIG_FILE
    cfg = json.loads(path.read_text())
    cfg[key] = value
    path.write_text(json.dumps(cfg))
    return tmp_path / "r"


def test_tampered_config_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="modified"):
        Router.load(saved_with_config_edit(tmp_path, "threshold", -100.0))


def test_incompatible_version_and_missing_artifact(tmp_path):
    with pytest.raises(ArtifactError, match="format version"):
        Router.load(saved_with_config_edit(tmp_path, "format_version", 99))
    with pytest.raises(ArtifactError, match="not a router artifact"):
        Router.load(tmp_path / "nothing")


def test_save_refuses_to_overwrite_a_foreign_directory(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "precious.txt").write_text("keep me")
    with pytest.raises(ArtifactError):
        fitted_router().save(tmp_path / "r")
    assert (tmp_path / "r" / "precious.txt").read_text() == "keep me"


def test_text_stats_stay_finite_on_hostile_text():
    from router.features import text_stat_matrix

    m = text_stat_matrix(["7" * 5000, "1" + "0" * 400 + ".5 and 9" * 3, "", "\x00" * 10])
    assert np.isfinite(m).all()
