
import numpy as np
import pytest

from openfirst.core.errors import NotFittedError
from openfirst.router.heads import Head

from tests.helpers import E, YL


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
