"""The OpenAI-compatible chat endpoint in process (httpx over ASGI) on scripted FAKE in-process backends."""

from openfirst.compiler.backends.fake import ScriptedBackend
from tests.service.conftest import fake_service
from tests.service.test_app import call


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
