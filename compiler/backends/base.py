"""What every generation backend returns, and the interface Program drives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from compiler.errors import CompilerError


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finished: bool  # False: stopped at max_tokens before the grammar (or EOS) ended it
    model: str | None = None  # the model that answered, when the backend reports it
    cost_usd: float | None = None  # None: no price known for the model
    attempts: int = 1  # requests sent (transport retries included)
    error: CompilerError | None = None  # the call failed (after its retries): no text

    @classmethod
    def failed(cls, error: CompilerError, model: str | None = None) -> "Generation":
        return cls("", 0, 0, False, model=model, attempts=getattr(error, "attempts", 1) or 1, error=error)


class Backend(Protocol):
    """A local backend exposes `tokenizer_info()` and gets a compiled grammar as its constraint; a server
    backend exposes `constraint_for(task)` (the request format it sends) instead. Server backends also
    offer `agenerate`, the async twin of `generate`."""

    name: str
    model_name: str

    def generate(self, conversations: Sequence[list[dict[str, str]]], constraint: Any, max_tokens: int,
                 temperature: float = 0.0, repetition_penalty: float = 1.0) -> list[Generation]: ...
