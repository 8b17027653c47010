import gzip
import itertools
import json

import pytest
from pydantic import BaseModel, Field

from openfirst.cli import main
from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.errors import IncompleteOutput, OutputValidationError
from openfirst.compiler.program import Failure, Program, ProgramOptions, Result
from openfirst.compiler.schema import SchemaOptions
from openfirst.compiler.task import compile_task
from tests.helpers import SHARED_DATA


class Ticket(BaseModel):
    """Classify the ticket."""

    category: str = Field(max_length=12)
    priority: int = Field(ge=1, le=5)


@pytest.mark.slow
def test_constrained_output_is_valid(tiny_backend):
    """A random-weight model under the grammar: every answer that finishes within max_tokens is a valid Ticket."""
    import torch

    torch.manual_seed(0)
    program = Program(compile_task(Ticket), tiny_backend, ProgramOptions(max_tokens=80, temperature=1.0))
    results = program.run_many(["login broken"] * 6)
    valid = [r for r in results if isinstance(r, Result)]
    assert len(valid) >= 4, [type(r.error).__name__ for r in results if isinstance(r, Failure)]
    for r in valid:
        assert isinstance(r.output, Ticket) and 1 <= r.output.priority <= 5 and len(r.output.category) <= 12
        assert r.usage["completion_tokens"] > 0 and r.backend == "transformers"
    assert all(isinstance(r.error, IncompleteOutput) for r in results if isinstance(r, Failure))


def test_truncation_raises_incomplete_output(tiny_backend):
    program = Program(compile_task(Ticket), tiny_backend, ProgramOptions(max_tokens=3))
    with pytest.raises(IncompleteOutput) as err:
        program.run("anything")
    assert err.value.tokens == 3


class Odd(BaseModel):
    """Give an odd number."""

    n: int

    def model_post_init(self, _ctx):
        if self.n % 2 == 0:
            raise ValueError("n must be odd")


def test_retry_feeds_the_validation_error_back():
    backend = ScriptedBackend(['{"n":2}', '{"n":3}'])
    result = Program(compile_task(Odd), backend, ProgramOptions(max_retries=2)).run("x")
    assert result.output.n == 3 and result.attempts == 2
    retry_conversation = backend.seen[1]
    assert retry_conversation[-2] == {"role": "assistant", "content": '{"n":2}'}
    assert "n must be odd" in retry_conversation[-1]["content"]
    assert result.usage == {"prompt_tokens": 20, "completion_tokens": 10}


def test_retries_are_bounded():
    backend = ScriptedBackend(['{"n":4}'], cycle=True)
    with pytest.raises(OutputValidationError) as err:
        Program(compile_task(Odd), backend, ProgramOptions(max_retries=1)).run("x")
    assert err.value.attempts == 2 and len(backend.seen) == 2


def sampled_schemas(k: int, seed: int = 0):
    import random

    with gzip.open(SHARED_DATA / "jsonschemabench" / "maskbench.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in itertools.islice(fh, 2000)]
    return random.Random(seed).sample(rows, k)


@pytest.mark.slow
def test_random_model_on_real_schemas_never_returns_invalid_output(tiny_backend):
    from openfirst.compiler.errors import CompilerError
    from openfirst.compiler.task import compile_json_schema
    from openfirst.compiler.validation import make_validator

    outcomes = {"valid": 0, "typed_error": 0}
    for row in sampled_schemas(12):
        try:
            task = compile_json_schema(row["schema"], "Produce a JSON value.",
                                       SchemaOptions(max_string_length=20, max_items=3))
            program = Program(task, tiny_backend, ProgramOptions(max_tokens=150, max_retries=0, temperature=1.0))
        except CompilerError:
            outcomes["typed_error"] += 1
            continue
        valid = make_validator(row["schema"])
        for r in program.run_many(["go"] * 2):
            if isinstance(r, Result):
                assert valid(r.output)
                outcomes["valid"] += 1
            else:
                assert isinstance(r.error, CompilerError)
                outcomes["typed_error"] += 1
    assert outcomes["valid"] > 0


@pytest.mark.slow
def test_xgrammar_engine_runs_the_same_task(tiny_backend):
    pytest.importorskip("xgrammar")
    program = Program(compile_task(Ticket), tiny_backend, ProgramOptions(max_tokens=60, temperature=1.0,
                                                                         engine="xgrammar"))
    assert program.grammar.engine == "xgrammar"
    for r in program.run_many(["login broken"] * 3):
        if isinstance(r, Result):
            assert isinstance(r.output, Ticket)
        else:
            assert isinstance(r.error, (IncompleteOutput, OutputValidationError))


def test_xgrammar_matcher_accepts_valid_and_rejects_invalid(tiny_backend):
    pytest.importorskip("xgrammar")
    from openfirst.compiler.grammar import XGrammarCompiler

    task = compile_task(Ticket)
    grammar = XGrammarCompiler(tiny_backend.tokenizer_info()).compile(task.schema, task.report)
    hf = tiny_backend.tokenizer

    def accepts(text):
        m = grammar.matcher()
        return all(m.consume_token(t) for t in hf.encode(text, add_special_tokens=False))

    assert accepts('{"category":"billing","priority":3}')
    assert not accepts('{"category":"billing","priority":9}')
    assert not accepts('{"category": "billing"}')
