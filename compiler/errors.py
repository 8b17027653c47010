"""Compiler errors: all derive from the project's one root, `OpenFirstError`."""

from __future__ import annotations

from openfirst.core.errors import OpenFirstError


class CompilerError(OpenFirstError):
    """Root of the compiler's errors."""


class TaskSpecError(CompilerError):
    """A task (Pydantic model, instructions, examples, or its `module:Class` name) is unusable."""


class KeywordError(CompilerError):
    """An error about one schema keyword; names the keyword and its JSON pointer."""

    def __init__(self, message: str, *, keyword: str, pointer: str, **kw):
        super().__init__(f"{message} (keyword {keyword!r} at {pointer or '/'})", **kw)
        self.keyword = keyword
        self.pointer = pointer


class SchemaRefused(KeywordError):
    """The schema uses something the compiler will not run."""


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


class LeakedValue(OutputValidationError):
    """The output is schema-valid but a value was taken from the prompt's schema or an example, not from the
    input (`compiler.guards.find_leaks`); retried like any validation failure, never returned as valid. `leaks`:
    the guard's findings (`Program.check` sets them)."""

    leaks: tuple = ()


class BackendError(CompilerError):
    """A generation backend failed (model load, device, server)."""


class EngineCrashed(BackendError):
    """The local engine's process died (a signal such as SIGSEGV, or its engine core exited) while it held this
    request; it is being restarted, so the same request may succeed when sent again."""

    retryable = True

    def __init__(self, message: str, *, signal: str | None = None, **kw):
        super().__init__(message, **kw)
        self.signal = signal


class StrictSchemaError(KeywordError, TaskSpecError):
    """The task cannot be expressed in a provider's strict structured-output mode; raised before any request."""


class Refusal(CompilerError):
    """The model declined to answer (OpenAI's `message.refusal`); carries the refusal text."""

    def __init__(self, message: str, *, refusal: str, attempts: int = 1, **kw):
        super().__init__(message, **kw)
        self.refusal = refusal
        self.attempts = attempts


class RemoteError(BackendError):
    """A call to a server (OpenAI-compatible or frontier) failed; `status` is the HTTP status if there was one
    and `attempts` how many requests were sent, retries included."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1, **kw):
        super().__init__(message, **kw)
        self.status = status
        self.attempts = attempts


class RateLimited(RemoteError):
    """HTTP 429 on every attempt."""

    retryable = True


class ServerError(RemoteError):
    """HTTP 408, 409 or 5xx on every attempt."""

    retryable = True


class RequestRejected(RemoteError):
    """HTTP 400, 401, 403, 404, 422 and other client errors: never retried."""


class ConnectionFailed(RemoteError):
    """The server could not be reached, or the connection dropped or timed out."""

    retryable = True


class MalformedResponse(RemoteError):
    """The server answered 2xx with a body that is not a chat completion."""

    retryable = True


class DeadlineExceeded(RemoteError):
    """The call's overall deadline passed (retries included)."""
