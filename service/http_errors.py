"""HTTP errors of the service: one JSON shape, `{"error": {"type", "message", "hint", "retryable"}}`
(OpenAI's error shape plus a hint), and the status each typed error maps to."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Sequence, TypeVar

from openfirst.compiler.errors import (BackendError, DeadlineExceeded, EngineCrashed, IncompleteOutput,
                                       OutputValidationError, RateLimited, Refusal, TaskSpecError)
from openfirst.core.errors import ConfigError, OpenFirstError
from openfirst.service.spending import BudgetStoreUnavailable, FrontierBudgetExceeded

T = TypeVar("T")


def error_json(kind: str, message: str, hint: str | None = None, retryable: bool = False) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, "hint": hint, "retryable": retryable}}


def status_for(error: BaseException | type[BaseException]) -> int:
    """The HTTP status of a typed error (an instance or its class)."""
    kind = error if isinstance(error, type) else type(error)
    if issubclass(kind, DeadlineExceeded):
        return 504
    if issubclass(kind, FrontierBudgetExceeded):
        return 429
    if issubclass(kind, (RateLimited, EngineCrashed, BudgetStoreUnavailable)):
        return 503  # try again shortly: the limit resets, the engine restarts, the budget store returns
    if issubclass(kind, (BackendError, OutputValidationError, IncompleteOutput, Refusal)):
        return 502  # the model or its server failed, not the request
    if issubclass(kind, (ConfigError, TaskSpecError)):
        return 400
    return 500


class ServiceError(OpenFirstError):
    """An HTTP error with a JSON body, raised inside endpoints."""

    def __init__(self, status: int, kind: str, message: str, hint: str | None = None, retryable: bool = False):
        super().__init__(message, hint=hint, retryable=retryable)
        self.status, self.body = status, error_json(kind, message, hint, retryable)


def check_text(texts: Sequence[str], max_chars: int) -> None:
    """A request's text, before any routing or generation: at most `max_chars` characters in all (413) and valid
    Unicode, no lone surrogates (422)."""
    chars = sum(len(t) for t in texts)
    if chars > max_chars:
        raise ServiceError(413, "text_too_long", f"{chars} characters of text; at most {max_chars}",
                           "send less text per request")
    for t in texts:
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise ServiceError(422, "invalid_text", "the request holds text that is not valid Unicode (a lone "
                               "surrogate)", "send UTF-8 text") from None


async def with_deadline(deadline: float, work: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(work, deadline)
    except asyncio.TimeoutError:
        raise ServiceError(504, "deadline_exceeded", f"the request took longer than {deadline:g} s",
                           "send fewer inputs per request or raise limits.deadline_s", True) from None
