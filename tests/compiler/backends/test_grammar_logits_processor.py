"""openfirst's grammar as an outlines logits processor: masks, log-probabilities, finish, usage (tiny model)."""

import math

import numpy as np
import pytest
from pydantic import BaseModel, Field

from openfirst.compiler.backends.grammar_logits_processor import GrammarLogitsProcessor
from openfirst.compiler.grammar import GrammarCompiler
from openfirst.compiler.program import Program, ProgramOptions, Result
from openfirst.compiler.task import compile_task


class Ticket(BaseModel):
    """Classify the ticket."""

    category: str = Field(max_length=12)
    priority: int = Field(ge=1, le=5)


def _program(backend, **opts):
    return Program(compile_task(Ticket), backend, ProgramOptions(**opts))


def test_every_output_token_comes_back_with_its_log_probability_under_the_mask(tiny_backend):
    import torch

    torch.manual_seed(0)
    program = _program(tiny_backend, max_tokens=80)
    convs = [program.task.messages(t) for t in ["login broken", "a much longer ticket text about a refund " * 3]]
    gens = tiny_backend.generate(convs, program.grammar, max_tokens=80, temperature=1.0, seed=3)
    tok = tiny_backend.tokenizer
    for conv, g in zip(convs, gens):
        assert g.token_ids and len(g.token_ids) == len(g.token_logprobs)
        assert tok.decode(g.token_ids, skip_special_tokens=True) == g.text
        assert all(lp <= 0.0 and math.isfinite(lp) for lp in g.token_logprobs)
        # the grammar forces the opening `{"category":"`: under the mask those tokens have probability 1. A raw
        # (unmasked) log-probability of a random-weight model would be about -log(vocab size) = -6
        assert g.token_logprobs[0] == pytest.approx(0.0, abs=1e-6)
        rendered = tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
        assert g.prompt_tokens == len(tok(rendered)["input_ids"])  # left padding not counted
        assert g.completion_tokens == len(g.token_ids) + 1  # the EOS that ended it
        assert g.finished


def test_a_row_cut_at_max_tokens_is_unfinished_and_counts_max_tokens(tiny_backend):
    program = _program(tiny_backend, max_tokens=4)
    g = tiny_backend.generate([program.task.messages("x")], program.grammar, max_tokens=4)[0]
    assert not g.finished and g.completion_tokens == 4 and len(g.token_ids) == 3


def test_unconstrained_generation_still_reports_log_probabilities(tiny_backend):
    program = Program(compile_task(Ticket), tiny_backend, ProgramOptions(max_tokens=20, constrained=False))
    g = tiny_backend.generate([program.task.messages("x")], None, max_tokens=20)[0]
    assert len(g.token_logprobs) == len(g.token_ids) > 0 and all(lp <= 0 for lp in g.token_logprobs)


def test_greedy_batch_rows_match_the_same_rows_alone(tiny_backend):
    """Left padding and per-row matchers: a row decodes the same inside a batch as alone."""
    program = _program(tiny_backend, max_tokens=60)
    convs = [program.task.messages(t) for t in ["short", "a somewhat longer ticket about billing and refunds"]]
    together = tiny_backend.generate(convs, program.grammar, max_tokens=60)
    alone = [tiny_backend.generate([c], program.grammar, max_tokens=60)[0] for c in convs]
    assert [g.text for g in together] == [g.text for g in alone]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, atol=1e-3)


def test_the_repetition_penalty_leaves_prompt_tokens_alone(tiny_backend):
    """transformers' penalty runs over the generated tokens only: step one is unchanged by it."""
    program = _program(tiny_backend, max_tokens=30)
    conv = [program.task.messages("refund refund refund")]
    plain = tiny_backend.generate(conv, None, max_tokens=1)[0]
    penalised = tiny_backend.generate(conv, None, max_tokens=1, repetition_penalty=3.0)[0]
    assert plain.text == penalised.text


def test_the_processor_on_numpy_logits_masks_and_forces_the_end_at_the_last_step(tiny_backend):
    """The llama.cpp shape of the hook (1-D numpy arrays): disallowed tokens get -inf; at the last allowed step a
    row whose grammar may end is forced to EOS and counted finished."""
    info = tiny_backend.tokenizer_info()
    grammar = GrammarCompiler(info).compile({"type": "object", "properties": {"a": {"const": 1}},
                                             "required": ["a"], "additionalProperties": False},
                                            compile_task(Ticket).report)
    eos = tiny_backend.tokenizer.eos_token_id
    text_ids = tiny_backend.tokenizer('{"a":1}', add_special_tokens=False)["input_ids"]
    proc = GrammarLogitsProcessor(grammar, "numpy", eos_ids={eos}, max_tokens=len(text_ids) + 1,
                                  vocab_size=info.ll.vocab_size)
    vocab = len(tiny_backend.tokenizer)
    prompt = [5, 6, 7]
    seen = list(prompt)
    for tok in text_ids:
        logits = proc(np.array(seen, dtype=np.intc), np.zeros(vocab, dtype=np.float32))
        assert np.isfinite(logits[tok]) and np.isneginf(logits).sum() > 0
        seen.append(tok)
    final = proc(np.array(seen, dtype=np.intc), np.zeros(vocab, dtype=np.float32))
    assert np.isfinite(final[eos]) and np.isneginf(np.delete(final, eos)).all()
    assert proc.finished(0) and proc.tokens[0] == text_ids and proc.prompt_tokens == [3]
    assert all(lp <= 0 for lp in proc.logprobs[0])


def test_a_program_result_keeps_the_generation_s_tokens(tiny_backend):
    import torch

    torch.manual_seed(1)
    out = _program(tiny_backend, max_tokens=60, temperature=1.0).run_many(["x"] * 4)
    results = [r for r in out if isinstance(r, Result)]
    assert results, [type(r.error).__name__ for r in out]  # the grammar makes valid outputs of a random model
    assert all(len(r.token_logprobs) == len(r.token_ids) > 0 for r in results)


def test_the_numpy_penalty_punishes_generated_tokens_only():
    from openfirst.compiler.backends.grammar_logits_processor import generated_tokens_penalty

    assert generated_tokens_penalty(1.0) is None
    apply = generated_tokens_penalty(2.0)(3)  # a 3-token prompt
    ids = np.array([[5, 6, 7, 7, 1]])  # prompt 5 6 7, then generated 7 and 1
    logits = np.array([[4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, -4.0]])
    out = apply(ids, logits.copy())
    assert out[0, 1] == 2.0  # generated: divided by the penalty
    assert out[0, 7] == -8.0  # negative: multiplied
    assert out[0, 5] == 4.0 and out[0, 6] == 4.0  # the prompt's own tokens are left alone
    assert (out[0, [0, 2, 3, 4]] == 4.0).all()
