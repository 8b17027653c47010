"""Programs: render the prompt, generate under the grammar, parse, validate, retry with feedback."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from compiler.errors import CompilerError, IncompleteOutput, OutputValidationError
from compiler.grammar import GrammarCompiler, make_compiler
from compiler.task import CompiledTask


class ProgramOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(512, ge=1, le=32_768)
    max_retries: int = Field(2, ge=0, le=10, description="extra attempts after a validation failure")
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    repetition_penalty: float = Field(1.0, ge=1.0, le=3.0, description="> 1 discourages repeated tokens")
    constrained: bool = True
    compile_timeout_s: float = Field(10.0, gt=0)
    engine: Literal["llguidance", "xgrammar"] = "llguidance"


@dataclass
class Result:
    output: Any  # the validated model instance (or dict for a raw JSON Schema task)
    text: str
    backend: str
    model: str
    attempts: int
    latency_s: float
    usage: dict[str, int] = field(default_factory=dict)


@dataclass
class Failure:
    error: CompilerError
    backend: str
    model: str
    attempts: int
    latency_s: float
    usage: dict[str, int] = field(default_factory=dict)


class Program:
    """A compiled task bound to a local backend. `run_many` batches inputs; each input gets a
    `Result` or a `Failure` carrying a typed error (never partial JSON)."""

    def __init__(self, task: CompiledTask, backend: Any, options: ProgramOptions = ProgramOptions(),
                 compiler: GrammarCompiler | None = None):
        self.task = task
        self.backend = backend
        self.options = options
        self.compiler = compiler or make_compiler(options.engine, backend.tokenizer_info(),
                                                  timeout_s=options.compile_timeout_s)
        self.grammar = self.compiler.compile(task.schema, task.report) if options.constrained else None

    def run(self, text: str) -> Result:
        out = self.run_many([text])[0]
        if isinstance(out, Failure):
            raise out.error
        return out

    def run_many(self, texts: Sequence[str]) -> list[Result | Failure]:
        n = len(texts)
        results: list[Result | Failure | None] = [None] * n
        feedback: list[list[tuple[str, str]]] = [[] for _ in range(n)]
        usage = [{"prompt_tokens": 0, "completion_tokens": 0} for _ in range(n)]
        start = time.perf_counter()
        pending = list(range(n))
        for attempt in range(1, self.options.max_retries + 2):
            if not pending:
                break
            gens = self.backend.generate([self.task.messages(texts[i], feedback[i]) for i in pending], self.grammar,
                                         self.options.max_tokens, self.options.temperature,
                                         repetition_penalty=self.options.repetition_penalty)
            still = []
            elapsed = time.perf_counter() - start
            for i, g in zip(pending, gens):
                usage[i]["prompt_tokens"] += g.prompt_tokens
                usage[i]["completion_tokens"] += g.completion_tokens
                meta = dict(backend=self.backend.name, model=self.backend.model_name, attempts=attempt,
                            latency_s=elapsed, usage=dict(usage[i]))
                if not g.finished:
                    err = IncompleteOutput(f"output truncated at max_tokens={self.options.max_tokens}",
                                           tokens=g.completion_tokens, hint="raise max_tokens or tighten the schema")
                    results[i] = Failure(err, **meta)
                    continue
                try:
                    results[i] = Result(self.task.parse(g.text), g.text, **meta)
                except OutputValidationError as exc:
                    if attempt <= self.options.max_retries:
                        feedback[i].append((g.text, exc.message))
                        still.append(i)
                    else:
                        exc.attempts = attempt
                        results[i] = Failure(exc, **meta)
            pending = still
        return results  # type: ignore[return-value]
