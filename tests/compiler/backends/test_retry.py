"""Retries of one remote call: which errors retry, how long to wait, the attempt count and the overall deadline."""

import asyncio

import pytest

from openfirst.compiler.backends.retry import RetryPolicy, acall_with_retries, call_with_retries, retry_after_s
from openfirst.compiler.errors import ConnectionFailed, DeadlineExceeded, RequestRejected, ServerError


def test_retry_after_reads_milliseconds_seconds_and_http_dates():
    assert retry_after_s({"retry-after-ms": "1500"}) == 1.5 and retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past: no wait
    assert retry_after_s({}) is None and retry_after_s(None) is None


def test_retryable_errors_retry_with_backoff_until_the_attempts_run_out():
    waits, calls = [], []

    def flaky(timeout):
        calls.append(timeout)
        if len(calls) < 3:
            raise ServerError("HTTP 503", status=503)
        return "ok"

    policy = RetryPolicy(max_attempts=3, base_delay_s=0.1, jitter=0.0, attempt_timeout_s=5)
    assert call_with_retries(flaky, policy, "test call", sleep=waits.append) == ("ok", 3)
    assert waits == [0.1, 0.2] and calls == [5, 5, 5]
    with pytest.raises(ServerError, match="attempt 2 of 2") as exc:
        call_with_retries(lambda t: (_ for _ in ()).throw(ServerError("HTTP 500", status=500)),
                          RetryPolicy(max_attempts=2, base_delay_s=0), "test call", sleep=lambda s: None)
    assert exc.value.attempts == 2


def test_a_rejected_request_is_not_retried_and_the_deadline_bounds_the_call():
    calls = []

    def rejected(timeout):
        calls.append(1)
        raise RequestRejected("HTTP 400", status=400)

    with pytest.raises(RequestRejected):
        call_with_retries(rejected, RetryPolicy(), "test call", sleep=lambda s: None)
    assert calls == [1]

    async def down(timeout):
        raise ConnectionError("refused")

    policy = RetryPolicy(max_attempts=20, base_delay_s=0.05, jitter=0.0, deadline_s=0.12)
    with pytest.raises((DeadlineExceeded, ConnectionFailed)):
        asyncio.run(acall_with_retries(down, policy, "test call"))
