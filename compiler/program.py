"""Programs: render the prompt, generate under the constraint, parse, validate, retry with feedback.

The same compiled task runs on any backend: a local model (transformers; the grammar is
compiled for its tokenizer) or a server (vLLM, llama.cpp, OpenAI; the schema travels in
the request). `run_many` batches; `arun_many` is its async twin for server backends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from openfirst.compiler.backends.base import AsyncBackend, Backend, Generation
from openfirst.compiler.confidence import DEFAULT_AGGREGATION, Confidence, confidence
from openfirst.compiler.errors import (BackendError, CompilerError, IncompleteOutput, LeakedValue,
                                       OutputValidationError)
from openfirst.compiler.grammar import GrammarCompiler, make_compiler
from openfirst.compiler.task import CompiledTask, ExampleStyle, PromptSchema


class ProgramOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(512, ge=1, le=32_768)
    max_retries: int = Field(2, ge=0, le=10, description="extra attempts after a validation failure")
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    repetition_penalty: float = Field(
        1.3, ge=1.0, le=3.0, description="> 1 discourages repeated tokens: over the generated tokens only on "
        "llama.cpp, transformers and in-process vLLM (the input's words stay free to copy), over prompt and output on "
        "servers. "
        "1.3 by measurement: at 1.0 the embedded model looped until max_tokens on 5 of 11 example inputs; on "
        "llama.cpp, 1.3 on generated tokens only matched 7/27 labelled fields and 24/25 MaskBench schemas, against "
        "6/27 and 22/25 with llama.cpp's own penalty over the prompt too (benchmarks/results/decode-penalty.md)")
    constrained: bool = True
    compile_timeout_s: float = Field(10.0, gt=0)
    engine: Literal["llguidance", "xgrammar"] = "llguidance"
    confidence: Literal["mean", "min", "first", "product"] = Field(
        DEFAULT_AGGREGATION, description="how token probabilities aggregate into a field's confidence")
    # the small-model guards' defaults, by measurement (benchmarks/results/small-model-guards.md)
    schema_in_prompt: PromptSchema = Field(
        "outline", description="how the prompt describes the output: a keyword-free outline (default: schema words "
        "as values 5 -> 0 of 25 MaskBench outputs, SNIPS slot F1 unchanged), or the raw JSON Schema")
    examples_in_prompt: ExampleStyle = Field(
        "turns", description="few-shot examples as chat turns (default), or marked in the system prompt as showing "
        "the format only (measured: more copies, not fewer)")
    leak_guard: bool = Field(
        True, description="reject and retry an output whose free-text value is a schema word or description, or "
        "copies an example, rather than the input (compiler.guards.find_leaks; an example copy retries without "
        "the examples); a typed LeakedValue when retries run out")


# the prompt without the small-model guards (raw JSON Schema, examples as chat turns, no leak check): what the
# engine, backend and SNIPS benchmarks were measured with; small-model-guards.md measures the difference
UNGUARDED = dict(schema_in_prompt="json-schema", examples_in_prompt="turns", leak_guard=False)


@dataclass
class _Outcome:
    """What every input's outcome records: who answered, how many attempts, how long, tokens and cost."""

    backend: str
    model: str
    attempts: int
    latency_s: float
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None


@dataclass(kw_only=True)
class Result(_Outcome):
    output: Any  # the validated model instance (or dict for a raw JSON Schema task)
    text: str
    token_ids: list[int] | None = None  # the output's tokens and their log-probabilities (None: engine gave none)
    token_texts: list[str] | None = None
    token_logprobs: list[float] | None = None
    # per-field and overall confidence from the token log-probabilities; None: the engine gave none
    confidence: Confidence | None = None


@dataclass(kw_only=True)
class Failure(_Outcome):
    error: CompilerError


