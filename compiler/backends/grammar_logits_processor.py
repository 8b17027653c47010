"""openfirst's compiled grammar as an outlines logits processor, recording each chosen token's log-probability.

outlines' steerable models (`outlines.from_transformers`, `outlines.from_llamacpp`) generate with the engine's own
loop and call a logits processor at every step. `GrammarLogitsProcessor` masks the logits with openfirst's grammar
(llguidance or XGrammar matchers, bounded whitespace) and keeps, per row, the tokens chosen so far and their
log-probabilities under the mask (renormalised over the allowed tokens, temperature 1): the evidence the cascade's
per-field confidence is built from. outlines' wrappers return text only, so the processor also records what they
drop: prompt length, completion tokens and whether each row ended by the grammar (or EOS) rather than at
`max_tokens`.

A processor sees the token chosen at step t when it is called for step t+1; the last step's token is never seen.
So at the last allowed step (`max_tokens`) a row whose grammar may end is forced to EOS (a finished output, not a
truncated one), and a row whose grammar may not end is reported unfinished.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from outlines.processors.base_logits_processor import OutlinesLogitsProcessor

from openfirst.compiler.errors import BackendError


class GrammarLogitsProcessor(OutlinesLogitsProcessor):
    """One generation call's grammar mask and token log-probabilities; `grammar` None: unconstrained (log-probs
    only). `tensor_library`: "torch" (transformers) or "numpy" (llama.cpp)."""

    def __init__(self, grammar: Any, tensor_library: str, *, eos_ids: set[int], max_tokens: int, vocab_size: int,
                 pad_id: int | None = None, on_token: Callable[[int, int], None] | None = None,
                 penalty: Callable[[int], Callable[[Any, Any], Any]] | None = None):
        super().__init__(tensor_library)
        self.grammar = grammar
        self.vocab_size = vocab_size  # the grammar tokenizer's
        self.torch = tensor_library == "torch"
        self.eos_ids = eos_ids
        self.eos = min(eos_ids)
        self.max_tokens = max_tokens
        self.pad_id = pad_id
        self.on_token = on_token
        self.penalty = penalty  # prompt width -> the engine's repetition penalty over generated tokens, or None
        self.reset()

    def reset(self) -> None:
        self.steps = 0
        self.rows = 0
        self.prompt_tokens: list[int] = []
        self.tokens: list[list[int]] = []
        self.logprobs: list[list[float]] = []
        self.done: list[bool] = []
        self.forced_end: list[bool] = []
        self._matchers: list[Any] = []
        self._bitmask = None
        self._last = None  # the previous step's masked log-probabilities, one row per sequence
        self._penalise = None

    # --- what the backend reads after generation -------------------------------------------------------
    def finished(self, row: int) -> bool:
        """Whether the row ended by EOS / the grammar's end (False: cut at max_tokens)."""
        return self.done[row] or self.forced_end[row] or self.steps < self.max_tokens

    def completion_tokens(self, row: int) -> int:
        """Tokens generated for the row, its final token (EOS or the cut-off one) included."""
        return len(self.tokens[row]) + 1 if self.steps else 0

    # --- outlines' hook ----------------------------------------------------------------------------------
    def process_logits(self, input_ids: Any, logits: Any) -> Any:
        if self.steps == 0:
            self._setup(input_ids)
        else:
            self._observe(input_ids)
        self.steps += 1
        if self._penalise is not None:
            logits = self._penalise(input_ids, logits)
        if self.grammar is not None:
            logits = self._mask(logits)
        last_step = self.steps >= self.max_tokens
        if last_step and self.grammar is not None:
            logits = self._force_end_where_possible(logits)
        self._last = self._log_softmax(logits)
        return logits

    def _setup(self, input_ids: Any) -> None:
        self.rows = int(input_ids.shape[0])
        width = int(input_ids.shape[1])
        for i in range(self.rows):
            row = input_ids[i].tolist()
            lead = 0
            if self.pad_id is not None:
                while lead < width and row[lead] == self.pad_id:
                    lead += 1
            self.prompt_tokens.append(width - lead)
        self.tokens = [[] for _ in range(self.rows)]
        self.logprobs = [[] for _ in range(self.rows)]
        self.done = [False] * self.rows
        self.forced_end = [False] * self.rows
        if self.grammar is not None:
            self._matchers = [self.grammar.matcher() for _ in range(self.rows)]
        if self.penalty is not None:
            self._penalise = self.penalty(width)

    def _observe(self, input_ids: Any) -> None:
        """Record the token each live row chose at the previous step, and advance its matcher."""
        for i in range(self.rows):
            if self.done[i]:
                continue
            tok = int(input_ids[i, -1])
            if tok in self.eos_ids:
                self.done[i] = True
                continue
            self.tokens[i].append(tok)
            self.logprobs[i].append(float(self._last[i, tok]))
            if self.on_token is not None:
                self.on_token(i, tok)
            if self._matchers:
                m = self._matchers[i]
                m.consume_token(tok)
                if m.is_error():
                    raise BackendError(f"grammar matcher error: {m.get_error()}")

    def _mask(self, logits: Any) -> Any:
        if self.torch:
            import llguidance.torch as llt
        else:
            import llguidance.numpy as llt
        vocab = self.vocab_size
        if self._bitmask is None:
            self._bitmask = llt.allocate_token_bitmask(self.rows, vocab)
        live = []
        for i, m in enumerate(self._matchers):
            if self.done[i]:
                continue
            live.append(i)
            if hasattr(m, "fill"):  # an XGrammar matcher (same packed-bitmask layout)
                m.fill(self._bitmask, i)
            else:
                llt.fill_next_token_bitmask(m, self._bitmask, i)
        width = logits.shape[1]
        for i in live:
            if width < vocab:  # the model's head is narrower than the tokenizer's vocabulary
                full = _pad(logits[i], vocab, self.torch)
                llt.apply_token_bitmask_inplace(full, self._bitmask[i])
                logits[i] = full[:width]
            else:  # a wider head (padded embedding rows): the extra ids are never allowed
                llt.apply_token_bitmask_inplace(logits[i, :vocab], self._bitmask[i])
                logits[i, vocab:] = -math.inf
        return logits

    def _force_end_where_possible(self, logits: Any) -> Any:
        for i, m in enumerate(self._matchers):
            if not self.done[i] and (m.is_stopped() or m.is_accepting()):
                logits[i, :] = -math.inf
                logits[i, self.eos] = 0.0
                self.forced_end[i] = True
        return logits

    def _log_softmax(self, logits: Any) -> Any:
        if self.torch:
            import torch

            return torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
        import numpy as np

        x = logits.astype(np.float64)
        top = np.max(x, axis=-1, keepdims=True)
        return x - top - np.log(np.sum(np.exp(x - top), axis=-1, keepdims=True))


