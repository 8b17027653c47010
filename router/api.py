"""The router's Python API: `Router.load(dir)`, `route(text)`, `route_many(texts)`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from openfirst.router.artifact import load_artifact, save_artifact
from openfirst.core.errors import ConfigError
from openfirst.router.embeddings import Embedder, EmbedderSpec
from openfirst.router.errors import ArtifactError
from openfirst.router.policy import threshold_for_share
from openfirst.router.inference import SavedEnsemble

if TYPE_CHECKING:
    from openfirst.router.scorer import EnsembleScorer


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
    score_kind: str = ""  # what `score` and `threshold` measure (the threshold applies to the score, not p_success)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Router:
    """A fitted routing scorer, the threshold on its score, and the embedder spec it was trained with."""

    def __init__(self, scorer: "EnsembleScorer | SavedEnsemble", threshold: float, config: dict[str, Any],
                 embedder: Embedder | None = None):
        self.scorer = scorer
        self.threshold = float(threshold)
        self.config = config
        self.embedder_spec = EmbedderSpec.from_config(config.get("embedder"))
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        """The embedder routing uses (no disk cache: live traffic is mostly new text)."""
        if self._embedder is None:
            self._embedder = self.embedder_spec.embedder(use_cache=False, show_progress=False)
        return self._embedder

    @property
    def expected_frontier_share(self) -> float | None:
        """The frontier share its operating point was chosen for (out-of-fold), if the artifact records one."""
        return (self.config.get("operating_point") or {}).get("frontier_share")

    # -- persistence ------------------------------------------------------------
    def save(self, path: Path | str) -> Path:
        scorer, arrays = self.scorer.state()
        config = dict(self.config, embedder=self.embedder_spec.to_config(), threshold=self.threshold, scorer=scorer)
        return save_artifact(path, config, arrays)

    @classmethod
    def load(cls, path: Path | str, embedder: Embedder | None = None) -> "Router":
        config, arrays = load_artifact(path)
        try:
            scorer = SavedEnsemble.from_state(config["scorer"], arrays)  # numpy only: no scikit-learn import
            spec = EmbedderSpec.from_config(config["embedder"])
            threshold = float(config["threshold"])
        except (ArtifactError, ConfigError) as exc:
            raise ArtifactError(f"{path}: incompatible router artifact ({exc.message})") from None
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ArtifactError(f"{path}: incompatible router artifact ({type(exc).__name__}: {exc})") from exc
        if np.isnan(threshold):
            raise ArtifactError(f"{path}: the threshold is not a number")
        for m in scorer.members:
            if "embedding" in m.features and m.heads["local"].state["mean"].shape[0] < spec.dimension:
                raise ArtifactError(f"{path}: arrays do not match the embedding dimension {spec.dimension}")
        return cls(scorer, threshold, config, embedder)

    # -- routing ----------------------------------------------------------------
    def route(self, text: str) -> Decision:
        return self.route_many([text])[0]

    def route_many(self, texts: Sequence[str], threshold: float | None = None) -> list[Decision]:
        """Decisions at `threshold` (None: the artifact's own operating point)."""
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ConfigError(f"query {i} is empty or not text")
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:
                raise ConfigError(f"query {i} is not valid Unicode text (it holds a lone surrogate)",
                                  hint="send UTF-8 text; escape sequences like \\ud800 alone are not characters") from None
        if not texts:
            return []
        score, p = self.scores(self.embedder.encode(texts), texts)
        return [self.decide(float(s), float(q), threshold) for s, q in zip(score, p)]

    def scores(self, embeddings: np.ndarray, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(routing score, p_success) for precomputed embeddings."""
        if embeddings.shape[1] != self.embedder_spec.dimension:
            raise ArtifactError(f"embedder gives dimension {embeddings.shape[1]}, the router was trained on "
                                f"{self.embedder_spec.dimension}")
        with _one_blas_thread():
            return self.scorer.score_and_p(embeddings, texts)

    def calibration_scores(self, queries: Sequence[str]) -> np.ndarray:
        """Routing scores of a sample like the expected traffic; embeddings go through the on-disk cache."""
        queries = list(queries)
        embedder = self.embedder_spec.embedder(use_cache=True, show_progress=False)
        return self.scores(embedder.encode(queries), queries)[0]

    def threshold_for_share(self, queries: Sequence[str], share: float) -> float:
        """The threshold that sends `share` of these queries (a sample like the expected traffic) to the frontier."""
        return threshold_for_share(self.calibration_scores(queries), share)

    def decide(self, score: float, p_success: float, threshold: float | None = None) -> Decision:
        """The decision for a routing score at `threshold` (None: the artifact's own operating point)."""
        t = self.threshold if threshold is None else float(threshold)
        frontier = score >= t
        what = "z-scored expected frontier gain" if self.scorer.label == "gain" else "z-scored 1 - p_success"
        reason = f"{what} {score:.4f} {'>=' if frontier else '<'} threshold {t:.4f}"
        return Decision("frontier" if frontier else "local", p_success, t, score, reason, what)


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
