"""A FAKE embedder for fast tests and benchmarks of the router's plumbing: no model runs.

`HashingEmbedder` maps each word (lower-cased) to a fixed pseudo-random unit vector (from a hash of the word)
and embeds a text as the L2-normalised sum of its words' vectors. Texts that share words get similar vectors,
so a router trained on it learns something real from word overlap, in microseconds per text. It has the
`Embedder` interface (`model_id`, `encode`, `dimension`) and is never a stand-in for quality numbers.
`hashing_router()` is a small real Router fitted on it, for tests of routing plumbing.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

import numpy as np

WORD = re.compile(r"\w+")


class HashingEmbedder:
    """FAKE embedder: hashed bag of words, `dimension` floats, L2-normalised."""

    def __init__(self, dimension: int = 32):
        if dimension < 1:
            raise ValueError("dimension must be >= 1")
        self.dimension = dimension
        self.model_id = f"fake-hashing-{dimension}"
        self._vectors: dict[str, np.ndarray] = {}

    def _word(self, word: str) -> np.ndarray:
        vec = self._vectors.get(word)
        if vec is None:
            seed = int.from_bytes(hashlib.sha256(word.encode("utf-8", "surrogatepass")).digest()[:8], "little")
            vec = np.random.default_rng(seed).normal(size=self.dimension)
            vec = self._vectors[word] = vec / np.linalg.norm(vec)
        return vec

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            total = sum((self._word(w) for w in WORD.findall(text.lower())), np.zeros(self.dimension))
            norm = np.linalg.norm(total)
            out[i] = total / norm if norm > 0 else total
        return out


def hashing_router(threshold: float = 0.0):
    """A real Router (fitted heads) on the FAKE embedder: texts with 'theorem' go to the frontier, 'refund' stays."""
    from openfirst.router.api import Router
    from openfirst.router.scorer import EnsembleScorer, RoutingScorer

    emb = HashingEmbedder(16)
    texts = [f"prove the theorem {i}" if i % 2 else f"refund my order {i}" for i in range(60)]
    scorer = EnsembleScorer([RoutingScorer("local", "logreg", {"C": 1.0}, ["embedding"])])
    scorer.fit(emb.encode(texts), texts, np.array([float(i % 2 == 0) for i in range(60)]))
    return Router(scorer, threshold, {"embedder": {"model": emb.model_id, "dimension": 16}}, embedder=emb)


MULTI_TEXTS = {"refund": "refund my order {i}", "contract": "translate the contract clause {i}",
               "theorem": "prove the theorem {i}"}


def hashing_multi_router(models: tuple[str, str, str] = ("local", "mid", "frontier"),
                         costs: tuple[float, float, float] = (0.0, 0.01, 0.1), lam: float = 5.0):
    """A real many-model router (a fitted kNN) on the FAKE embedder over three models, cheapest first: 'refund'
    texts succeed on all three, 'contract' texts on the second and third, 'theorem' texts on the third only; at
    `lam` each kind goes to the cheapest model that succeeds."""
    from openfirst.router.multi_router import MultiData, MultiModelRouter, fit_model

    emb = HashingEmbedder(16)
    texts, scores = [], []
    for i in range(90):
        kind = list(MULTI_TEXTS)[i % 3]
        texts.append(MULTI_TEXTS[kind].format(i=i))
        scores.append({"refund": (1, 1, 1), "contract": (0, 1, 1), "theorem": (0, 0, 1)}[kind])
    data = MultiData(emb.encode(texts), texts, np.array(scores, dtype=float), np.tile(costs, (90, 1)),
                     np.arange(90), list(models))
    config = {"family": "knn", "params": {"k": 20}, "features": ["embedding"]}
    return MultiModelRouter(list(models), config, fit_model(config, data, 0), costs, lam,
                            {"model": emb.model_id, "dimension": 16}, embedder=emb)