def generated_tokens_penalty(penalty: float) -> Callable[[int], Callable[[Any, Any], Any]] | None:
    """A repetition penalty over the generated tokens only, for numpy logits (llama.cpp): a token already generated
    has its logit divided by `penalty` (multiplied when negative), as transformers' `RepetitionPenaltyLogitsProcessor`
    does with `prompt_ignore_length`. llama.cpp's own `repeat_penalty` also punishes the prompt's tokens, i.e. the
    input's words that an extraction must copy. None for 1.0 (no penalty)."""
    if penalty == 1.0:
        return None

    def for_prompt(width: int) -> Callable[[Any, Any], Any]:
        import numpy as np

        def apply(input_ids: Any, logits: Any) -> Any:
            for i in range(logits.shape[0]):
                seen = np.unique(np.asarray(input_ids[i, width:], dtype=np.int64))
                seen = seen[seen < logits.shape[1]]
                if seen.size:
                    values = logits[i, seen]
                    logits[i, seen] = np.where(values < 0, values * penalty, values / penalty)
            return logits
        return apply
    return for_prompt


def _pad(row: Any, width: int, torch_tensors: bool) -> Any:
    if torch_tensors:
        import torch

        return torch.cat([row, torch.full((width - row.shape[0],), -math.inf, dtype=row.dtype, device=row.device)])
    import numpy as np

    return np.concatenate([row, np.full(width - row.shape[0], -np.inf, dtype=row.dtype)])
