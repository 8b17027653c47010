"""The one-call Python API: `openfirst.extract(Model, text)` and `openfirst.Extractor(Model, ...)` for reuse.

In the spirit of instructor's `create(response_model=...)` and outlines' `Generator(model, Type)`: give an output
type (a Pydantic model, a JSON Schema, or a short schema string such as `"name, age int, tags list[str]"`) and a
text (or chat messages), get the validated object back, or a typed `OpenFirstError`. `Extractor.run` returns the
full outcome: output, which stage decided, the local answer's per-field confidence, usage, cost and model.

The default local model is the embedded SmolLM2-135M-Instruct on in-process llama.cpp, loaded once, on first use.
With `frontier=` (any backend, e.g. `OpenAICompatibleBackend("gpt-4o-mini")`) an `Extractor` escalates local
answers that fail validation or are less confident than `cascade_threshold`; with `router=` (a trained
`openfirst.Router`) it also sends inputs the router is sure about straight to the frontier.
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel, create_model

from openfirst.cascade.policy import Cascade, CascadeOptions, CascadeOutcome
from openfirst.compiler.errors import TaskSpecError
from openfirst.compiler.program import Program, ProgramOptions, Result
from openfirst.compiler.task import CompiledTask, compile_json_schema, compile_task, default_instructions

_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
_FIELD = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:[: ]\s*(\w+(?:\[\w+\])?))?\s*$")
_LOCAL: dict[str, Any] = {}
_LOCAL_LOCK = threading.Lock()


def model_from_spec(spec: str, name: str = "Output") -> type[BaseModel]:
    """`"name, age int, tags list[str]"` -> a Pydantic model (type defaults to str; `list[T]` for lists)."""
    fields: dict[str, Any] = {}
    for part in (p for p in spec.split(",") if p.strip()):
        m = _FIELD.match(part)
        kind = (m.group(2) or "str") if m else None
        inner = kind[5:-1] if kind and kind.startswith("list[") else kind
        if m is None or inner not in _TYPES or (kind != inner and not kind.startswith("list[")):
            raise TaskSpecError(f"cannot read schema field {part.strip()!r}",
                                hint="write fields as 'name', 'age int', 'tags list[str]' (str, int, float, bool)")
        fields[m.group(1)] = (list[_TYPES[inner]] if kind != inner else _TYPES[inner], ...)
    if not fields:
        raise TaskSpecError("the schema string names no field", hint="e.g. 'name, age int'")
    return create_model(name, **fields)


def as_task(output: Any, instructions: str | None = None,
            examples: Sequence[tuple[str, Any]] | None = None) -> CompiledTask:
    """A Pydantic model class, a JSON Schema dict or a schema string -> a compiled task."""
    if isinstance(output, CompiledTask):
        return output
    if isinstance(output, str):
        output = model_from_spec(output)
    if isinstance(output, dict):
        return compile_json_schema(output, instructions or "Extract the requested fields from the text.")
    return compile_task(output, instructions or default_instructions(output), examples=examples)


def default_local() -> Any:
    """The embedded SmolLM2 on in-process llama.cpp, loaded once per process."""
    with _LOCAL_LOCK:
        if "llama.cpp" not in _LOCAL:
            from openfirst.compiler.backends.llamacpp_local import LlamaCppBackend

            _LOCAL["llama.cpp"] = LlamaCppBackend.load()
        return _LOCAL["llama.cpp"]


def _text_of(text_or_messages: str | Sequence[dict[str, str]]) -> str:
    if isinstance(text_or_messages, str):
        return text_or_messages
    parts = [m.get("content", "") for m in text_or_messages if m.get("role", "user") == "user"]
    if not parts or not all(isinstance(p, str) for p in parts):
        raise TaskSpecError("messages need at least one user message with text content")
    return "\n".join(parts)


class Extractor:
    """One output type bound to a local model (default: the embedded one), optionally a frontier and a router."""

    def __init__(self, output: Any, *, local: Any = None, frontier: Any = None, router: Any = None,
                 instructions: str | None = None, examples: Sequence[tuple[str, Any]] | None = None,
                 options: ProgramOptions = ProgramOptions(), cascade_threshold: float = 0.0,
                 router_skip: float | None = None):
        self.task = as_task(output, instructions, examples)
        local_task, local_options = self.task, options
        if isinstance(local, (str, Path)):  # a tuned model's folder (openfirst finetune): its GGUF on llama.cpp
            from openfirst.finetune.serving import tuned_backend, tuned_task

            local_task, local_options = tuned_task(local, self.task, options)
            local = tuned_backend(local)
        self.local = local if local is not None else default_local()
        fail_p = None
        if router is not None:
            fail_p = lambda texts: [1.0 - d.p_success for d in router.route_many(list(texts))]  # noqa: E731
        self.cascade = Cascade(Program(local_task, self.local, local_options),
                               Program(self.task, frontier, options) if frontier is not None else None,
                               CascadeOptions(threshold=cascade_threshold, router_skip=router_skip), fail_p)

    def run(self, text_or_messages: str | Sequence[dict[str, str]], *, private: bool = False) -> CascadeOutcome:
        """The full outcome (`.result.output`, `.decided_by`, `.confidence`, `.result.usage`, ...)."""
        return self.cascade.run_many([_text_of(text_or_messages)], pinned=[private])[0]

    def run_many(self, texts: Sequence[str], *, private: Sequence[bool] | None = None) -> list[CascadeOutcome]:
        return self.cascade.run_many(list(texts), pinned=private)

    def __call__(self, text_or_messages: str | Sequence[dict[str, str]], *, private: bool = False) -> Any:
        """The validated output, or the typed error raised."""
        outcome = self.run(text_or_messages, private=private)
        if not isinstance(outcome.result, Result):
            raise outcome.result.error
        return outcome.result.output

    async def acall(self, text_or_messages: str | Sequence[dict[str, str]], *, private: bool = False) -> Any:
        """`__call__` without blocking the event loop (the model runs on a worker thread)."""
        return await asyncio.to_thread(self, text_or_messages, private=private)


def extract(output: Any, text_or_messages: str | Sequence[dict[str, str]], **kw: Any) -> Any:
    """`openfirst.extract(Ticket, "my invoice was charged twice")` -> a validated `Ticket`. Keyword arguments are
    `Extractor`'s (`local=`, `frontier=`, `instructions=`, `examples=`, `options=`, ...)."""
    return Extractor(output, **kw)(text_or_messages)


async def aextract(output: Any, text_or_messages: str | Sequence[dict[str, str]], **kw: Any) -> Any:
    """Async `extract`."""
    return await asyncio.to_thread(extract, output, text_or_messages, **kw)


__all__ = ["Extractor", "extract", "aextract", "model_from_spec", "as_task"]
