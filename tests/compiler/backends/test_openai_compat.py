"""The server backend against a scripted FAKE server on 127.0.0.1: retries, errors, deadlines, secrets."""

import asyncio
import logging
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from openfirst.compiler.backends.openai_compat import OpenAICompatibleBackend
from openfirst.compiler.backends.pricing import Price
from openfirst.compiler.backends.retry import Attempts, RetryPolicy
from openfirst.compiler.errors import (ConnectionFailed, DeadlineExceeded, IncompleteOutput, MalformedResponse, RateLimited,
                             Refusal, RequestRejected, ServerError, StrictSchemaError)
from openfirst.compiler.program import Program, ProgramOptions, Result
from openfirst.compiler.task import compile_task
from openfirst.compiler.backends.fake_server import Reply, ScriptedServer, completion

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05, deadline_s=10, attempt_timeout_s=5)
KEY = "sk-test-DO-NOT-LEAK-4242"
GOOD = '{"category":"billing","priority":2,"note":null}'


class Ticket(BaseModel):
    """Route the ticket."""

    category: Literal["billing", "bug", "other"]
    priority: int = Field(ge=1, le=5)
    note: str = Field("none given", max_length=40)


def program(server, retry=FAST, flavor="openai", **kw) -> Program:
    backend = OpenAICompatibleBackend("gpt-test", base_url=server.base_url, api_key=KEY, flavor=flavor, retry=retry,
                                      price=Price(input_per_mtok=1.0, output_per_mtok=2.0), **kw)
    return Program(compile_task(Ticket), backend, ProgramOptions(max_retries=0, max_tokens=50))


def test_429_then_200_retries_once_and_honours_the_strict_mapping():
    with ScriptedServer([Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}),
                         Reply(body=completion(GOOD))]) as s:
        result = program(s).run("my card was charged twice")
    assert s.calls == 2
    assert isinstance(result, Result) and result.attempts == 1
    assert result.output == Ticket(category="billing", priority=2)  # the forced null became the default again
    assert result.model == "fake-model" and result.cost_usd == pytest.approx((10 * 1.0 + 5 * 2.0) / 1e6)
    fmt = s.requests[0]["body"]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["required"] == ["category", "priority", "note"] and schema["additionalProperties"] is False
    assert schema["properties"]["note"]["type"] == ["string", "null"]


def test_500_repeatedly_gives_a_typed_error_with_the_attempt_count():
    with ScriptedServer([Reply(500, {"error": {"message": "boom"}})]) as s:
        with pytest.raises(ServerError) as err:
            program(s).run("x")
    assert s.calls == 3 and err.value.attempts == 3 and err.value.status == 500 and err.value.retryable


@pytest.mark.parametrize("status", [400, 401, 403, 422])
def test_client_errors_are_never_retried(status):
    with ScriptedServer([Reply(status, {"error": {"message": "no"}})]) as s:
        with pytest.raises(RequestRejected) as err:
            program(s).run("x")
    assert s.calls == 1 and err.value.attempts == 1 and err.value.status == status


@pytest.mark.parametrize("status", [408, 409, 503])
def test_other_retryable_statuses(status):
    with ScriptedServer([Reply(status, {}), Reply(body=completion(GOOD))]) as s:
        program(s).run("x")
    assert s.calls == 2


def test_429_every_time_is_rate_limited():
    with ScriptedServer([Reply(429, {}, {"retry-after-ms": "1"})]) as s:
        with pytest.raises(RateLimited) as err:
            program(s).run("x")
    assert s.calls == 3 and err.value.attempts == 3


def test_a_slow_server_times_out_per_attempt_then_the_call_fails():
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.0, attempt_timeout_s=0.3, deadline_s=10)
    with ScriptedServer([Reply(body=completion(GOOD), delay_s=1.5)]) as s:
        with pytest.raises(ConnectionFailed) as err:
            program(s, retry=policy).run("x")
    assert s.calls == 2 and err.value.attempts == 2 and "timed out" in err.value.message


def test_the_overall_deadline_bounds_the_call():
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.0, attempt_timeout_s=5, deadline_s=1.0)
    with ScriptedServer([Reply(500, {}, delay_s=0.6)]) as s:
        with pytest.raises(DeadlineExceeded) as err:
            program(s, retry=policy).run("x")
    # a 500 after 0.6 s; the second attempt gets the 0.4 s left, times out, and no time is left to retry
    assert s.calls == 2 and err.value.attempts == 2 and err.value.status is None


def test_a_malformed_body_is_retried_then_reported():
    with ScriptedServer([Reply(body="{not json")]) as s:
        with pytest.raises(MalformedResponse) as err:
            program(s).run("x")
    assert s.calls == 3 and err.value.attempts == 3


