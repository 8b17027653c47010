"""A saved router predicts in numpy alone: no scikit-learn import (about 0.7 s), so `openfirst route` starts fast.

The estimators in `heads.py` and `scorer.py` fit with scikit-learn and predict through these same functions;
`SavedEnsemble` is what `Router.load` builds from an artifact's description and arrays (validated here, once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from openfirst.router.errors import ArtifactError
from openfirst.router.features import build_features, text_stat_matrix

FAMILIES = ("logreg", "knn", "mlp")
# the arrays each family's state must hold (besides the standardisation "mean" and "scale")
STATE_ARRAYS = {"logreg": ("coef", "intercept"), "knn": ("points", "labels", "k", "prior"),
                "mlp": ("pca_mean", "pca_components", "w0", "b0", "w1", "b1"), "constant": ("constant",)}


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def apply_platt(raw: np.ndarray, a: float, b: float) -> np.ndarray:
    return sigmoid(a * logit(raw) + b)


def check_head_state(family: str, state: dict[str, np.ndarray]) -> None:
    """Refuse an unknown family and missing, non-numeric, non-finite or misshapen arrays."""
    if family not in FAMILIES:
        raise ArtifactError(f"unknown head family {family!r} in artifact")
    kind = "constant" if "constant" in state else family
    for name in ("mean", "scale", *STATE_ARRAYS[kind]):
        arr = state.get(name)
        if arr is None or arr.dtype.kind not in "fiu" or arr.size == 0 or not np.isfinite(arr).all():
            raise ArtifactError(f"{family} head: array {name!r} is missing, empty, not numeric or not finite")
    if state["mean"].shape != state["scale"].shape or state["mean"].ndim != 1:
        raise ArtifactError(f"{family} head: mean and scale must be vectors of one length")


def head_proba(family: str, state: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """P(label = 1) per row of X, shape (n,), from a fitted head's arrays."""
    s = state
    Z = (np.asarray(X, dtype=np.float64) - s["mean"]) / s["scale"]
    if "constant" in s:
        return np.full(len(Z), float(s["constant"][0]))
    if family == "logreg":
        return sigmoid(Z @ s["coef"] + s["intercept"][0])
    if family == "knn":
        norms = np.linalg.norm(Z, axis=1, keepdims=True)
        norms[norms < 1e-12] = 1.0
        sims = (s["points"] @ (Z / norms).astype(np.float32).T).T  # no transposed copy of the points
        k = int(s["k"][0])
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        # Bayesian smoothing toward the prior keeps probabilities off 0 and 1
        return (s["labels"][idx].sum(axis=1) + float(s["prior"][0])) / (k + 1.0)
    if family == "mlp":
        P = (Z - s["pca_mean"]) @ s["pca_components"].T
        h = np.maximum(P @ s["w0"] + s["b0"], 0.0)
        return sigmoid(h @ s["w1"] + s["b1"][0])
    raise ArtifactError(f"unknown head family {family!r}")


def scorer_outputs(features: Sequence[str], local: Callable[[np.ndarray], np.ndarray],
                   frontier: Callable[[np.ndarray], np.ndarray] | None, platt: tuple[float, float],
                   embeddings: np.ndarray, texts: Sequence[str], stats: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(routing score, calibrated P(local succeeds)): score = 1 - P(local), or P(frontier) - P(local) ("gain")."""
    X = build_features(tuple(features), embeddings, texts, stats)
    p_local = local(X)
    score = 1.0 - p_local if frontier is None else frontier(X) - p_local
    return score, apply_platt(p_local, *platt)


class _Member(Protocol):
    features: Sequence[str]

    def score_and_p(self, embeddings: np.ndarray, texts: Sequence[str], stats: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]: ...


def ensemble_outputs(members: Sequence[_Member], stats: Sequence[tuple[float, float]], embeddings: np.ndarray,
                     texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The mean of the members' standardised scores, and the first (best, calibrated) member's P(local)."""
    total, p0 = 0.0, None
    text_stats = text_stat_matrix(texts) if any("text_stats" in m.features for m in members) else None
    for m, (mu, sd) in zip(members, stats):
        raw, p = m.score_and_p(embeddings, texts, text_stats)
        total = total + (raw - mu) / sd
        p0 = p if p0 is None else p0
    return total / len(members), p0


@dataclass
class SavedHead:
    family: str
    state: dict[str, np.ndarray]
    desc: dict[str, Any]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return head_proba(self.family, self.state, X)


@dataclass
class SavedScorer:
    """One fitted configuration, read from an artifact: local head, optional frontier head, Platt pair."""

    desc: dict[str, Any]
    heads: dict[str, SavedHead]
    platt: tuple[float, float]

    @property
    def features(self) -> Sequence[str]:
        return self.desc["features"]

    @property
    def label(self) -> str:
        return self.desc["label"]

    @classmethod
    def from_state(cls, desc: dict[str, Any], arrays: dict[str, np.ndarray]) -> "SavedScorer":
        heads = {}
        for name, head_desc in desc["heads"].items():
            state = {k[len(name) + 1:]: v for k, v in arrays.items() if k.startswith(f"{name}/")}
            if not state:
                raise ArtifactError(f"the arrays of head {name!r} are missing")
            check_head_state(head_desc["family"], state)
            heads[name] = SavedHead(head_desc["family"], dict(state), head_desc)
        if "local" not in heads or (desc["label"] == "gain") != ("frontier" in heads):
            raise ArtifactError(f"label mode {desc['label']!r} does not match the stored heads {sorted(heads)}")
        a, b = (float(x) for x in desc["platt"])
        if not (np.isfinite(a) and np.isfinite(b)):
            raise ArtifactError("the Platt calibration is not finite")
        return cls(desc, heads, (a, b))

    def score_and_p(self, embeddings: np.ndarray, texts: Sequence[str], stats: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        frontier = self.heads.get("frontier")
        return scorer_outputs(self.features, self.heads["local"].predict_proba,
                              frontier.predict_proba if frontier else None, self.platt, embeddings, texts, stats)


@dataclass
class SavedEnsemble:
    """A saved router's scorer: its members and their standardisation, predicting in numpy."""

    members: list[SavedScorer]
    stats: list[tuple[float, float]]
    desc: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def label(self) -> str:
        return "gain" if any(m.label == "gain" for m in self.members) else "local"

    @classmethod
    def from_state(cls, desc: dict[str, Any], arrays: dict[str, np.ndarray]) -> "SavedEnsemble":
        members = []
        for i, member in enumerate(desc["members"]):
            prefix = f"m{i}/"
            try:
                members.append(SavedScorer.from_state(
                    member, {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}))
            except ArtifactError as exc:
                raise ArtifactError(f"member {i}: {exc.message}") from None
        stats = [(float(a), float(b)) for a, b in desc["stats"]]
        if not members or len(stats) != len(members):
            raise ArtifactError("member count does not match the stored standardisation")
        if not all(np.isfinite(a) and np.isfinite(b) and b > 0 for a, b in stats):
            raise ArtifactError("the stored standardisation is not finite and positive")
        return cls(members, stats, desc, arrays)

    def score_and_p(self, embeddings: np.ndarray, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return ensemble_outputs(self.members, self.stats, embeddings, texts)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(description, arrays) as read: saving a loaded router writes what it loaded."""
        return self.desc, self.arrays
