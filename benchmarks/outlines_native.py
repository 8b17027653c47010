"""outlines' own structured generation (its JSON output type on its llguidance backend) behind openfirst's Backend
interface, for the side-by-side benchmark: what a user of outlines alone gets on the same model and inputs.

The task's Pydantic JSON Schema goes to `outlines.types.JsonSchema` as it is, plus llguidance's `x-guidance`
options for bounded whitespace (`bounded_whitespace=True`; outlines' default leaves whitespace free). outlines
returns text only: completion tokens are counted by re-tokenising the text, and a cut-off output shows up as
invalid JSON.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from openfirst.compiler.backends.base import Generation, RequestBackend
from openfirst.compiler.errors import BackendError, GrammarCompileError
from openfirst.compiler.grammar import JSON_OPTIONS



def outlines_schema(schema: dict, bounded_whitespace: bool) -> dict:
    return {**schema, "x-guidance": dict(JSON_OPTIONS)} if bounded_whitespace else schema


class OutlinesJsonBackend(RequestBackend):
    """`outlines.Generator(model, JsonSchema(schema), backend="llguidance")` per task; `batch` uses outlines'
    `Generator.batch` (transformers), else one call per conversation (llama.cpp)."""

    def __init__(self, outlines_model: Any, name: str, model_name: str, count_tokens: Callable[[str], int], *,
                 batch: bool, bounded_whitespace: bool = True, engine_kwargs: Callable[[int, float, float], dict]):
        self.outlines_model = outlines_model
        self.name = name
        self.model_name = model_name
        self.count_tokens = count_tokens
        self.batch = batch
        self.bounded_whitespace = bounded_whitespace
        self.engine_kwargs = engine_kwargs  # (max_tokens, temperature, repetition_penalty) -> the engine's kwargs

    def constraint_for(self, task: Any) -> Any:
        return self.generator_for(task.json_schema)

    def generator_for(self, schema: dict) -> Any:
        import outlines
        from outlines.types import JsonSchema

        try:
            return outlines.Generator(self.outlines_model, JsonSchema(json.dumps(
                outlines_schema(schema, self.bounded_whitespace))), backend="llguidance")
        except Exception as exc:  # noqa: BLE001 - outlines and llguidance raise several types
            raise GrammarCompileError(f"outlines cannot compile this schema: {type(exc).__name__}: {exc}") from exc

    def generate(self, conversations: Sequence[list[dict[str, str]]], constraint: Any, max_tokens: int,
                 temperature: float = 0.0, repetition_penalty: float = 1.0) -> list[Generation]:
        import outlines
        from outlines.inputs import Chat

        generator = constraint if constraint is not None else outlines.Generator(self.outlines_model)
        kw = self.engine_kwargs(max_tokens, temperature, repetition_penalty)
        chats = [Chat(list(c)) for c in conversations]
        if self.batch:
            texts = generator.batch(chats, **kw)
            return [Generation(t, 0, self.count_tokens(t), True, model=self.model_name) for t in texts]
        return [self._one(generator, c, kw) for c in chats]

    def _one(self, generator: Any, chat: Any, kw: dict) -> Generation:
        try:
            text = generator(chat, **kw)
        except ValueError as exc:  # outlines passes the engine's refusal (e.g. a prompt over the context) through
            return Generation.failed(BackendError(f"outlines/llama.cpp refused: {exc}"), self.model_name)
        return Generation(text, 0, self.count_tokens(text), True, model=self.model_name)


def llamacpp_kwargs(max_tokens: int, temperature: float, repetition_penalty: float) -> dict:
    return {"max_tokens": max_tokens, "temperature": temperature, "repeat_penalty": repetition_penalty}


def transformers_kwargs(max_tokens: int, temperature: float, repetition_penalty: float) -> dict:
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else \
        {"do_sample": False, "temperature": None, "top_k": None, "top_p": None}
    return {"max_new_tokens": max_tokens, "repetition_penalty": repetition_penalty, **sampling}
