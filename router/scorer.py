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
from openfirst.router.errors import ArtifactError
from openfirst.router.features import build_features, text_stat_matrix
from openfirst.router.heads import Head, apply_platt, check_fitted, fit_platt

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
        X = build_features(tuple(self.features), embeddings, texts, stats)
        p_local = self.local_head_.predict_proba(X)
        if self.frontier_head_ is None:
            score = 1.0 - p_local
        else:
            score = self.frontier_head_.predict_proba(X) - p_local
        return score, apply_platt(p_local, *self.platt_)

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
        scorer = cls(desc["label"], desc["family"], desc["params"], desc["features"], desc["seed"])
        heads = {}
        for name, head_desc in desc["heads"].items():
            state = {k[len(name) + 1:]: v for k, v in arrays.items() if k.startswith(f"{name}/")}
            if not state:
                raise ArtifactError(f"the arrays of head {name!r} are missing")
            heads[name] = Head.from_state(head_desc, state)
        if "local" not in heads or (desc["label"] == "gain") != ("frontier" in heads):
            raise ArtifactError(f"label mode {desc['label']!r} does not match the stored heads {sorted(heads)}")
        a, b = (float(x) for x in desc["platt"])
        if not (np.isfinite(a) and np.isfinite(b)):
            raise ArtifactError("the Platt calibration is not finite")
        scorer.local_head_, scorer.frontier_head_, scorer.platt_ = heads["local"], heads.get("frontier"), (a, b)
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
        total, p0 = 0.0, None
        stats = text_stat_matrix(texts) if any("text_stats" in m.features for m in self.members_) else None
        for m, (mu, sd) in zip(self.members_, self.stats_):
            raw, p = m.score_and_p(embeddings, texts, stats)
            total = total + (raw - mu) / sd
            p0 = p if p0 is None else p0
        return total / len(self.members_), p0

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
        members = []
        for i, member in enumerate(desc["members"]):
            prefix = f"m{i}/"
            try:
                members.append(RoutingScorer.from_state(
                    member, {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}))
            except ArtifactError as exc:
                raise ArtifactError(f"member {i}: {exc.message}") from None
        stats = [(float(a), float(b)) for a, b in desc["stats"]]
        if not members or len(stats) != len(members):
            raise ArtifactError("member count does not match the stored standardisation")
        if not all(np.isfinite(a) and np.isfinite(b) and b > 0 for a, b in stats):
            raise ArtifactError("the stored standardisation is not finite and positive")
        ensemble = cls(members)
        ensemble.members_, ensemble.stats_ = members, stats
        return ensemble