def test_a_body_without_choices_is_malformed():
    with ScriptedServer([Reply(body={"id": "x"}), Reply(body=completion(GOOD))]) as s:
        program(s).run("x")
    assert s.calls == 2


def test_finish_reason_length_is_incomplete_output_not_partial_json():
    with ScriptedServer([Reply(body=completion('{"category":"bil', finish_reason="length"))]) as s:
        with pytest.raises(IncompleteOutput):
            program(s).run("x")
    assert s.calls == 1


def test_a_refusal_raises_refusal_without_retrying():
    with ScriptedServer([Reply(body=completion(None, refusal="I can't help with that."))]) as s:
        with pytest.raises(Refusal) as err:
            program(s).run("x")
    assert s.calls == 1 and err.value.refusal == "I can't help with that." and err.value.attempts == 1


def test_an_unreachable_server_is_a_connection_error():
    with ScriptedServer() as s:
        url = s.base_url
    backend = OpenAICompatibleBackend("m", base_url=url, api_key=KEY, retry=FAST)
    with pytest.raises(ConnectionFailed) as err:
        Program(compile_task(Ticket), backend, ProgramOptions(max_retries=0)).run("x")
    assert err.value.attempts == 3


def test_the_api_key_never_appears_in_reprs_errors_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    with ScriptedServer([Reply(401, echo)]) as s:
        p = program(s)
        with pytest.raises(RequestRejected) as err:
            p.run("x")
    headers = {k.lower(): v for k, v in s.requests[0]["headers"].items()}
    assert headers["authorization"] == f"Bearer {KEY}"  # it was sent ...
    seen = [repr(p.backend), str(err.value), repr(err.value), err.value.message, caplog.text]
    assert all(KEY not in text for text in seen)  # ... and shown nowhere
    assert "HTTP 401" in err.value.message and "Incorrect" not in err.value.message  # summarised, not echoed
    assert "***" in caplog.text  # the scrubbed upstream text is only in the debug log


def test_secrets_in_the_base_url_are_redacted_and_upstream_text_is_not_echoed(caplog):
    caplog.set_level(logging.DEBUG)
    prompt_echo = {"error": {"message": "bad request for user jane.doe@example.com with key sk-url-secret",
                             "type": "invalid_request_error", "code": "bad thing; DROP TABLE"}}
    with ScriptedServer([Reply(400, prompt_echo)]) as s:
        url = s.base_url.replace("http://", "http://admin:sk-url-secret@") + "?api-key=sk-query-secret&v=1"
        p = program(s)
        p.backend = OpenAICompatibleBackend("gpt-test", base_url=url, flavor="json_schema", retry=FAST)
        p = Program(p.task, p.backend, ProgramOptions(max_retries=0))
        with pytest.raises(RequestRejected) as err:
            p.run("x")
    seen = [repr(p.backend), err.value.message, caplog.text]
    for secret in ("sk-url-secret", "sk-query-secret", "admin:", "jane.doe"):
        assert all(secret not in text for text in seen[:2]), secret
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("openfirst"))
    assert "sk-url-secret" not in ours and "sk-query-secret" not in ours  # httpx logs full URLs: serve mutes it
    assert err.value.message.endswith("HTTP 400 (type invalid_request_error) (attempt 1 of 3)")
    assert "v=1" in repr(p.backend) and "api-key=***" in repr(p.backend)


def test_a_task_strict_mode_cannot_express_fails_before_any_request():
    class Tags(BaseModel):
        """Tag it."""

        counts: dict[str, int]

    with ScriptedServer() as s:
        backend = OpenAICompatibleBackend("m", base_url=s.base_url, api_key=KEY, retry=FAST)
        with pytest.raises(StrictSchemaError) as err:
            Program(compile_task(Tags), backend)
    assert s.calls == 0 and err.value.keyword == "additionalProperties"


def test_validation_failures_are_retried_with_feedback_on_servers_too():
    with ScriptedServer([Reply(body=completion('{"category":"billing","priority":9,"note":null}')),
                         Reply(body=completion(GOOD))]) as s:
        backend = OpenAICompatibleBackend("m", base_url=s.base_url, api_key=KEY, retry=FAST)
        result = Program(compile_task(Ticket), backend, ProgramOptions(max_retries=1)).run("x")
    assert s.calls == 2 and result.attempts == 2
    assert "rejected" in s.requests[1]["body"]["messages"][-1]["content"]


@pytest.mark.parametrize("flavor,key", [("vllm", "structured_outputs"), ("llama.cpp", "response_format"),
                                        ("json_schema", "response_format")])
def test_each_server_flavor_sends_the_compiled_schema_its_way(flavor, key):
    with ScriptedServer([Reply(body=completion('{"category":"bug","priority":1}'))]) as s:
        p = program(s, flavor=flavor)
        p.run("x")
    body = s.requests[0]["body"]
    if flavor == "vllm":
        assert body["structured_outputs"] == {"json": p.task.schema, "disable_any_whitespace": True}
    elif flavor == "llama.cpp":
        assert body["response_format"] == {"type": "json_object", "schema": p.task.schema}
    else:
        assert body["response_format"]["json_schema"]["schema"] == p.task.schema
        assert body["response_format"]["json_schema"]["strict"] is False


