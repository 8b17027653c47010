"""A BERT sentence encoder (mean pooling, L2-normalised) in numpy, for fast start-up.

`openfirst route` on one query spent most of its time importing sentence-transformers and transformers (about 5 s
on 2 cores) before a 22M-parameter model ran for milliseconds. This module reads a sentence-transformers folder
whose pipeline is BERT -> mean pooling -> normalise (all-MiniLM-L6-v2, the default), with `tokenizers` and
`safetensors` and numpy only, and computes the same embeddings (tested against sentence-transformers: cosine >= 0.99999).
Any other model folder goes through sentence-transformers as before.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np


def supported(folder: str | Path) -> bool:
    """A sentence-transformers folder this encoder reproduces exactly: BERT, mean pooling, then Normalize."""
    folder = Path(folder)
    try:
        modules = json.loads((folder / "modules.json").read_text())
        config = json.loads((folder / "config.json").read_text())
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError):
        return False
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    return (kinds == ["Transformer", "Pooling", "Normalize"] and config.get("model_type") == "bert"
            and config.get("hidden_act") == "gelu" and config.get("position_embedding_type", "absolute") == "absolute"
            and pooling.get("pooling_mode_mean_tokens") is True
            and not any(pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens",
                                                 "pooling_mode_mean_sqrt_len_tokens"))
            and (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists())


class LightBert:
    """`encode(texts)` -> (n, hidden) float32, L2-normalised; `max_seq_length` tokens per text. numpy only: a
    22M-parameter encoder on a few queries needs no torch (whose import alone took 1.5 s on 2 cores)."""

    def __init__(self, folder: str | Path, device: str = "cpu"):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.config = json.loads((folder / "config.json").read_text())
        st = folder / "sentence_bert_config.json"
        self.max_seq_length = int(json.loads(st.read_text()).get("max_seq_length", 512)) if st.exists() else 512
        self.w = {k: v.astype(np.float32) for k, v in load_file(str(folder / "model.safetensors")).items()
                  if v.dtype.kind == "f"}
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.enable_truncation(self.max_seq_length)
        self.tok.enable_padding(pad_id=int(self.config.get("pad_token_id", 0)))

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.config["hidden_size"])

    def _layer_norm(self, x: np.ndarray, prefix: str) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.config["layer_norm_eps"]) * self.w[f"{prefix}.weight"] + \
            self.w[f"{prefix}.bias"]

    def _linear(self, x: np.ndarray, prefix: str) -> np.ndarray:
        return x @ self.w[f"{prefix}.weight"].T + self.w[f"{prefix}.bias"]

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from scipy.special import erf

        c = self.config
        n, t = ids.shape
        x = (self.w["embeddings.word_embeddings.weight"][ids] + self.w["embeddings.position_embeddings.weight"][:t][None]
             + self.w["embeddings.token_type_embeddings.weight"][0])
        x = self._layer_norm(x, "embeddings.LayerNorm")
        heads, size = c["num_attention_heads"], c["hidden_size"] // c["num_attention_heads"]
        bias = (1.0 - mask[:, None, None, :].astype(np.float32)) * np.finfo(np.float32).min
        for i in range(c["num_hidden_layers"]):
            p = f"encoder.layer.{i}"
            q, k, v = (self._linear(x, f"{p}.attention.self.{m}").reshape(n, t, heads, size).transpose(0, 2, 1, 3)
                       for m in ("query", "key", "value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            att = (scores / scores.sum(-1, keepdims=True)) @ v
            att = att.transpose(0, 2, 1, 3).reshape(n, t, heads * size)
            x = self._layer_norm(self._linear(att, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
            h = self._linear(x, f"{p}.intermediate.dense")
            h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))  # exact GELU, as BERT's "gelu"
            x = self._layer_norm(self._linear(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        m = mask[..., None].astype(np.float32)
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def encode(self, texts: Sequence[str], batch_size: int = 64, **_: object) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            enc = self.tok.encode_batch(list(texts[start : start + batch_size]))
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            out.append(self._forward(ids, mask))
        return np.concatenate(out) if out else np.zeros((0, self.get_sentence_embedding_dimension()), np.float32)
