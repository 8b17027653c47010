"""Routing from a saved artifact with numpy alone: the heads' arithmetic, Platt scaling, refused states."""

import numpy as np
import pytest

from openfirst.router.errors import ArtifactError
from openfirst.router.inference import apply_platt, check_head_state, head_proba, logit, sigmoid


def test_sigmoid_and_logit_are_inverse_and_platt_scaling_at_identity_changes_nothing():
    p = np.array([0.01, 0.3, 0.5, 0.97])
    assert np.allclose(sigmoid(logit(p)), p) and np.allclose(apply_platt(p, 1.0, 0.0), p)
    assert sigmoid(np.array([1e6, -1e6])).tolist() == pytest.approx([1.0, 0.0])  # clipped, no overflow


def test_a_logistic_head_and_a_constant_head_from_their_arrays():
    state = {"mean": np.zeros(2), "scale": np.ones(2), "coef": np.array([1.0, -1.0]), "intercept": np.array([0.0])}
    check_head_state("logreg", state)
    assert head_proba("logreg", state, np.array([[0.0, 0.0], [2.0, 0.0]])).tolist() == pytest.approx(
        [0.5, float(sigmoid(np.array(2.0)))])
    constant = {"mean": np.zeros(2), "scale": np.ones(2), "constant": np.array([0.8])}
    check_head_state("knn", constant)
    assert head_proba("knn", constant, np.zeros((3, 2))).tolist() == [0.8, 0.8, 0.8]


@pytest.mark.parametrize("family, state", [
    ("forest", {"mean": np.zeros(2), "scale": np.ones(2)}),
    ("logreg", {"mean": np.zeros(2), "scale": np.ones(2), "coef": np.array([np.nan, 1.0]), "intercept": np.zeros(1)}),
    ("logreg", {"mean": np.zeros(2), "scale": np.ones(3), "coef": np.ones(2), "intercept": np.zeros(1)}),
    ("logreg", {"mean": np.zeros(2), "scale": np.ones(2), "intercept": np.zeros(1)})])
def test_a_damaged_or_unknown_head_is_refused(family, state):
    with pytest.raises(ArtifactError):
        check_head_state(family, state)
