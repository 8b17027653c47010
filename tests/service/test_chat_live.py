"""The real `openai` client against /v1/chat/completions on a live uvicorn: routed to the real SmolLM2
(llama.cpp server) or to the recording stand-in frontier, streaming and not."""

import openai
import pytest

from tests.helpers import live_service, llama_local, make_config

pytestmark = pytest.mark.slow
ASK = [{"role": "user", "content": "Say hello in French."}]


def client_for(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_chat_routed_local_real_model(tmp_path, llama, frontier, router_dir):
    router = {"artifact": str(router_dir), "threshold": 1e9}  # the router keeps everything local
    with live_service(make_config(tmp_path, local=llama_local(llama), frontier=frontier, router=router)) as (url, _):
        client = client_for(url)
        reply = client.chat.completions.create(model="openfirst-router", messages=ASK, max_tokens=16)
        assert reply.model == "smollm2" and reply.choices[0].message.content.strip()
        meta = reply.model_extra["openfirst"]
        assert meta["target"] == "local" and meta["decided_by"] == "router" and 0 <= meta["p_success"] <= 1
        assert meta["threshold"] == 1e9 and meta["latency_ms"] > 0 and meta["cost_usd"] > 0
        raw = client.chat.completions.with_raw_response.create(model="openfirst-router", messages=ASK, max_tokens=4)
        assert raw.headers["x-openfirst-target"] == "local" and raw.headers["x-openfirst-model"] == "smollm2"
        chunks = list(client.chat.completions.create(model="openfirst-router", messages=ASK, max_tokens=16,
                                                     stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.strip() and chunks[0].model_extra["openfirst"]["target"] == "local"
        assert frontier.calls == 0


def test_chat_routed_to_frontier_stream_and_not(tmp_path, llama, frontier, router_dir):
    router = {"artifact": str(router_dir), "threshold": -1e9}  # the router sends everything to the frontier
    with live_service(make_config(tmp_path, local=llama_local(llama), frontier=frontier, router=router)) as (url, _):
        client = client_for(url)
        reply = client.chat.completions.create(model="openfirst-router", messages=ASK, temperature=0.2)
        assert reply.choices[0].message.content == "Hello from the frontier" and reply.model == "frontier-model"
        assert reply.model_extra["openfirst"]["cost_usd"] == pytest.approx((10 * 1.0 + 5 * 2.0) / 1e6)
        assert frontier.requests[-1]["body"]["model"] == "frontier-model"
        assert frontier.requests[-1]["body"]["temperature"] == 0.2
        stream = client.chat.completions.create(model="openfirst-router", messages=ASK, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "Bonjour from the frontier" and frontier.calls == 2
        with pytest.raises(openai.NotFoundError, match="model_not_found|unknown model"):
            client.chat.completions.create(model="gpt-4o", messages=ASK)
        with pytest.raises(openai.UnprocessableEntityError):
            client.chat.completions.create(model="openfirst-router", messages=[{"role": "system", "content": "x"}])
        assert frontier.calls == 2
