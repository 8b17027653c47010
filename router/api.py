"""The router's Python API: `Router.load(dir)`, `route(text)`, `route_many(texts)`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from router.artifact import load_artifact, save_artifact
from router.embeddings import Embedder
from router.errors import ArtifactError, ConfigError
from router.heads import Head
from router.scorer import EnsembleScorer, RoutingScorer


@dataclass(frozen=True)
class Decision:
    """Where one query goes. `target` is "frontier" iff `score >= threshold`.

    `score` is the routing score (expected accuracy gained by the frontier model, or
    1 - p_success, depending on the router's label mode); `p_success` is the
    calibrated probability that the local model answers correctly.
    """

    target: str
    p_success: float
    threshold: float
    score: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Router:
    def __init__(self, scorer: EnsembleScorer, threshold: float, config: dict[str, Any],
                 embedder: Embedder | None = None):
        self.scorer = scorer
        self.threshold = float(threshold)
        self.config = config
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(self.config["embedder"]["model"], use_cache=False, show_progress=False)
        return self._embedder

    @property
    def expected_frontier_share(self) -> float | None:
        """The frontier share its operating point was chosen for (out-of-fold), if the artifact records one."""
        return (self.config.get("operating_point") or {}).get("frontier_share")

    # -- persistence ------------------------------------------------------------
    def save(self, path: Path | str) -> Path:
        arrays: dict[str, np.ndarray] = {}
        members = []
        for i, m in enumerate(self.scorer.members):
            heads = {"local": m.local_head_}
            if m.frontier_head_ is not None:
                heads["frontier"] = m.frontier_head_
            for name, head in heads.items():
                arrays.update({f"m{i}/{name}/{k}": v for k, v in head.state_.items()})
            members.append(dict(m.describe(), platt=list(m.platt_), heads={n: h.describe() for n, h in heads.items()}))
        config = dict(self.config, threshold=self.threshold,
                      scorer={"members": members, "stats": [list(s) for s in self.scorer.stats_]})
        return save_artifact(path, config, arrays)

    @classmethod
    def load(cls, path: Path | str, embedder: Embedder | None = None) -> "Router":
        config, arrays = load_artifact(path)
        try:
            members = [_member_from(i, desc, arrays) for i, desc in enumerate(config["scorer"]["members"])]
            scorer = EnsembleScorer(members)
            scorer.stats_ = [(float(a), float(b)) for a, b in config["scorer"]["stats"]]
            dim = int(config["embedder"]["dimension"])
            threshold = float(config["threshold"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ArtifactError(f"{path}: incompatible router artifact ({type(exc).__name__}: {exc})") from exc
        if not members or len(scorer.stats_) != len(members):
            raise ArtifactError(f"{path}: incompatible router artifact (member count)")
        for m in members:
            if "embedding" in m.features and m.local_head_.state_["mean"].shape[0] < dim:
                raise ArtifactError(f"{path}: arrays do not match the embedding dimension {dim}")
        return cls(scorer, threshold, config, embedder)

    # -- routing ----------------------------------------------------------------
    def route(self, text: str) -> Decision:
        return self.route_many([text])[0]

    def route_many(self, texts: Sequence[str]) -> list[Decision]:
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ConfigError(f"query {i} is empty or not text")
        if not texts:
            return []
        emb = self.embedder.encode(texts)
        expected = int(self.config["embedder"]["dimension"])
        if emb.shape[1] != expected:
            raise ArtifactError(f"embedder gives dimension {emb.shape[1]}, the router was trained on {expected}")
        with _one_blas_thread():
            score, p = self.scorer.score_and_p(emb, texts)
        return [self._decide(float(s), float(q)) for s, q in zip(score, p)]

    def scores(self, embeddings: np.ndarray, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(routing score, p_success) for precomputed embeddings (evaluation)."""
        return self.scorer.score_and_p(embeddings, texts)

    def _decide(self, score: float, p: float) -> Decision:
        frontier = score >= self.threshold
        what = "z-scored expected frontier gain" if self.scorer.label == "gain" else "z-scored 1 - p_success"
        reason = f"{what} {score:.4f} {'>=' if frontier else '<'} threshold {self.threshold:.4f}"
        return Decision("frontier" if frontier else "local", p, self.threshold, score, reason)



_threadpools = None


def _one_blas_thread():
    """Single-threaded BLAS for the heads: on a few queries BLAS threads gain nothing, and their spinning after
    each call starves the next embedding's torch threads (2 cores: 30 ms against 76 ms p50 per query,
    benchmarks/results/router-latency.md)."""
    global _threadpools
    if _threadpools is None:
        from threadpoolctl import ThreadpoolController

        _threadpools = ThreadpoolController()
    return _threadpools.limit(limits=1, user_api="blas")


def _member_from(i: int, desc: dict[str, Any], arrays: dict[str, np.ndarray]) -> RoutingScorer:
    scorer = RoutingScorer(desc["label"], desc["family"], desc["params"], desc["features"], desc["seed"])
    heads = {}
    for name, hdesc in desc["heads"].items():
        prefix = f"m{i}/{name}/"
        state = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        if not state:
            raise ArtifactError(f"artifact lacks the arrays of member {i} head {name!r}")
        heads[name] = Head.from_state(hdesc, state)
    if desc["label"] == "gain" and "frontier" not in heads:
        raise ArtifactError(f"member {i}: label mode 'gain' but no frontier head stored")
    scorer.local_head_ = heads["local"]
    scorer.frontier_head_ = heads.get("frontier")
    scorer.platt_ = tuple(float(x) for x in desc["platt"])
    return scorer
