"""Routing scorers follow scikit-learn's conventions and own their persistence."""

import numpy as np
import pytest
from sklearn.base import clone

from openfirst.core.errors import NotFittedError
from openfirst.router.errors import ArtifactError
from openfirst.router.inference import SavedEnsemble
from openfirst.router.scorer import EnsembleScorer, RoutingScorer
from tests.helpers import E, TEXTS, YF, YL


def members():
    return [RoutingScorer("gain", "logreg", {"C": 0.1}, ["embedding", "text_stats"]),
            RoutingScorer("local", "knn", {"k": 9}, ["embedding"], calibrate=False)]


def test_parameters_are_left_as_given_and_clone_works():
    m = RoutingScorer("local", "mlp", {"hidden": 8}, ("embedding",), seed=3, calibrate=False)
    assert m.get_params()["params"] == {"hidden": 8} and clone(m).get_params() == m.get_params()
    ens = EnsembleScorer(members())
    ens.fit(E, TEXTS, YL, YF)
    # fit never changes a parameter: the members stay unfitted configs; the fitted copies are members_
    assert [m.calibrate for m in ens.members] == [True, False]
    assert not hasattr(ens.members[0], "local_head_")
    assert [m.calibrate for m in ens.members_] == [True, False]  # only the best member is calibrated
    assert ens.members_[1].platt_ == (1.0, 0.0) and ens.members_[0].platt_ != (1.0, 0.0)


def test_unfitted_scorers_raise_not_fitted():
    for est in (RoutingScorer(), EnsembleScorer(members())):
        with pytest.raises(NotFittedError):
            est.score_and_p(E, TEXTS)
        with pytest.raises(NotFittedError):
            est.state()


def test_state_round_trip_predicts_the_same():
    ens = EnsembleScorer(members()).fit(E, TEXTS, YL, YF)
    desc, arrays = ens.state()
    assert set(k.split("/")[0] for k in arrays) == {"m0", "m1"} and "m0/frontier/coef" in arrays
    again = EnsembleScorer.from_state(desc, arrays)
    saved = SavedEnsemble.from_state(desc, arrays)  # what Router.load keeps: numpy only
    for a, b, c in zip(ens.score_and_p(E, TEXTS), again.score_and_p(E, TEXTS), saved.score_and_p(E, TEXTS)):
        np.testing.assert_allclose(a, b)
        np.testing.assert_array_equal(b, c)
    assert saved.label == ens.label == "gain" and saved.state() == (desc, arrays)


@pytest.mark.parametrize("damage", ["drop_array", "wrong_dtype", "nan", "drop_head", "bad_stats"])
def test_from_state_refuses_broken_state(damage):
    ens = EnsembleScorer(members()).fit(E, TEXTS, YL, YF)
    desc, arrays = ens.state()
    if damage == "drop_array":
        del arrays["m1/local/points"]
    elif damage == "wrong_dtype":
        arrays["m0/local/coef"] = np.array(["x"] * 3)
    elif damage == "nan":
        arrays["m0/local/mean"] = np.full_like(arrays["m0/local/mean"], np.nan)
    elif damage == "drop_head":
        arrays = {k: v for k, v in arrays.items() if not k.startswith("m0/frontier/")}
    else:
        desc["stats"] = desc["stats"][:1]
    with pytest.raises(ArtifactError):
        EnsembleScorer.from_state(desc, arrays)
    with pytest.raises(ArtifactError):
        SavedEnsemble.from_state(desc, arrays)