class _Batch:
    """The validation-retry loop's state for a batch of inputs, shared by `run_many` and `arun_many`."""

    def __init__(self, program: "Program", texts: Sequence[str]):
        self.program, self.texts = program, texts
        n = len(texts)
        self.results: list[Result | Failure | None] = [None] * n
        self.feedback: list[list[tuple[str, str]]] = [[] for _ in range(n)]
        self.without_examples = [False] * n  # an input whose output copied an example retries without them
        self.usage = [{"prompt_tokens": 0, "completion_tokens": 0} for _ in range(n)]
        self.cost: list[float | None] = [None] * n
        self.pending = list(range(n))
        self.attempt = 0
        self.start = time.perf_counter()

    def next_conversations(self) -> list[list[dict[str, str]]]:
        """The conversations to send next; empty when every input has its outcome (`absorb` keeps an input
        pending only while it has retries left)."""
        self.attempt += 1
        return [self.program.messages(self.texts[i], self.feedback[i], examples=not self.without_examples[i])
                for i in self.pending]

    def absorb(self, gens: list[Generation]) -> None:
        p, opts = self.program, self.program.options
        still = []
        elapsed = time.perf_counter() - self.start
        for i, g in zip(self.pending, gens):
            self.usage[i]["prompt_tokens"] += g.prompt_tokens
            self.usage[i]["completion_tokens"] += g.completion_tokens
            if g.cost_usd is not None:
                self.cost[i] = (self.cost[i] or 0.0) + g.cost_usd
            meta = dict(backend=p.backend.name, model=g.model or p.backend.model_name, attempts=self.attempt,
                        latency_s=elapsed, usage=dict(self.usage[i]), cost_usd=self.cost[i])
            if g.error is not None:
                self.results[i] = Failure(error=g.error, **meta)
                continue
            if not g.finished:
                err = IncompleteOutput(f"output truncated at max_tokens={opts.max_tokens}",
                                       tokens=g.completion_tokens, hint="raise max_tokens or tighten the schema")
                self.results[i] = Failure(error=err, **meta)
                continue
            retry_fresh = False  # an example copy retries without the examples and without the copy as feedback
            try:
                try:
                    output = p.check(self.texts[i], g.text)
                except LeakedValue as leak:
                    retry_fresh = any(x.kind == "example" for x in leak.leaks) and not self.without_examples[i]
                    self.without_examples[i] |= retry_fresh
                    raise
                self.results[i] = Result(output=output, text=g.text, token_ids=g.token_ids,
                                         token_texts=g.token_texts, token_logprobs=g.token_logprobs,
                                         confidence=confidence(g.text, g.token_texts, g.token_logprobs,
                                                               opts.confidence, g.logprobs_masked), **meta)
            except OutputValidationError as exc:
                if self.attempt <= opts.max_retries:
                    if not retry_fresh:
                        self.feedback[i].append((g.text, exc.message))
                    still.append(i)
                else:
                    exc.attempts = self.attempt
                    self.results[i] = Failure(error=exc, **meta)
        self.pending = still


class Program:
    """A compiled task bound to a backend. `run_many` batches inputs; each input gets a
    `Result` or a `Failure` carrying a typed error (never partial JSON)."""

    def __init__(self, task: CompiledTask, backend: Backend, options: ProgramOptions = ProgramOptions(),
                 compiler: GrammarCompiler | None = None):
        self.task = task
        self.backend = backend
        self.options = options
        self.grammar: Any = None  # the backend's constraint: a compiled grammar, or a server request format
        if not options.constrained:
            return
        if backend.constraint == "grammar":
            self.compiler = compiler or make_compiler(options.engine, backend.tokenizer_info(),
                                                      timeout_s=options.compile_timeout_s)
            self.grammar = self.compiler.compile(task.schema, task.report)
        else:
            self.grammar = backend.constraint_for(task)

    def check(self, text: str, output_text: str) -> Any:
        """The validated output of `output_text` as an answer to `text`: decoded, validated against the task, and
        (leak guard on) refused as LeakedValue (its `leaks` listed) where a value comes from the prompt, not the
        text. Raises OutputValidationError."""
        data = self.task.decode(output_text)
        output = self.task.validate(data, output_text)
        if self.options.leak_guard and (leaks := self.task.leaks(data, text)):
            error = LeakedValue("output takes values from the prompt, not the text: "
                                + "; ".join(leak.message for leak in leaks[:3]), attempts=1, last_output=output_text)
            error.leaks = tuple(leaks)
            raise error
        return output

    def messages(self, text: str, feedback: Sequence[tuple[str, str]] = (), examples: bool = True
                 ) -> list[dict[str, str]]:
        """The chat messages this program sends for `text` (its prompt options applied): what runs, what a
        frontier budget prices, what the Ray path sends."""
        o = self.options
        return self.task.messages(text, feedback, o.schema_in_prompt, o.examples_in_prompt if examples else None)

    def _generate_kwargs(self) -> dict[str, Any]:
        o = self.options
        return dict(max_tokens=o.max_tokens, temperature=o.temperature, repetition_penalty=o.repetition_penalty)

    def run(self, text: str) -> Result:
        return _raise_failure(self.run_many([text])[0])

    def run_many(self, texts: Sequence[str]) -> list[Result | Failure]:
        batch = _Batch(self, texts)
        while conversations := batch.next_conversations():
            batch.absorb(self.backend.generate(conversations, self.grammar, **self._generate_kwargs()))
        return batch.results  # type: ignore[return-value]

    async def arun_many(self, texts: Sequence[str]) -> list[Result | Failure]:
        """Async `run_many`; needs an `AsyncBackend` (servers, or an in-process model wrapped in ThreadedBackend)."""
        if not isinstance(self.backend, AsyncBackend):
            raise BackendError(f"{self.backend.name} has no async path; wrap it in ThreadedBackend",
                               hint="openfirst.compiler.backends.threaded.ThreadedBackend(backend)")
        batch = _Batch(self, texts)
        while conversations := batch.next_conversations():
            batch.absorb(await self.backend.agenerate(conversations, self.grammar, **self._generate_kwargs()))
        return batch.results  # type: ignore[return-value]


def _raise_failure(out: Result | Failure) -> Result:
    if isinstance(out, Failure):
        raise out.error
    return out
