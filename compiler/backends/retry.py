"""The one retry loop for calls to servers (the SDK's own retries are switched off).

Exponential backoff with jitter, capped; `Retry-After` honoured (also capped); retries on
408, 409, 429, 5xx, connection errors, timeouts and malformed bodies; never on other
4xx. Every call has an overall deadline, and the typed error it ends with carries the
number of attempts. Secrets are scrubbed from every message.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import time
from typing import Any, Awaitable, Callable, Iterable, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from openfirst.compiler.errors import (ConnectionFailed, DeadlineExceeded, MalformedResponse, RateLimited, RemoteError,
                             RequestRejected, ServerError)
from openfirst.core.errors import OpenFirstError
from openfirst.core.redact import redact

log = logging.getLogger("openfirst.backends")
SAFE_WORD = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # an error type or code worth passing on, never free text

T = TypeVar("T")
RETRY_STATUSES = frozenset({408, 409, 429})


class RetryPolicy(BaseModel):
    """How one call is retried. Delays: min(max_delay_s, base_delay_s * 2**(n-1)) scaled by a random
    factor in [1 - jitter, 1]; a server's Retry-After replaces the computed delay (capped at max_delay_s)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(4, ge=1, le=20, description="requests per call, the first included")
    base_delay_s: float = Field(0.5, ge=0.0, le=60.0)
    max_delay_s: float = Field(20.0, ge=0.0, le=600.0, description="cap on any single wait, Retry-After included")
    jitter: float = Field(0.5, ge=0.0, le=1.0)
    deadline_s: float = Field(120.0, gt=0.0, le=3600.0, description="overall time for the call, retries included")
    attempt_timeout_s: float = Field(60.0, gt=0.0, le=3600.0, description="time limit of one request")


def retry_after_s(headers: Any) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `retry-after` as seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else max(parsed.timestamp() - time.time(), 0.0)


def classify(exc: BaseException, secrets: Iterable[str] = ()) -> tuple[type[RemoteError], int | None, float | None, str]:
    """An exception from the HTTP client -> (typed error class, status, Retry-After, scrubbed message)."""
    import openai

    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if isinstance(exc, openai.APIStatusError) and status is not None:
        # the server's own error text is summarised, never passed on: it may echo the key or the prompt
        log.debug("upstream error body (scrubbed): %s", redact(str(getattr(exc, "message", exc)), secrets)[:300])
        detail = ", ".join(f"{k} {v}" for k, v in (("type", getattr(exc, "type", None)),
                                                   ("code", getattr(exc, "code", None))) if isinstance(v, str) and
                           SAFE_WORD.match(v))
        msg = f"HTTP {status}" + (f" ({detail})" if detail else "")
        if status == 429:
            return RateLimited, status, retry_after_s(headers), msg
        if status in RETRY_STATUSES or status >= 500:
            return ServerError, status, retry_after_s(headers), msg
        return RequestRejected, status, None, msg
    if isinstance(exc, (openai.APITimeoutError, asyncio.TimeoutError, TimeoutError)):
        return ConnectionFailed, None, None, "request timed out"
    if isinstance(exc, (openai.APIConnectionError, ConnectionError)):
        return ConnectionFailed, None, None, f"connection failed ({type(exc).__name__})"
    if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError)):
        return MalformedResponse, status, None, f"malformed response ({type(exc).__name__})"
    raise exc


class Attempts:
    """The state of one call: attempts made, its deadline, and the wait before the next attempt."""

    def __init__(self, policy: RetryPolicy, what: str, secrets: Iterable[str] = (),
                 clock: Callable[[], float] = time.monotonic, rng: Callable[[], float] = random.random):
        self.policy, self.what, self.secrets = policy, what, tuple(secrets)
        self.clock, self.rng = clock, rng
        self.deadline = clock() + policy.deadline_s
        self.count = 0
        self.last: RemoteError | None = None

    def start(self) -> float:
        """Begin an attempt; returns its time limit (never past the deadline)."""
        left = self.deadline - self.clock()
        if left <= 0:
            raise self._deadline()
        self.count += 1
        return min(self.policy.attempt_timeout_s, left)

    def failed(self, exc: BaseException) -> float:
        """Seconds to wait before the next attempt, or raise the call's typed error."""
        if isinstance(exc, OpenFirstError) and not isinstance(exc, RemoteError):
            if hasattr(exc, "attempts"):
                exc.attempts = self.count
            raise exc
        if isinstance(exc, RemoteError):
            kind, status, wait, msg = type(exc), exc.status, None, exc.message
        else:
            kind, status, wait, msg = classify(exc, self.secrets)
        err = kind(f"{self.what}: {msg} (attempt {self.count} of {self.policy.max_attempts})", status=status,
                   attempts=self.count)
        self.last = err
        if not err.retryable or self.count >= self.policy.max_attempts:
            raise err from None
        if wait is None:
            wait = min(self.policy.max_delay_s, self.policy.base_delay_s * 2 ** (self.count - 1))
            wait *= 1.0 - self.policy.jitter * self.rng()
        wait = min(wait, self.policy.max_delay_s)
        if self.clock() + wait >= self.deadline:
            raise self._deadline()
        return wait

    def _deadline(self) -> DeadlineExceeded:
        last = f"; last error: {self.last.message}" if self.last else ""
        return DeadlineExceeded(f"{self.what}: deadline of {self.policy.deadline_s:g}s passed after {self.count} "
                                f"attempt(s){last}", status=getattr(self.last, "status", None), attempts=self.count)


def call_with_retries(fn: Callable[[float], T], policy: RetryPolicy, what: str, secrets: Iterable[str] = (),
                      sleep: Callable[[float], None] = time.sleep) -> tuple[T, int]:
    """Run `fn(timeout_s)` under the policy; returns (result, attempts)."""
    tries = Attempts(policy, what, secrets)
    while True:
        timeout = tries.start()
        try:
            return fn(timeout), tries.count
        except Exception as exc:  # noqa: BLE001 - classified (or re-raised) by `failed`
            sleep(tries.failed(exc))


async def acall_with_retries(fn: Callable[[float], Awaitable[T]], policy: RetryPolicy, what: str,
                             secrets: Iterable[str] = ()) -> tuple[T, int]:
    """The async twin of `call_with_retries`; each attempt is also bounded by `asyncio.wait_for`."""
    tries = Attempts(policy, what, secrets)
    while True:
        timeout = tries.start()
        try:
            return await asyncio.wait_for(fn(timeout), timeout), tries.count
        except Exception as exc:  # noqa: BLE001 - classified (or re-raised) by `failed`
            await asyncio.sleep(tries.failed(exc))
