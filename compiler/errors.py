"""Compiler errors: all derive from the project's one root, `OpenFirstError`."""

from __future__ import annotations

from router.errors import OpenFirstError


class CompilerError(OpenFirstError):
    """Root of the compiler's errors."""


class TaskSpecError(CompilerError):
    """A task (Pydantic model, instructions, examples, or its `module:Class` name) is unusable."""


class SchemaRefused(CompilerError):
    """The schema uses something the compiler will not run; names the keyword and its JSON pointer."""

    def __init__(self, message: str, *, keyword: str, pointer: str, **kw):
        super().__init__(f"{message} (keyword {keyword!r} at {pointer or '/'})", **kw)
        self.keyword = keyword
        self.pointer = pointer


class GrammarCompileError(CompilerError):
    """The grammar engine could not compile the (normalised) schema."""


class CompileTimeout(GrammarCompileError):
    """Grammar compilation exceeded its time limit; the process is unaffected."""

    retryable = False


class IncompleteOutput(CompilerError):
    """Generation stopped (max_tokens) before the output was complete; no partial JSON is returned."""

    retryable = True

    def __init__(self, message: str, *, tokens: int, **kw):
        super().__init__(message, **kw)
        self.tokens = tokens


class OutputValidationError(CompilerError):
    """The output failed validation on every attempt; carries the last error and the attempt count."""

    def __init__(self, message: str, *, attempts: int, last_output: str, **kw):
        super().__init__(message, **kw)
        self.attempts = attempts
        self.last_output = last_output


class BackendError(CompilerError):
    """A generation backend failed (model load, device, server)."""
