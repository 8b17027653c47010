"""The Optuna search: grouped folds, pruning, a diverse ensemble, reproducible with a seed."""

import numpy as np
import pytest

from openfirst.core.errors import ConfigError
from openfirst.router.tuning import TuneOptions, folds, make_data, nested_cv, tune

RNG = np.random.default_rng(3)
N = 90
EMB = RNG.normal(size=(N, 6)).astype(np.float32)
TEXTS = [f"q{i} " + "w " * int(RNG.integers(1, 9)) for i in range(N)]
LOCAL = (EMB[:, 0] > 0).astype(float)
GROUPS = np.arange(N) // 3  # three records per group


def data():
    return make_data(EMB, TEXTS, LOCAL, np.full(N, np.nan), GROUPS)


def test_folds_never_split_a_group():
    for tr, te in folds(data(), 3, 0):
        assert not set(GROUPS[tr]) & set(GROUPS[te])


def test_study_is_seeded_and_returns_distinct_structures():
    opts = TuneOptions(trials=6, inner_folds=2, seed=5, show_progress=False, ensemble_size=3)
    a, b = tune(data(), opts, "a"), tune(data(), opts, "b")
    assert a.configs == b.configs and a.values == b.values
    keys = [(c["label"], c["family"], tuple(c["features"])) for c in a.configs]
    assert len(keys) == len(set(keys)) and all(c["label"] == "local" for c in a.configs)  # no frontier scores
    assert a.values[0] > 0.7


def test_nested_cv_predicts_every_record_out_of_fold():
    res = nested_cv(data(), TuneOptions(trials=3, outer_folds=3, inner_folds=2, show_progress=False))
    assert (res.fold_of >= 0).all() and len(res.fold_results) == 3 and np.isfinite(res.score).all()


def test_one_outcome_only_cannot_be_cross_validated():
    d = make_data(EMB, TEXTS, np.ones(N), np.full(N, np.nan), GROUPS)
    with pytest.raises(ConfigError, match="cannot cross-validate"):
        folds(d, 3, 0)
