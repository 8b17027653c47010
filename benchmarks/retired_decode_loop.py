"""The retired hand-written decode loop, kept only as the benchmark's anchor ("today's in-process transformers path"
before issue 15): token-by-token forward passes with its own KV-cache shim and repetition penalty, openfirst's
grammar applied by hand. Not used by openfirst itself: `TransformersBackend` now generates through outlines and
transformers' own `generate`.
"""

from __future__ import annotations

from typing import Callable, Sequence

from openfirst.compiler.backends.base import Generation
from openfirst.compiler.backends.transformers_local import TransformersBackend
from openfirst.compiler.errors import BackendError


class RetiredLoopBackend(TransformersBackend):
    name = "transformers (retired loop)"

    def render(self, conversation: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

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
