"""ThreadedBackend: an in-process model awaited from the event loop, priced, with errors as failed generations."""

import asyncio

from openfirst.compiler.backends.pricing import Price
from openfirst.compiler.backends.threaded import ThreadedBackend
from openfirst.compiler.errors import BackendError
from openfirst.compiler.program import Program, ProgramOptions
from openfirst.compiler.task import compile_json_schema


def test_async_runs_price_and_turn_engine_errors_into_typed_failures(tiny_backend):
    threaded = ThreadedBackend(tiny_backend, Price(input_per_mtok=1e6, output_per_mtok=0.0))
    assert threaded.constraint == "grammar" and not threaded.remote
    task = compile_json_schema({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
                               "Say ok.")
    (result,) = asyncio.run(Program(task, threaded, ProgramOptions(max_tokens=20)).arun_many(["go"]))
    assert result.cost_usd == result.usage["prompt_tokens"]  # 1 USD per prompt token, nothing for output

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    threaded.backend = type("Broken", (), {"generate": staticmethod(broken), "name": "b", "model_name": "m"})()
    (gen,) = asyncio.run(threaded.agenerate([[{"role": "user", "content": "x"}]], None, 5))
    assert isinstance(gen.error, BackendError) and "out of memory" in gen.error.message
