"""The routing scorer: feature groups + one or two heads + calibration.

Label modes:
- "local": one head predicts P(local succeeds); score = 1 - P.
- "gain": a second head predicts P(frontier succeeds); score = P(frontier) - P(local),
  the expected accuracy gained by calling the frontier. Needs frontier scores.

The score ranks queries (higher = send to the frontier); a threshold on it makes the
decision. `p_success` is always the Platt-calibrated P(local model succeeds).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from sklearn.base import BaseEstimator, clone

from openfirst.core.errors import ConfigError
from openfirst.router.features import build_features
from openfirst.router.heads import Head, check_fitted, fit_platt
from openfirst.router.inference import SavedEnsemble, SavedScorer, ensemble_outputs, scorer_outputs

LABEL_MODES = ("local", "gain")


def binarize(score: np.ndarray) -> np.ndarray:
    """Scores in [0, 1] -> success labels (>= 0.5 counts as success)."""
    return (np.asarray(score, dtype=float) >= 0.5).astype(int)


class RoutingScorer(BaseEstimator):
    """Feature groups + one or two heads + Platt calibration of P(local succeeds) (a scikit-learn estimator)."""

    def __init__(
        self,
        label: str = "local",
        family: str = "logreg",
        params: dict[str, Any] | None = None,
        features: Sequence[str] = ("embedding", "text_stats"),
        seed: int = 0,
        calibrate: bool = True,
        calibration_folds: int = 3,
    ):
        self.label = label
        self.family = family
        self.params = params
        self.features = features
        self.seed = seed
        self.calibrate = calibrate
        self.calibration_folds = calibration_folds

    def _head(self) -> Head:
        return Head(self.family, self.params, self.seed)

    def fit(self, embeddings: np.ndarray, texts: Sequence[str], local_score: np.ndarray,
            frontier_score: np.ndarray | None = None, groups: np.ndarray | None = None) -> "RoutingScorer":
        if self.label not in LABEL_MODES:
            raise ConfigError(f"unknown label mode {self.label!r}; known: {LABEL_MODES}")
        X = build_features(tuple(self.features), embeddings, texts)
        yl = binarize(local_score)
        self.local_head_ = self._head().fit(X, yl)
        self.frontier_head_ = None
        if self.label == "gain":
            if frontier_score is None or np.isnan(frontier_score).any():
                raise ConfigError("label mode 'gain' needs frontier_score on every record")
            self.frontier_head_ = self._head().fit(X, binarize(frontier_score))
        self.platt_ = fit_platt(self._oof_local(X, yl, groups), yl) if self.calibrate else (1.0, 0.0)
        return self

    def _oof_local(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        from sklearn.model_selection import StratifiedGroupKFold

        groups = np.arange(len(y)) if groups is None else groups
        k = min(self.calibration_folds, int(np.bincount(y).min()) if len(np.unique(y)) > 1 else 1)
        if k < 2:
            return self.local_head_.predict_proba(X)
        oof = np.zeros(len(y))
        for tr, te in StratifiedGroupKFold(k, shuffle=True, random_state=self.seed).split(X, y, groups):
            oof[te] = self._head().fit(X[tr], y[tr]).predict_proba(X[te])
        return oof

    def score_and_p(self, embeddings: np.ndarray, texts: Sequence[str], stats: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(routing score, calibrated P(local succeeds)) per query."""
        check_fitted(self, "local_head_")
        frontier = self.frontier_head_.predict_proba if self.frontier_head_ is not None else None
        return scorer_outputs(self.features, self.local_head_.predict_proba, frontier, self.platt_, embeddings, texts,
                              stats)

    def describe(self) -> dict[str, Any]:
        return {"label": self.label, "family": self.family, "params": dict(self.params or {}),
                "features": list(self.features), "seed": self.seed}

    # -- persistence (plain arrays, no pickle) -----------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(description, arrays) of the fitted scorer; arrays are keyed `head/array`."""
        check_fitted(self, "local_head_")
        heads = {"local": self.local_head_}
        if self.frontier_head_ is not None:
            heads["frontier"] = self.frontier_head_
        arrays = {f"{name}/{k}": v for name, head in heads.items() for k, v in head.state().items()}
        desc = dict(self.describe(), platt=list(self.platt_), heads={n: h.describe() for n, h in heads.items()})
        return desc, arrays

    @classmethod
    def from_state(cls, desc: dict[str, Any], arrays: dict[str, np.ndarray]) -> "RoutingScorer":
        return cls.from_saved(SavedScorer.from_state(desc, arrays))

    @classmethod
    def from_saved(cls, saved: SavedScorer) -> "RoutingScorer":
        """The fitted estimator of a validated saved configuration."""
        d = saved.desc
        scorer = cls(d["label"], d["family"], d["params"], d["features"], d["seed"])
        heads = {name: Head.from_state(h.desc, h.state) for name, h in saved.heads.items()}
        scorer.local_head_, scorer.frontier_head_, scorer.platt_ = heads["local"], heads.get("frontier"), saved.platt
        return scorer


class EnsembleScorer(BaseEstimator):
    """Mean of the members' standardised routing scores (the top configurations of a study).

    Averaging the best few trials makes the result robust to the selection noise of a
    single winner. `members` are unfitted configurations; `fit` fits copies (`members_`), of which the
    first (best) is Platt-calibrated and gives `p_success`.
    """

    def __init__(self, members: Sequence[RoutingScorer]):
        self.members = members

    @property
    def label(self) -> str:
        return "gain" if any(m.label == "gain" for m in self.members) else "local"

    def fit(self, embeddings, texts, local_score, frontier_score=None, groups=None) -> "EnsembleScorer":
        fitted, stats = [], []
        for i, member in enumerate(self.members):
            m = clone(member).set_params(calibrate=i == 0)
            m.fit(embeddings, texts, local_score, frontier_score if m.label == "gain" else None, groups)
            raw, _ = m.score_and_p(embeddings, texts)
            fitted.append(m)
            stats.append((float(raw.mean()), float(raw.std()) or 1.0))
        self.members_, self.stats_ = fitted, stats
        return self

    def score_and_p(self, embeddings, texts) -> tuple[np.ndarray, np.ndarray]:
        check_fitted(self, "stats_")
        return ensemble_outputs(self.members_, self.stats_, embeddings, texts)

    # -- persistence (plain arrays, no pickle) -----------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(description, arrays): members' descriptions and standardisation, arrays keyed `m{i}/head/array`."""
        check_fitted(self, "stats_")
        members, arrays = [], {}
        for i, m in enumerate(self.members_):
            desc, member_arrays = m.state()
            members.append(desc)
            arrays.update({f"m{i}/{k}": v for k, v in member_arrays.items()})
        return {"members": members, "stats": [list(s) for s in self.stats_]}, arrays

    @classmethod
    def from_state(cls, desc: dict[str, Any], arrays: dict[str, np.ndarray]) -> "EnsembleScorer":
        """The fitted estimator of a saved ensemble (validated by `SavedEnsemble.from_state`). `Router.load`
        keeps the `SavedEnsemble` itself: it predicts the same without importing scikit-learn."""
        saved = SavedEnsemble.from_state(desc, arrays)
        members = [RoutingScorer.from_saved(m) for m in saved.members]
        ensemble = cls(members)
        ensemble.members_, ensemble.stats_ = members, saved.stats
        return ensemble
