"""The async twin of a synchronous in-process backend (transformers): one batch at a time in a worker thread."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Sequence

from openfirst.compiler.backends.base import AsyncBackend, Backend, Generation
from openfirst.compiler.backends.pricing import Price
from openfirst.compiler.errors import BackendError, CompilerError


class ThreadedBackend(Backend, AsyncBackend):
    """Wraps an in-process backend (transformers, vLLM offline) for async callers. Batches run one at a time (the
    model is not re-entrant); errors become failed generations; `price` gives each generation a cost. It is what
    the wrapped backend is: grammar-driven (`tokenizer_info`) or request-driven (`constraint_for`)."""

    streams_text = True

    def __init__(self, backend: Backend, price: Price | None = None):
        self.backend = backend
        self.constraint = backend.constraint  # type: ignore[misc]  # an instance's answer to the class question
        self.name = backend.name
        self.model_name = backend.model_name
        self.price = price
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"openfirst-{self.name}")  # never starves others

    def tokenizer_info(self):
        return self.backend.tokenizer_info()

    def constraint_for(self, task: Any) -> Any:
        return self.backend.constraint_for(task)

    def close(self) -> None:
        self.backend.close()

    def health(self) -> dict[str, Any] | None:
        """The wrapped engine's process state, where it runs isolated (None otherwise)."""
        health = getattr(self.backend, "health", None)
        return health() if health is not None else None

    def generate(self, conversations: Sequence[list[dict[str, str]]], constraint: Any, max_tokens: int,
                 temperature: float = 0.0, repetition_penalty: float = 1.0, **stream: Any) -> list[Generation]:
        with self._lock:
            try:
                gens = self.backend.generate(conversations, constraint, max_tokens, temperature=temperature,
                                             repetition_penalty=repetition_penalty, **stream)
            except CompilerError as exc:
                return [Generation.failed(exc, self.model_name) for _ in conversations]
            except (RuntimeError, ValueError, MemoryError) as exc:  # torch errors: out of memory, bad shapes
                err = BackendError(f"{self.name} {self.model_name} failed: {type(exc).__name__}: {exc}")
                return [Generation.failed(err, self.model_name) for _ in conversations]
        for g in gens:
            g.model = g.model or self.model_name
            if self.price is not None:
                g.cost_usd = self.price.cost(g.prompt_tokens, g.completion_tokens)
        return gens

    async def agenerate(self, conversations: Sequence[list[dict[str, str]]], constraint: Any, max_tokens: int,
                        temperature: float = 0.0, repetition_penalty: float = 1.0) -> list[Generation]:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: self.generate(conversations, constraint, max_tokens, temperature, repetition_penalty))

    async def astream(self, conversation: list[dict[str, str]], max_tokens: int, temperature: float = 0.0
                      ) -> AsyncIterator[str | Generation]:
        """Unconstrained chat, streamed: text deltas as tokens are chosen (transformers), or the whole text at once
        (engines without a token hook, e.g. vLLM offline), then the finished Generation."""
        if not self.backend.streams_tokens:
            gen = (await self.agenerate([conversation], None, max_tokens, temperature))[0]
            if gen.error is None and gen.text:
                yield gen.text
            yield gen
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[int | None] = asyncio.Queue()
        tokenizer = self.backend.tokenizer

        def run() -> Generation:
            try:
                return self.generate([conversation], None, max_tokens, temperature,
                                     on_token=lambda _, tok: loop.call_soon_threadsafe(queue.put_nowait, tok))[0]
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        job = loop.run_in_executor(self._pool, run)
        tokens: list[int] = []
        sent = ""
        while (tok := await queue.get()) is not None:
            tokens.append(tok)
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            if len(text) > len(sent) and not text.endswith("\ufffd"):  # wait for whole characters
                yield text[len(sent):]
                sent = text
        gen = await job
        if gen.text.startswith(sent) and len(gen.text) > len(sent):
            yield gen.text[len(sent):]
        yield gen
