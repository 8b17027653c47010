"""The OpenAI-compatible chat endpoint in process (httpx over ASGI) on scripted FAKE in-process backends."""

import json

import pytest

from openfirst.compiler.backends.fake import ScriptedBackend
from tests.helpers import call, fake_service


def chat(service, *messages, **extra):
    return call(service, "POST", "/v1/chat/completions",
                json={"model": "openfirst-router", "messages": list(messages), **extra})


def test_chat_is_routed_and_private_conversations_stay_local(tmp_path):
    local = ScriptedBackend(["hello from local"], cycle=True, model_name="small")
    frontier = ScriptedBackend(["hello from frontier"], cycle=True, model_name="big")
    service = fake_service(tmp_path, local, frontier)
    hard = chat(service, {"role": "user", "content": "prove the theorem 3"})
    assert hard.status_code == 200 and hard.json()["openfirst"]["target"] == "frontier"
    assert hard.json()["choices"][0]["message"]["content"] == "hello from frontier"
    easy = chat(service, {"role": "user", "content": "refund my order 4"})
    assert easy.json()["openfirst"]["target"] == "local" and easy.json()["model"] == "small"
    seen = len(frontier.seen)
    pinned = chat(service, {"role": "system", "content": "the user is jane.doe@example.com"},
                  {"role": "user", "content": "prove the theorem 5"})
    assert pinned.json()["openfirst"]["decided_by"] == "privacy" and len(frontier.seen) == seen
    flagged = chat(service, {"role": "user", "content": "prove the theorem 6"}, openfirst_private=True)
    assert flagged.json()["openfirst"]["target"] == "local" and len(frontier.seen) == seen


def test_chat_errors(tmp_path):
    service = fake_service(tmp_path, ScriptedBackend(["x"], cycle=True))
    assert chat(service, {"role": "user", "content": "hi"}, model="gpt-4").status_code == 404
    assert chat(service, {"role": "system", "content": "only a system message"}).status_code == 422
    assert call(service, "POST", "/v1/chat/completions", json={"model": "openfirst-router", "messages": [],
                                                               "bogus": 1}).status_code == 422


def test_private_header_values_are_parsed_strictly(tmp_path):
    """'on', 'y', 'enabled' used to mean "not private" silently; unknown values are now refused."""
    local = ScriptedBackend(["hi"], cycle=True)
    frontier = ScriptedBackend(["hi"], cycle=True)
    service = fake_service(tmp_path, local, frontier)
    hard = {"role": "user", "content": "prove the theorem 8"}
    for value in ("on", "y", "enabled", "TRUE", "1"):
        r = call(service, "POST", "/v1/chat/completions", headers={"X-OpenFirst-Private": value},
                 json={"model": "openfirst-router", "messages": [hard]})
        assert r.json()["openfirst"]["decided_by"] == "privacy", value
    assert frontier.seen == []
    r = call(service, "POST", "/v1/chat/completions", headers={"X-OpenFirst-Private": "maybe"},
             json={"model": "openfirst-router", "messages": [hard]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_private_flag" and frontier.seen == []
    off = call(service, "POST", "/v1/chat/completions", headers={"X-OpenFirst-Private": "off"},
               json={"model": "openfirst-router", "messages": [hard]})
    assert off.json()["openfirst"]["target"] == "frontier"


PII = "jane.doe@example.com"


@pytest.mark.parametrize("where", ["name", "tool_call", "user", "stop", "response_format", "part", "system",
                                   "earlier_turn"])
def test_personal_data_anywhere_in_a_chat_pins_it(tmp_path, where):
    """Personal data in a message's name, a tool call's arguments, `user`, `stop`, `response_format` or any text
    part used to reach the frontier verbatim (only `content` strings were checked)."""
    frontier = ScriptedBackend(["hi"], cycle=True)
    service = fake_service(tmp_path, ScriptedBackend(["hi"], cycle=True), frontier)
    last = {"role": "user", "content": "prove the theorem 9"}
    messages, extra = [last], {}
    if where == "name":
        messages = [{**last, "name": PII}]
    elif where == "tool_call":
        messages = [{"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": f'{{"email": "{PII}"}}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "found"}, last]
    elif where == "part":
        messages = [{"role": "user", "content": [{"type": "text", "text": "prove the theorem 9"},
                                                 {"type": "text", "text": PII}]}]
    elif where == "system":
        messages = [{"role": "system", "content": f"user: {PII}"}, last]
    elif where == "earlier_turn":
        messages = [{"role": "user", "content": PII}, {"role": "assistant", "content": "ok"}, last]
    else:
        extra = {"user": PII} if where == "user" else {"stop": [PII]} if where == "stop" else {
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"description": PII}}}}
    r = chat(service, *messages, **extra)
    assert r.status_code == 200 and r.json()["openfirst"]["decided_by"] == "privacy", r.text
    assert frontier.seen == []


@pytest.mark.parametrize("message, status", [
    ({"role": "user", "content": "hi", "secret_field": PII}, 422),  # unknown keys are refused, never forwarded
    ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}, 422),
    ({"role": "user", "content": [{"type": "text", "text": 42}]}, 422),
])
def test_what_cannot_be_checked_is_refused(tmp_path, message, status):
    frontier = ScriptedBackend(["hi"], cycle=True)
    service = fake_service(tmp_path, ScriptedBackend(["hi"], cycle=True), frontier)
    r = chat(service, message)
    assert r.status_code == status and "error" in r.json() and frontier.seen == []


