"""What every generation backend returns, and the interface Program drives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Sequence

from openfirst.compiler.errors import BackendError, CompilerError


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
    # the output's tokens and each one's log-probability under the grammar's mask (temperature 1); None where the
    # engine gives none. `logprobs_masked` False: the engine's log-probabilities ignore the mask (raw model)
    token_ids: list[int] | None = None
    token_texts: list[str] | None = None  # each token's text, where the engine gives text rather than ids
    token_logprobs: list[float] | None = None
    logprobs_masked: bool = True

    @classmethod
    def failed(cls, error: CompilerError, model: str | None = None) -> "Generation":
        return cls("", 0, 0, False, model=model, attempts=getattr(error, "attempts", 1) or 1, error=error)


class Backend(ABC):
    """What `Program` drives. Each backend declares how a task's schema reaches its engine (`constraint`) and what
    it can do for plain chat: `remote` (an OpenAI-compatible server: `achat` passes a chat request through as it
    is, streaming included) or `streams_text` (an in-process model: `astream` yields its text as it is chosen)."""

    name: str
    model_name: str
    constraint: ClassVar[Literal["grammar", "request"]]
    remote: ClassVar[bool] = False
    streams_text: ClassVar[bool] = False  # `astream` yields text pieces, then the final Generation
    streams_tokens: ClassVar[bool] = False  # `generate` takes an `on_token` hook (token-by-token streaming)

    async def achat(self, request: dict[str, Any]) -> Any:
        """An OpenAI chat completion (or, with `"stream": True`, its chunk stream) for `request`, passed through
        as it is; only `remote` backends."""
        raise BackendError(f"{self.name} cannot pass chat requests through (not a remote server)")

    def astream(self, conversation: list[dict[str, str]], max_tokens: int, temperature: float = 0.0) -> Any:
        """An async iterator of text pieces, then the final Generation; only `streams_text` backends."""
        raise BackendError(f"{self.name} cannot stream plain text",
                           hint="wrap an in-process model in ThreadedBackend")

    @abstractmethod
    def generate(self, conversations: Sequence[list[dict[str, str]]], constraint: Any, max_tokens: int,
                 temperature: float = 0.0, repetition_penalty: float = 1.0) -> list[Generation]:
        """One Generation per conversation, in order; a failed call is a Generation with `error`."""

    def close(self) -> None:
        """Release what the backend holds (engine processes); nothing by default."""


class GrammarBackend(Backend):
    """A local model decoding under openfirst's grammar, compiled for its tokenizer (`tokenizer_info`)."""

    constraint = "grammar"

    @abstractmethod
    def tokenizer_info(self) -> Any:
        """The tokenizer facts the grammar compiler needs (`openfirst.compiler.tokenizer.TokenizerInfo`)."""


class RequestBackend(Backend):
    """An engine that applies the schema itself (vLLM's structured outputs, a server's response_format):
    `constraint_for(task)` builds what each request carries."""

    constraint = "request"

    @abstractmethod
    def constraint_for(self, task: Any) -> Any:
        """What requests carry to constrain the answer to `task`'s schema."""


class AsyncBackend(ABC):
    """A backend that can be awaited: `agenerate` is the async twin of `generate`."""

    @abstractmethod
    async def agenerate(self, conversations: Sequence[list[dict[str, str]]], constraint: Any, max_tokens: int,
                        temperature: float = 0.0, repetition_penalty: float = 1.0) -> list[Generation]:
        """Like `generate`, without blocking the event loop."""
