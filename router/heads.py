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
from openfirst.router.errors import ArtifactError

FAMILIES = ("logreg", "knn", "mlp")
# the arrays each family's state must hold (besides the standardisation "mean" and "scale")
STATE_ARRAYS = {"logreg": ("coef", "intercept"), "knn": ("points", "labels", "k", "prior"),
                "mlp": ("pca_mean", "pca_components", "w0", "b0", "w1", "b1"), "constant": ("constant",)}


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

    # -- inference (numpy only) ---------------------------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(label = 1) per row, shape (n,)."""
        check_fitted(self, "state_")
        s = self.state_
        Z = (np.asarray(X, dtype=np.float64) - s["mean"]) / s["scale"]
        if "constant" in s:
            return np.full(len(Z), float(s["constant"][0]))
        if self.family == "logreg":
            return _sigmoid(Z @ s["coef"] + s["intercept"][0])
        if self.family == "knn":
            return self._knn_proba(Z)
        if self.family == "mlp":
            P = (Z - s["pca_mean"]) @ s["pca_components"].T
            h = np.maximum(P @ s["w0"] + s["b0"], 0.0)
            return _sigmoid(h @ s["w1"] + s["b1"][0])
        raise ArtifactError(f"unknown head family {self.family!r}")

    def _knn_proba(self, Z: np.ndarray) -> np.ndarray:
        s = self.state_
        norms = np.linalg.norm(Z, axis=1, keepdims=True)
        norms[norms < 1e-12] = 1.0
        sims = (s["points"] @ (Z / norms).astype(np.float32).T).T  # no transposed copy of the points
        k = int(s["k"][0])
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        # Bayesian smoothing toward the prior keeps probabilities off 0 and 1
        return (s["labels"][idx].sum(axis=1) + float(s["prior"][0])) / (k + 1.0)

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
        if head.family not in FAMILIES:
            raise ArtifactError(f"unknown head family {head.family!r} in artifact")
        kind = "constant" if "constant" in state else head.family
        for name in ("mean", "scale", *STATE_ARRAYS[kind]):
            arr = state.get(name)
            if arr is None or arr.dtype.kind not in "fiu" or arr.size == 0 or not np.isfinite(arr).all():
                raise ArtifactError(f"{head.family} head: array {name!r} is missing, empty, not numeric or not finite")
        if state["mean"].shape != state["scale"].shape or state["mean"].ndim != 1:
            raise ArtifactError(f"{head.family} head: mean and scale must be vectors of one length")
        head.state_ = dict(state)
        return head


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def fit_platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: P(y=1) = sigmoid(a * logit(raw) + b), fitted on out-of-fold outputs."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        return 0.0, float(np.log((y.mean() + 1e-6) / (1 - y.mean() + 1e-6)))
    z = _logit(raw).reshape(-1, 1)
    m = LogisticRegression(C=1e6, max_iter=1000).fit(z, y)
    return float(m.coef_[0, 0]), float(m.intercept_[0])


def apply_platt(raw: np.ndarray, a: float, b: float) -> np.ndarray:
    return _sigmoid(a * _logit(raw) + b)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))
