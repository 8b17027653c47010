"""The service's one JSON error shape, and the HTTP status of each typed error."""

import asyncio

import pytest

from openfirst.compiler.errors import BackendError, DeadlineExceeded, EngineCrashed, OutputValidationError, RateLimited
from openfirst.core.errors import ConfigError, OpenFirstError
from openfirst.service.http_errors import ServiceError, check_text, error_json, status_for, with_deadline
from openfirst.service.spending import FrontierBudgetExceeded


@pytest.mark.parametrize("error, status", [(DeadlineExceeded("slow"), 504), (FrontierBudgetExceeded("spent"), 429),
                                           (RateLimited("429"), 503), (EngineCrashed("SIGSEGV"), 503),
                                           (BackendError("down"), 502), (OutputValidationError("bad", attempts=1, last_output="{}"), 502),
                                           (ConfigError("bad option"), 400), (OpenFirstError("other"), 500)])
def test_each_typed_error_has_its_status(error, status):
    assert status_for(error) == status and status_for(type(error)) == status


def test_text_limits_and_the_deadline_are_typed_http_errors():
    with pytest.raises(ServiceError) as too_long:
        check_text(["ab", "cde"], 4)
    assert too_long.value.status == 413 and too_long.value.body["error"]["type"] == "text_too_long"
    with pytest.raises(ServiceError) as surrogate:
        check_text(["ok \ud800"], 100)
    assert surrogate.value.status == 422
    with pytest.raises(ServiceError) as late:
        asyncio.run(with_deadline(0.01, asyncio.sleep(1)))
    assert late.value.status == 504 and late.value.body["error"]["retryable"] is True
    assert error_json("x", "y") == {"error": {"type": "x", "message": "y", "hint": None, "retryable": False}}
