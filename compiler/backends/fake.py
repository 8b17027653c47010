"""A FAKE backend for fault injection in tests and benchmarks: no model runs.

`ScriptedBackend` answers each conversation with its next scripted reply (a text, a `Generation`, or a
`CompilerError` it returns as a failed generation) and records every conversation it was sent. It applies no
constraint: whatever the script says comes back, so validation, retries and fallbacks can be exercised on
outputs a real engine would rarely produce.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from openfirst.compiler.backends.base import AsyncBackend, Generation, RequestBackend
from openfirst.compiler.backends.isolated import EngineSpec
from openfirst.compiler.backends.pricing import Price
from openfirst.compiler.errors import CompilerError


class ScriptedBackend(RequestBackend, AsyncBackend):
    """FAKE: replies from a script, in order (`cycle=True` repeats it); `seen` holds the conversations sent."""

    def __init__(self, replies: Iterable[str | Generation | CompilerError], *, name: str = "scripted",
                 model_name: str = "scripted-model", price: Price | None = None, delay_s: float = 0.0,
                 cycle: bool = False):
        replies = list(replies)
        self._replies = itertools.cycle(replies) if cycle else iter(replies)
        self.name, self.model_name, self.price, self.delay_s = name, model_name, price, delay_s
        self.seen: list[list[dict[str, str]]] = []

    def constraint_for(self, task: Any) -> dict[str, Any]:
        return {"schema": task.schema}

    def _reply(self, conversation: list[dict[str, str]]) -> Generation:
        self.seen.append(conversation)
        reply = next(self._replies)
        if isinstance(reply, CompilerError):
            return Generation.failed(reply, self.model_name)
        gen = reply if isinstance(reply, Generation) else Generation(reply, 10, 5, True, model=self.model_name)
        if self.price is not None:
            gen.cost_usd = self.price.cost(gen.prompt_tokens, gen.completion_tokens)
        return gen

    def generate(self, conversations: Sequence[list[dict[str, str]]], constraint: Any, max_tokens: int,
                 temperature: float = 0.0, repetition_penalty: float = 1.0) -> list[Generation]:
        return [self._reply(c) for c in conversations]

    async def agenerate(self, conversations: Sequence[list[dict[str, str]]], constraint: Any, max_tokens: int,
                        temperature: float = 0.0, repetition_penalty: float = 1.0) -> list[Generation]:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return self.generate(conversations, constraint, max_tokens, temperature, repetition_penalty)


@dataclass
class ScriptedEngineSpec(EngineSpec):
    """FAKE: an isolated engine process whose backend answers from a script (fault injection for
    `IsolatedBackend`: e.g. an `EngineCrashed` reply, as vLLM's backend reports a dead engine core)."""

    replies: list = field(default_factory=list)

    def load(self) -> ScriptedBackend:
        return ScriptedBackend(self.replies, name=self.kind)
