"""openfirst's repetition penalty for vLLM in process: a per-request logits processor over generated tokens only."""

import pytest


def test_the_vllm_penalty_processor_touches_generated_tokens_only():
    pytest.importorskip("vllm")
    import torch

    from openfirst.compiler.backends.vllm_penalty import GeneratedTokensPenalty

    class Params:
        extra_args = {"openfirst_generated_penalty": 2.0}

    proc = GeneratedTokensPenalty.__new__(GeneratedTokensPenalty)  # the per-request part needs no engine config
    apply = proc.new_req_logits_processor(Params())
    logits = torch.tensor([4.0, -4.0, 4.0, 1.0])
    out = apply([0, 1, 1], logits.clone())
    assert out.tolist() == [2.0, -8.0, 4.0, 1.0]  # token 2 (not generated) untouched, repeats counted once
    Params.extra_args = {}
    assert proc.new_req_logits_processor(Params()) is None and not proc.is_argmax_invariant()
