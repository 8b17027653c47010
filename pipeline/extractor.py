"""The one-call Python API: `openfirst.extract(Model, text)` and `openfirst.Extractor(Model, ...)` for reuse.

In the spirit of instructor's `create(response_model=...)` and outlines' `Generator(model, Type)`: give an output
type (a Pydantic model, a JSON Schema, or a short schema string such as `"name, age int, tags list[str]"`) and a
text (or chat messages), get the validated object back, or a typed `OpenFirstError`. `Extractor.run` returns the
full `RoutedOutcome`: the answer (`.result`), which stage decided (`.decided_by`), the checks' `.verdict`, the
local answer's per-field `.confidence`, the stages with their latencies and costs (`.history`).

The default local model is the embedded SmolLM2-135M-Instruct on in-process llama.cpp, loaded once, on first use.
With `frontier=` (any backend, e.g. `OpenAICompatibleBackend("gpt-4o-mini")`) an `Extractor` escalates local
answers that fail (validation or otherwise) or are less confident than `cascade_threshold`; with `router=` (a
trained `openfirst.Router`) it also sends inputs the router is sure about (P(local fails) >= `router_skip`)
straight to the frontier. It runs the same `Pipeline` as the service.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Sequence

from openfirst.compiler.errors import TaskSpecError
from openfirst.compiler.program import Program, ProgramOptions, Result
from openfirst.compiler.schema_spec import as_task, model_from_spec
from openfirst.pipeline.models import ModelRegistry, shared_local
from openfirst.pipeline.outcome import RoutedOutcome
from openfirst.pipeline.pipeline import Pipeline, RoutingPolicy
from openfirst.pipeline.route import Item


class FailureOddsRouter:
    """A trained router as the one-call API uses it: the frontier iff P(local fails) >= `skip`."""

    def __init__(self, router: Any, skip: float):
        self.router, self.skip = router, skip

    def route_many(self, texts: Sequence[str]) -> list[Any]:
        from dataclasses import replace

        out = []
        for d in self.router.route_many(list(texts)):
            sure = 1.0 - d.p_success >= self.skip
            out.append(replace(d, target="frontier" if sure else "local", score=1.0 - d.p_success,
                               threshold=self.skip, reason=f"P(local fails) {1.0 - d.p_success:.3f} "
                               f"{'>=' if sure else '<'} {self.skip:g}"))
        return out


class Extractor:
    """One output type bound to a local model (default: the embedded one), optionally a frontier and a router."""

    def __init__(self, output: Any, *, local: Any = None, frontier: Any = None, router: Any = None,
                 instructions: str | None = None, examples: Sequence[tuple[str, Any]] | None = None,
                 options: ProgramOptions = ProgramOptions(), cascade_threshold: float = 0.0,
                 router_skip: float | None = None):
        self.task = as_task(output, instructions, examples)
        local_task, local_options = self.task, options
        if isinstance(local, (str, Path)):  # a tuned model's folder (openfirst finetune): its GGUF on llama.cpp
            from openfirst.finetune.serving import tuned_task

            local_task, local_options = tuned_task(local, self.task, options)
            local = shared_local("llama.cpp", str(local))
        self.local = local if local is not None else shared_local()
        programs = {"local": Program(local_task, self.local, local_options)}
        if frontier is not None:
            programs["frontier"] = Program(self.task, frontier, options)
        gate = FailureOddsRouter(router, router_skip) if router is not None and router_skip is not None else None
        policy = RoutingPolicy(cascade_threshold=cascade_threshold, cascade_failures="any",
                               fallback_frontier_to_local=False, default_target="local")
        self.pipeline = Pipeline(ModelRegistry.of(self.local, frontier), {"task": programs}, policy=policy,
                                 router=gate)

    def run(self, text_or_messages: str | Sequence[dict[str, str]], *, private: bool = False) -> RoutedOutcome:
        """The full outcome (`.result.output`, `.decided_by`, `.verdict`, `.confidence`, `.history`, ...)."""
        return self.run_many([_text_of(text_or_messages)], private=[private])[0]

    def run_many(self, texts: Sequence[str], *, private: Sequence[bool] | None = None) -> list[RoutedOutcome]:
        flags = list(private) if private is not None else [False] * len(texts)
        return self.pipeline.run_sync("task", [Item(t, private=p) for t, p in zip(texts, flags)])

    def __call__(self, text_or_messages: str | Sequence[dict[str, str]], *, private: bool = False) -> Any:
        """The validated output, or the typed error raised."""
        outcome = self.run(text_or_messages, private=private)
        if not isinstance(outcome.result, Result):
            raise outcome.result.error
        return outcome.result.output

    async def acall(self, text_or_messages: str | Sequence[dict[str, str]], *, private: bool = False) -> Any:
        """`__call__` without blocking the event loop (the model runs on a worker thread)."""
        return await asyncio.to_thread(self, text_or_messages, private=private)


def _text_of(text_or_messages: str | Sequence[dict[str, str]]) -> str:
    if isinstance(text_or_messages, str):
        return text_or_messages
    parts = [m.get("content", "") for m in text_or_messages if m.get("role", "user") == "user"]
    if not parts or not all(isinstance(p, str) for p in parts):
        raise TaskSpecError("messages need at least one user message with text content")
    return "\n".join(parts)


def extract(output: Any, text_or_messages: str | Sequence[dict[str, str]], **kw: Any) -> Any:
    """`openfirst.extract(Ticket, "my invoice was charged twice")` -> a validated `Ticket`. Keyword arguments are
    `Extractor`'s (`local=`, `frontier=`, `instructions=`, `examples=`, `options=`, ...)."""
    return Extractor(output, **kw)(text_or_messages)


async def aextract(output: Any, text_or_messages: str | Sequence[dict[str, str]], **kw: Any) -> Any:
    """Async `extract`."""
    return await asyncio.to_thread(extract, output, text_or_messages, **kw)


__all__ = ["Extractor", "extract", "aextract", "model_from_spec", "as_task"]
