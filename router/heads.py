"""Classifier heads that are fitted with scikit-learn and stored as plain arrays.

Each head is a scikit-learn-style estimator (parameters in `__init__`, fitted
attributes end in `_`). After fitting, inference runs in numpy from the arrays in
`state_`, so a loaded router predicts exactly what the trained one did, without
pickle and without depending on scikit-learn's internals.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sklearn.base import BaseEstimator

from openfirst.core.errors import NotFittedError
from openfirst.router.inference import FAMILIES, check_head_state, head_proba, logit



def check_fitted(estimator: Any, attribute: str) -> None:
    """scikit-learn's `check_is_fitted`, raising openfirst's `NotFittedError` (an `OpenFirstError`)."""
    from sklearn.exceptions import NotFittedError as SklearnNotFitted
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator, attribute)
    except SklearnNotFitted:
        raise NotFittedError(f"this {type(estimator).__name__} is not fitted yet; call fit() first") from None


class Head(BaseEstimator):
    """P(label = 1 | features) from one model family (a scikit-learn estimator: parameters in `__init__`,
    the fitted arrays in `state_`)."""

    def __init__(self, family: str = "logreg", params: dict[str, Any] | None = None, seed: int = 0):
        self.family = family
        self.params = params
        self.seed = seed

    @property
    def _p(self) -> dict[str, Any]:
        return self.params or {}

    # -- fitting ---------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray) -> "Head":
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y).astype(int)
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale < 1e-12] = 1.0
        Z = (X - mean) / scale
        state: dict[str, np.ndarray] = {"mean": mean, "scale": scale}
        if len(np.unique(y)) < 2:  # a constant label: predict its rate
            state["constant"] = np.array([float(y.mean())])
        elif self.family == "logreg":
            state.update(self._fit_logreg(Z, y))
        elif self.family == "knn":
            state.update(self._fit_knn(Z, y))
        elif self.family == "mlp":
            state.update(self._fit_mlp(Z, y))
        else:
            raise ValueError(f"unknown head family {self.family!r}; known: {FAMILIES}")
        self.state_ = state
        return self

    def _fit_logreg(self, Z, y):
        from sklearn.linear_model import LogisticRegression

        m = LogisticRegression(C=float(self._p.get("C", 1.0)), max_iter=2000).fit(Z, y)
        return {"coef": m.coef_[0].astype(np.float64), "intercept": m.intercept_.astype(np.float64)}

    def _fit_knn(self, Z, y):
        k = int(self._p.get("k", 25))
        norms = np.linalg.norm(Z, axis=1, keepdims=True)
        norms[norms < 1e-12] = 1.0
        return {"points": (Z / norms).astype(np.float32), "labels": y.astype(np.float32),
                "k": np.array([min(k, len(y))]), "prior": np.array([float(y.mean())])}

    def _fit_mlp(self, Z, y):
        """One hidden ReLU layer on a PCA projection (`pca` dims) of the standardised input: fast on CPU."""
        from sklearn.decomposition import PCA
        from sklearn.neural_network import MLPClassifier

        dims = min(int(self._p.get("pca", 64)), Z.shape[1], Z.shape[0])
        pca = PCA(dims, random_state=self.seed).fit(Z)
        m = MLPClassifier(
            hidden_layer_sizes=(int(self._p.get("hidden", 32)),),
            alpha=float(self._p.get("alpha", 1.0)),
            learning_rate_init=float(self._p.get("lr", 1e-3)),
            max_iter=int(self._p.get("max_iter", 60)),
            batch_size=min(256, max(16, len(y) // 8)),  # at least ~8 steps per epoch on small logs
            random_state=self.seed,
        )
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter is expected and harmless
            m.fit(pca.transform(Z), y)
        return {"pca_mean": pca.mean_, "pca_components": pca.components_, "w0": m.coefs_[0], "b0": m.intercepts_[0],
                "w1": m.coefs_[1][:, 0], "b1": m.intercepts_[1]}

    # -- inference (numpy only, router/inference.py) ----------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(label = 1) per row, shape (n,)."""
        check_fitted(self, "state_")
        return head_proba(self.family, self.state_, X)

    # -- persistence (plain arrays, no pickle) -----------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "params": dict(self._p), "seed": self.seed}

    def state(self) -> dict[str, np.ndarray]:
        """The fitted arrays, to store."""
        check_fitted(self, "state_")
        return dict(self.state_)

    @classmethod
    def from_state(cls, desc: dict[str, Any], state: dict[str, np.ndarray]) -> "Head":
        """A fitted head from `describe()` and `state()`; refuses missing, non-numeric or misshapen arrays."""
        head = cls(desc["family"], desc.get("params"), desc.get("seed", 0))
        check_head_state(head.family, state)
        head.state_ = dict(state)
        return head


def fit_platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: P(y=1) = sigmoid(a * logit(raw) + b), fitted on out-of-fold outputs."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        return 0.0, float(np.log((y.mean() + 1e-6) / (1 - y.mean() + 1e-6)))
    z = logit(raw).reshape(-1, 1)
    m = LogisticRegression(C=1e6, max_iter=1000).fit(z, y)
    return float(m.coef_[0, 0]), float(m.intercept_[0])