def test_a_lone_surrogate_is_a_typed_4xx_and_logged_nowhere(tmp_path):
    """A lone surrogate used to raise in the embedding cache's hash: an untyped 500."""
    frontier = ScriptedBackend(["hi"], cycle=True)
    service = fake_service(tmp_path, ScriptedBackend(["hi"], cycle=True), frontier)
    body = b'{"model": "openfirst-router", "messages": [{"role": "user", "content": "bad \\ud800 text"}]}'
    r = call(service, "POST", "/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_text" and frontier.seen == []


def test_bounds_are_checked_before_work(tmp_path):
    service = fake_service(tmp_path, ScriptedBackend(["hi"], cycle=True),
                           limits={"max_messages": 3, "max_text_chars": 100, "max_output_tokens": 50})
    many = [{"role": "user", "content": "a"}] * 4
    assert chat(service, *many).status_code == 413
    assert chat(service, {"role": "user", "content": "a" * 101}).status_code == 413
    assert chat(service, {"role": "user", "content": "a"}, max_tokens=51).status_code == 422
    nan = call(service, "POST", "/v1/chat/completions", headers={"content-type": "application/json"},
               content=b'{"model": "openfirst-router", "messages": [{"role": "user", "content": "a"}], '
                       b'"presence_penalty": NaN}')
    assert nan.status_code == 422


def test_a_chat_cut_off_by_its_deadline_is_still_logged(tmp_path):
    slow = ScriptedBackend(["late"], cycle=True, delay_s=1.0)
    service = fake_service(tmp_path, slow, limits={"deadline_s": 0.2})
    r = chat(service, {"role": "user", "content": "refund my order 1"})
    assert r.status_code == 504
    service.close()
    logged = [json.loads(x) for x in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert logged[-1]["endpoint"] == "chat" and logged[-1]["ok"] is False and logged[-1]["error"] == "deadline_exceeded"


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "the weather in a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def test_tools_are_forwarded_to_a_remote_engine_and_read_by_the_privacy_rules(tmp_path):
    """Reported: chat requests with `tools` got 422."""
    from openfirst.compiler.backends.fake_server import Reply, ScriptedServer, completion
    from openfirst.compiler.backends.openai_compat import OpenAICompatibleBackend

    with ScriptedServer([Reply(body=completion("calling it"))]) as server:
        local = OpenAICompatibleBackend("small", base_url=server.base_url, api_key="x", flavor="vllm")
        frontier = ScriptedBackend(["hello from frontier"], cycle=True)
        service = fake_service(tmp_path, local, frontier)
        r = chat(service, {"role": "user", "content": "refund my order 4"}, tools=TOOLS, tool_choice="auto")
        assert r.status_code == 200 and r.json()["openfirst"]["target"] == "local"
        sent = server.requests[-1]["body"]
        assert sent["tools"] == TOOLS and sent["tool_choice"] == "auto"
        leaky = [{"type": "function", "function": {**TOOLS[0]["function"],
                                                   "description": "reply to jane.doe@example.com"}}]
        pinned = chat(service, {"role": "user", "content": "prove the theorem 5"}, tools=leaky)
        assert pinned.json()["openfirst"]["decided_by"] == "privacy" and frontier.seen == []
    bad = chat(service, {"role": "user", "content": "hi"}, tools=[{"type": "function", "function": {"name": "a b"}}])
    assert bad.status_code == 422


def test_the_in_process_model_refuses_tools_with_a_typed_error(tmp_path):
    service = fake_service(tmp_path, ScriptedBackend(["x"], cycle=True))
    r = chat(service, {"role": "user", "content": "refund my order 4"}, tools=TOOLS)
    assert r.status_code == 502 and "cannot call tools" in r.json()["error"]["message"]


def test_a_card_number_split_across_two_messages_stays_local():
    """Reported by a held-out probe: the halves of a card number in two messages reached the frontier."""
    import tempfile
    from pathlib import Path

    frontier = ScriptedBackend(["hi"], cycle=True)
    service = fake_service(Path(tempfile.mkdtemp()), ScriptedBackend(["ok"], cycle=True), frontier)
    r = chat(service, {"role": "system", "content": "be helpful"}, {"role": "user", "content": "my card is 4111 1111"},
             {"role": "assistant", "content": "go on"}, {"role": "user", "content": "1111 1111 - prove the theorem 9"})
    assert r.status_code == 200 and r.json()["openfirst"]["decided_by"] == "privacy" and frontier.seen == []


def test_numeric_parameters_are_bounded_before_anything_is_sent(tmp_path):
    """Reported: a 4,000-digit top_logprobs reached the frontier."""
    frontier = ScriptedBackend(["hi"], cycle=True)
    service = fake_service(tmp_path, ScriptedBackend(["ok"], cycle=True), frontier)
    hard = {"role": "user", "content": "prove the theorem 10"}
    for bad in ({"top_logprobs": int("9" * 4000)}, {"top_logprobs": 21}, {"presence_penalty": 3.0},
                {"frequency_penalty": -2.5}, {"seed": 2**64}):
        r = chat(service, hard, **bad)
        assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_request", bad
    assert frontier.seen == []
    assert chat(service, hard, top_logprobs=5, logprobs=True, seed=7).status_code == 200
