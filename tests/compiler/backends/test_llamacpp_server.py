"""The OpenAI-compatible backend against a real llama.cpp server (SmolLM2 GGUF) started on 127.0.0.1."""

import asyncio
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by .ci/setup")

from openfirst.compiler.backends.llamacpp_server import LlamaCppServer  # noqa: E402
from openfirst.compiler.backends.openai_compat import OpenAICompatibleBackend  # noqa: E402
from openfirst.compiler.backends.pricing import Price  # noqa: E402
from openfirst.compiler.errors import IncompleteOutput  # noqa: E402
from openfirst.compiler.program import Program, ProgramOptions, Result  # noqa: E402
from openfirst.compiler.task import load_task  # noqa: E402

pytestmark = pytest.mark.slow  # real models / servers

TASKS = Path(__file__).resolve().parents[3] / "datasets" / "tasks"


@pytest.fixture(scope="module")
def server():
    with LlamaCppServer(n_threads=2) as srv:
        yield srv


@pytest.fixture(scope="module")
def ticket_task():
    return load_task(f"{TASKS / 'support_ticket.py'}:SupportTicket")


def inputs(n):
    rows = [json.loads(line) for line in (TASKS / "support_tickets.jsonl").read_text().splitlines() if line.strip()]
    return [r["text"] for r in rows[:n]]


def test_real_server_returns_schema_valid_outputs(server, ticket_task):
    backend = OpenAICompatibleBackend("smollm2", base_url=server.base_url, flavor="llama.cpp",
                                      price=Price(input_per_mtok=0.01, output_per_mtok=0.02))
    results = Program(ticket_task, backend, ProgramOptions(max_tokens=120, max_retries=1)).run_many(inputs(2))
    for r in results:
        assert isinstance(r, Result), r
        assert type(r.output).__name__ == "SupportTicket" and 1 <= r.output.priority <= 5
        assert r.model == "smollm2" and r.usage["prompt_tokens"] > 100 and r.cost_usd > 0
        assert "".join(r.token_texts) == r.text and len(r.token_logprobs) == len(r.token_texts)
        assert all(lp <= 0 for lp in r.token_logprobs)


def test_real_server_async_with_a_concurrency_limit(server, ticket_task):
    backend = OpenAICompatibleBackend("smollm2", base_url=server.base_url, flavor="llama.cpp", max_concurrency=2)
    program = Program(ticket_task, backend, ProgramOptions(max_tokens=120, max_retries=1))
    results = asyncio.run(program.arun_many(inputs(3)))
    assert all(isinstance(r, Result) for r in results), results


def test_real_truncation_is_incomplete_output(server, ticket_task):
    backend = OpenAICompatibleBackend("smollm2", base_url=server.base_url, flavor="llama.cpp")
    with pytest.raises(IncompleteOutput):
        Program(ticket_task, backend, ProgramOptions(max_tokens=4, max_retries=0)).run(inputs(1)[0])


def test_real_server_speaks_through_the_raw_openai_client_too(server):
    import openai

    client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0)
    reply = client.chat.completions.create(model="smollm2", max_tokens=8,
                                           messages=[{"role": "user", "content": "Say hi"}])
    assert reply.choices[0].message.content and sys.modules["llama_cpp"]
