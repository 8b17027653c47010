"""In-process llama.cpp on the embedded SmolLM2 GGUF, live: valid outputs, log-probabilities, the outlines route."""

import json
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by .ci/setup")

from openfirst.compiler.backends.llamacpp_local import LlamaCppBackend  # noqa: E402
from openfirst.compiler.errors import BackendError, IncompleteOutput  # noqa: E402
from openfirst.compiler.program import UNGUARDED, Program, ProgramOptions, Result  # noqa: E402
from openfirst.compiler.task import load_task  # noqa: E402

pytestmark = pytest.mark.slow  # a real model

TASKS = Path(__file__).resolve().parents[3] / "datasets" / "tasks"


@pytest.fixture(scope="module")
def backend():
    return LlamaCppBackend.load(n_threads=2)


@pytest.fixture(scope="module")
def ticket():
    return load_task(f"{TASKS / 'support_ticket.py'}:SupportTicket")


def texts(n):
    rows = [json.loads(x) for x in (TASKS / "support_tickets.jsonl").read_text().splitlines() if x.strip()]
    return [r["text"] for r in rows[:n]]


def test_the_embedded_gguf_gives_schema_valid_outputs_with_log_probabilities(backend, ticket):
    # the engine's own behaviour: no leak guard (it would retry the example copies this 135M model makes)
    program = Program(ticket, backend, ProgramOptions(max_tokens=200, max_retries=0, repetition_penalty=1.3,
                                                      **UNGUARDED))
    results = program.run_many(texts(3))
    assert all(isinstance(r, Result) for r in results), [getattr(r, "error", None) for r in results]
    for r in results:
        assert r.backend == "llama.cpp" and r.usage["prompt_tokens"] > 100
        assert r.usage["completion_tokens"] == len(r.token_ids) + 1
        assert backend.llm.detokenize(r.token_ids).decode() == r.text
        assert len(r.token_logprobs) == len(r.token_ids)
        # `{"category":"` is forced by the grammar: probability 1 under the mask
        assert r.token_logprobs[0] == pytest.approx(0.0, abs=1e-6)
        assert min(r.token_logprobs) < -0.01  # the free text is not forced


def test_the_leak_guard_on_the_real_model_retries_a_copied_example(backend, ticket):
    """Live: unguarded, the embedded model answers ticket t2 (an email change) with the example's summary word for
    word; with the default guards it is retried without the examples and the answer is the model's own."""
    copied = "Customer was double-charged for the March invoice."
    text = texts(2)[1]
    unguarded = Program(ticket, backend, ProgramOptions(max_tokens=200, **UNGUARDED)).run(text)
    assert unguarded.output.summary == copied
    guarded = Program(ticket, backend, ProgramOptions(max_tokens=200)).run(text)
    assert guarded.attempts >= 2 and guarded.output.summary != copied
    assert ticket.leaks(guarded.output.model_dump(mode="json"), text) == []


def test_the_outlines_wrapper_route_decodes_the_same_tokens(backend, ticket):
    """Greedy: outlines' LlamaCpp wrapper (`via_outlines`) and llama.cpp's own API give the same output."""
    via = LlamaCppBackend(backend.llm, backend.model_name, via_outlines=True)
    program = Program(ticket, backend, ProgramOptions(max_tokens=120, repetition_penalty=1.3))
    conv = [ticket.messages(texts(2)[1])]
    a = backend.generate(conv, program.grammar, 120, repetition_penalty=1.3)[0]
    b = via.generate(conv, program.grammar, 120, repetition_penalty=1.3)[0]
    assert a.text == b.text and a.token_ids == b.token_ids and a.finished and b.finished


def test_max_tokens_cuts_into_an_incomplete_output(backend, ticket):
    program = Program(ticket, backend, ProgramOptions(max_tokens=6))
    with pytest.raises(IncompleteOutput):
        program.run(texts(1)[0])


def test_a_prompt_longer_than_the_context_fails_that_input_only(backend, ticket):
    """Found by the MaskBench run: llama.cpp raised ValueError out of generate and ended the whole batch."""
    program = Program(ticket, backend, ProgramOptions(max_tokens=60, max_retries=0))
    long_text, short_text = "refund please " * 3000, texts(1)[0]
    long, short = program.run_many([long_text, short_text])
    assert isinstance(long.error, BackendError) and "context" in long.error.message and long.error.hint
    assert isinstance(short, Result)


def test_a_missing_gguf_is_a_clear_error(tmp_path):
    with pytest.raises(BackendError, match="no GGUF file"):
        LlamaCppBackend.load(tmp_path / "nope.gguf")
