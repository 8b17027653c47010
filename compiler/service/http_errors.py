"""HTTP errors of the service: one JSON shape, `{"error": {"type", "message", "hint", "retryable"}}`
(OpenAI's error shape plus a hint), and the status each typed error maps to."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, TypeVar

from compiler import errors as compiler_errors
from compiler.errors import (BackendError, DeadlineExceeded, IncompleteOutput, OutputValidationError, RateLimited,
                             Refusal, TaskSpecError)
from router.errors import ConfigError, OpenFirstError

T = TypeVar("T")


def error_json(kind: str, message: str, hint: str | None = None, retryable: bool = False) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, "hint": hint, "retryable": retryable}}


def status_for(error: BaseException | type[BaseException]) -> int:
    """The HTTP status of a typed error (an instance or its class)."""
    kind = error if isinstance(error, type) else type(error)
    if issubclass(kind, DeadlineExceeded):
        return 504
    if issubclass(kind, RateLimited):
        return 503
    if issubclass(kind, (BackendError, OutputValidationError, IncompleteOutput, Refusal)):
        return 502  # the model or its server failed, not the request
    if issubclass(kind, (ConfigError, TaskSpecError)):
        return 400
    return 500


def status_for_outcome(outcome: dict[str, Any]) -> int:
    """The HTTP status of one input's outcome dict: 200, or that of the typed error it names."""
    if "error" not in outcome:
        return 200
    kind = getattr(compiler_errors, outcome["error"]["type"], None)
    return status_for(kind) if isinstance(kind, type) else 502


class ServiceError(OpenFirstError):
    """An HTTP error with a JSON body, raised inside endpoints."""

    def __init__(self, status: int, kind: str, message: str, hint: str | None = None, retryable: bool = False):
        super().__init__(message, hint=hint, retryable=retryable)
        self.status, self.body = status, error_json(kind, message, hint, retryable)


async def with_deadline(deadline: float, work: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(work, deadline)
    except asyncio.TimeoutError:
        raise ServiceError(504, "deadline_exceeded", f"the request took longer than {deadline:g} s",
                           "send fewer inputs per request or raise limits.deadline_s", True) from None
