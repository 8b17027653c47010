"""vLLM's repetition penalty over the generated tokens only, as a per-request logits processor.

vLLM's own `repetition_penalty` counts the prompt's tokens too, so it punishes the input's words, exactly what
extraction has to copy. `GeneratedTokensPenalty` is installed on the engine (`LLM(logits_processors=[...])`) and applies
a request's `extra_args["openfirst_generated_penalty"]` to the tokens that request has generated so far, with the
same rule as vLLM's and transformers' penalty (positive logits divided, negative ones multiplied) and as openfirst's
processor on llama.cpp and transformers (`logits.generated_tokens_penalty`).
"""

from __future__ import annotations

from typing import Any

import torch
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

EXTRA_ARG = "openfirst_generated_penalty"


def _penalise(penalty: float):
    def apply(output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
        if not output_ids:
            return logits
        ids = torch.tensor(sorted(set(output_ids)), dtype=torch.long, device=logits.device)
        values = logits[ids]
        logits[ids] = torch.where(values > 0, values / penalty, values * penalty)
        return logits

    return apply


class GeneratedTokensPenalty(AdapterLogitsProcessor):
    """Per request: the penalty in `extra_args[EXTRA_ARG]` (absent or 1.0: nothing) over its generated tokens."""

    def is_argmax_invariant(self) -> bool:
        return False  # it can change the greedy choice

    def new_req_logits_processor(self, params: Any):
        penalty = float((params.extra_args or {}).get(EXTRA_ARG, 1.0) or 1.0)
        return None if penalty == 1.0 else _penalise(penalty)