def test_async_runs_respect_the_concurrency_limit():
    with ScriptedServer([Reply(body=completion(GOOD), delay_s=0.2)]) as s:
        p = program(s, max_concurrency=2)
        results = asyncio.run(p.arun_many([f"ticket {i}" for i in range(6)]))
    assert all(isinstance(r, Result) for r in results) and s.calls == 6
    assert s.max_in_flight == 2


def test_sync_batches_run_concurrently_up_to_the_limit():
    with ScriptedServer([Reply(body=completion(GOOD), delay_s=0.2)]) as s:
        results = program(s, max_concurrency=3).run_many(["a"] * 6)
    assert all(isinstance(r, Result) for r in results) and s.max_in_flight == 3


def test_backoff_is_exponential_jittered_capped_and_honours_retry_after():
    from types import SimpleNamespace

    import openai

    def status_error(code, headers=None):  # what the SDK raises, without a request behind it
        exc = openai.APIStatusError.__new__(openai.APIStatusError)
        exc.status_code, exc.message = code, "err"
        exc.response = SimpleNamespace(headers={k.lower(): v for k, v in (headers or {}).items()})
        return exc

    policy = RetryPolicy(max_attempts=10, base_delay_s=1.0, max_delay_s=5.0, jitter=0.5, deadline_s=1000)
    now = [0.0]
    tries = Attempts(policy, "t", clock=lambda: now[0], rng=lambda: 1.0)  # rng 1.0: the most jitter
    waits = []
    for _ in range(5):
        tries.start()
        waits.append(tries.failed(status_error(503)))
    assert waits == [0.5, 1.0, 2.0, 2.5, 2.5]  # min(5, base*2**n), then scaled by (1 - 0.5)
    tries.start()
    assert tries.failed(status_error(429, {"Retry-After": "3"})) == 3.0
    tries.start()
    assert tries.failed(status_error(429, {"Retry-After": "3600"})) == 5.0  # capped
    now[0] = 999.5
    tries.start()
    with pytest.raises(DeadlineExceeded) as err:
        tries.failed(status_error(429, {"Retry-After": "2"}))  # waiting would pass the deadline
    assert err.value.attempts == 8


def test_llamacpp_requests_leave_long_repeat_caps_to_post_validation():
    from openfirst.compiler.backends.openai_compat import LLAMACPP_MAX_REPEAT, request_format
    from openfirst.compiler.task import compile_json_schema

    task = compile_json_schema({"type": "object", "properties": {"s": {"type": "string", "maxLength": 2000},
                                                                 "t": {"type": "string", "maxLength": 20}},
                                "required": ["s", "t"]}, "x")
    fmt = request_format(task, "llama.cpp")
    sent = fmt.request["response_format"]["schema"]["properties"]
    assert "maxLength" not in sent["s"] and sent["t"]["maxLength"] == 20 < LLAMACPP_MAX_REPEAT
    assert fmt.post_validated == [("maxLength", "/properties/s")]
    assert task._valid({"s": "x" * 2001, "t": "y"}) is False  # the task still validates the cap


def test_an_injected_client_is_used_as_given_on_the_sync_and_async_paths():
    """An injected client's key, headers and base URL must reach the server on both paths (the async path used to
    build its own AsyncOpenAI from the backend's arguments and lose them)."""
    import openai

    with ScriptedServer([Reply(body=completion(GOOD))]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-injected", max_retries=0,
                               default_headers={"X-Team": "ops"})
        backend = OpenAICompatibleBackend("gpt-test", client=client, retry=FAST)  # no base_url, no key here
        task_program = Program(compile_task(Ticket), backend, ProgramOptions(max_retries=0, max_tokens=50))
        assert isinstance(task_program.run("x"), Result)
        assert isinstance(asyncio.run(task_program.arun_many(["y"]))[0], Result)
        assert server.calls == 2
        for req in server.requests:
            headers = {k.lower(): v for k, v in req["headers"].items()}
            assert headers["authorization"] == "Bearer sk-injected" and headers["x-team"] == "ops"

        async_client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-async", max_retries=0)
        backend = OpenAICompatibleBackend("gpt-test", client=client, async_client=async_client, retry=FAST)
        out = asyncio.run(Program(compile_task(Ticket), backend, ProgramOptions(max_retries=0)).arun_many(["z"]))
        assert isinstance(out[0], Result)
        headers = {k.lower(): v for k, v in server.requests[-1]["headers"].items()}
        assert headers["authorization"] == "Bearer sk-async"
