"""A BERT sentence encoder (mean pooling, L2-normalised) in plain torch, for fast start-up.

`openfirst route` on one query spent most of its time importing sentence-transformers and transformers (about 5 s
on 2 cores) before a 22M-parameter model ran for milliseconds. This module reads a sentence-transformers folder
whose pipeline is BERT -> mean pooling -> normalise (all-MiniLM-L6-v2, the default), with `tokenizers` and
`safetensors` only, and computes the same embeddings (tested against sentence-transformers: cosine >= 0.99999).
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
    """`encode(texts)` -> (n, hidden) float32, L2-normalised; `max_seq_length` tokens per text."""

    def __init__(self, folder: str | Path, device: str = "cpu"):
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.config = json.loads((folder / "config.json").read_text())
        st = folder / "sentence_bert_config.json"
        self.max_seq_length = int(json.loads(st.read_text()).get("max_seq_length", 512)) if st.exists() else 512
        self.w = {k: v.to(device) for k, v in load_file(str(folder / "model.safetensors")).items()}
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.enable_truncation(self.max_seq_length)
        self.tok.enable_padding(pad_id=int(self.config.get("pad_token_id", 0)))
        self.device = device
        self.torch = torch

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.config["hidden_size"])

    def _layer_norm(self, x, prefix: str):
        return self.torch.nn.functional.layer_norm(x, x.shape[-1:], self.w[f"{prefix}.weight"],
                                                   self.w[f"{prefix}.bias"], self.config["layer_norm_eps"])

    def _linear(self, x, prefix: str):
        return self.torch.nn.functional.linear(x, self.w[f"{prefix}.weight"], self.w[f"{prefix}.bias"])

    def _forward(self, ids, mask):
        torch, F, c = self.torch, self.torch.nn.functional, self.config
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = (F.embedding(ids, self.w["embeddings.word_embeddings.weight"])
             + F.embedding(pos, self.w["embeddings.position_embeddings.weight"])[None]
             + self.w["embeddings.token_type_embeddings.weight"][0])
        x = self._layer_norm(x, "embeddings.LayerNorm")
        heads, size = c["num_attention_heads"], c["hidden_size"] // c["num_attention_heads"]
        bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        n, t, _ = x.shape
        for i in range(c["num_hidden_layers"]):
            p = f"encoder.layer.{i}"
            q, k, v = (self._linear(x, f"{p}.attention.self.{m}").view(n, t, heads, size).transpose(1, 2)
                       for m in ("query", "key", "value"))
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(size) + bias, dim=-1) @ v
            att = att.transpose(1, 2).reshape(n, t, heads * size)
            x = self._layer_norm(self._linear(att, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
            h = F.gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = self._layer_norm(self._linear(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        m = mask[..., None].to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)

    def encode(self, texts: Sequence[str], batch_size: int = 64, **_: object) -> np.ndarray:
        out = []
        with self.torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                enc = self.tok.encode_batch(list(texts[start : start + batch_size]))
                ids = self.torch.tensor([e.ids for e in enc], device=self.device)
                mask = self.torch.tensor([e.attention_mask for e in enc], device=self.device)
                out.append(self._forward(ids, mask).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.get_sentence_embedding_dimension()), np.float32)
