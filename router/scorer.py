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

from router.errors import ConfigError, NotFittedError
from router.features import build_features, text_stat_matrix
from router.heads import Head, apply_platt, fit_platt

LABEL_MODES = ("local", "gain")


def binarize(score: np.ndarray) -> np.ndarray:
    """Scores in [0, 1] -> success labels (>= 0.5 counts as success)."""
    return (np.asarray(score, dtype=float) >= 0.5).astype(int)


class RoutingScorer:
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
        self.features = tuple(features)
        self.seed = seed
        self.calibrate = calibrate
        self.calibration_folds = calibration_folds

    def _head(self) -> Head:
        return Head(self.family, self.params, self.seed)

    def fit(self, embeddings: np.ndarray, texts: Sequence[str], local_score: np.ndarray,
            frontier_score: np.ndarray | None = None, groups: np.ndarray | None = None) -> "RoutingScorer":
        if self.label not in LABEL_MODES:
            raise ConfigError(f"unknown label mode {self.label!r}; known: {LABEL_MODES}")
        X = build_features(self.features, embeddings, texts)
        yl = binarize(local_score)
        self.local_head_ = self._head().fit(X, yl)
        self.frontier_head_ = None
        if self.label == "gain":
            if frontier_score is None or np.isnan(frontier_score).any():
                raise ConfigError("label mode 'gain' needs frontier_score on every record")
            self.frontier_head_ = self._head().fit(X, binarize(frontier_score))
        self.platt_ = (1.0, 0.0)
        if self.calibrate:
            self.platt_ = fit_platt(self._oof_local(X, yl, groups), yl)
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

    def _check(self) -> None:
        if not hasattr(self, "local_head_"):
            raise NotFittedError("the routing scorer is not fitted yet; call fit() first")

    def score_and_p(self, embeddings: np.ndarray, texts: Sequence[str], stats: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(routing score, calibrated P(local succeeds)) per query."""
        self._check()
        X = build_features(self.features, embeddings, texts, stats)
        p_local = self.local_head_.predict_proba(X)
        if self.frontier_head_ is None:
            score = 1.0 - p_local
        else:
            score = self.frontier_head_.predict_proba(X) - p_local
        return score, apply_platt(p_local, *self.platt_)

    def describe(self) -> dict[str, Any]:
        return {"label": self.label, "family": self.family, "params": self.params or {},
                "features": list(self.features), "seed": self.seed}


class EnsembleScorer:
    """Mean of the members' standardised routing scores (the top configurations of a study).

    Averaging the best few trials makes the result robust to the selection noise of a
    single winner. `p_success` comes from the first (best) member, which is calibrated.
    """

    def __init__(self, members: Sequence[RoutingScorer]):
        self.members = list(members)

    @property
    def label(self) -> str:
        return "gain" if any(m.label == "gain" for m in self.members) else "local"

    def fit(self, embeddings, texts, local_score, frontier_score=None, groups=None) -> "EnsembleScorer":
        stats = []
        for i, m in enumerate(self.members):
            m.calibrate = i == 0
            m.fit(embeddings, texts, local_score, frontier_score if m.label == "gain" else None, groups)
            raw, _ = m.score_and_p(embeddings, texts)
            stats.append((float(raw.mean()), float(raw.std()) or 1.0))
        self.stats_ = stats
        return self

    def score_and_p(self, embeddings, texts) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "stats_"):
            raise NotFittedError("the ensemble is not fitted yet; call fit() first")
        total, p0 = 0.0, None
        stats = text_stat_matrix(texts) if any("text_stats" in m.features for m in self.members) else None
        for m, (mu, sd) in zip(self.members, self.stats_):
            raw, p = m.score_and_p(embeddings, texts, stats)
            total = total + (raw - mu) / sd
            p0 = p if p0 is None else p0
        return total / len(self.members), p0

    def describe(self) -> dict[str, Any]:
        return {"members": [m.describe() for m in self.members], "stats": self.stats_}
