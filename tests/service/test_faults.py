"""Faults over real HTTP: a local backend that is down, fallback on and off, deadlines, the concurrency limit,
and secrets that never reach logs, responses or metrics. FAKE servers here only inject faults."""

import asyncio
import json
import logging

import httpx
import pytest

from tests.helpers import SECRET, down_local, live_service, make_config
from openfirst.compiler.backends.fake_server import Reply, ScriptedServer, completion

pytestmark = pytest.mark.slow
TICKET = json.dumps({"category": "shipping", "priority": 2, "summary": "Parcel late."})


def extract(url, body, **kw):
    return httpx.post(f"{url}/v1/tasks/support_ticket/extract", json=body, timeout=60, **kw)


def test_local_down_gives_an_error_or_falls_back_when_allowed(tmp_path, frontier, router_dir):
    local_wins = {"artifact": str(router_dir), "threshold": 1e9}  # the router keeps everything local
    with live_service(make_config(tmp_path, local=down_local(), frontier=frontier, router=local_wins)) as (url, _):
        r = extract(url, {"input": "Where is my parcel?"})
        assert r.status_code == 502 and r.json()["error"]["type"] == "ConnectionFailed"
        assert r.json()["target"] == "local" and r.json()["attempts"] == 1
        batch = extract(url, {"inputs": ["Where is my parcel?", "Refund me"]})
        assert batch.status_code == 200 and batch.json()["errors"] == 2
        assert frontier.calls == 0
    allow = {"fallback_local_to_frontier": True}
    with live_service(make_config(tmp_path, local=down_local(), frontier=frontier, router=local_wins,
                                  routing=allow)) as (url, _):
        r = extract(url, {"input": "Where is my parcel?"})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["target"] == "frontier" and out["decided_by"] == "fallback" and out["fallback_from"] == "local"
        assert out["model"] == "frontier-model" and out["output"]["category"] == "shipping"
        assert frontier.calls == 1
        pinned = extract(url, {"input": "Where is my parcel? mail me at jo@example.com"})
        assert pinned.status_code == 502 and pinned.json()["pinned"] and pinned.json()["pin_reasons"] == ["email"]
        assert frontier.calls == 1  # the pinned request never reached the frontier, even with fallback on


def test_frontier_down_falls_back_to_local(tmp_path, router_dir):
    local = ScriptedServer([Reply(body=completion(TICKET, model="local-model"))])  # FAKE local: answers instantly
    broken = ScriptedServer([Reply(status=500, body={"error": {"message": "boom"}})])
    with local, broken:
        cfg = make_config(tmp_path, local={"kind": "server", "model": "local-model", "base_url": local.base_url},
                          frontier=broken, router={"artifact": str(router_dir), "threshold": -1e9})
        with live_service(cfg) as (url, _):
            out = extract(url, {"input": "Where is my parcel?"}).json()
            assert out["target"] == "local" and out["fallback_from"] == "frontier" and out["model"] == "local-model"
            assert broken.calls == 2  # retried once (max_attempts=2), then fell back


def test_deadline_and_concurrency_limit(tmp_path):
    slow = ScriptedServer([Reply(body=completion(TICKET), delay_s=2.0)])  # FAKE local: slow
    with slow:
        local = {"kind": "server", "model": "local-model", "base_url": slow.base_url}
        with live_service(make_config(tmp_path, local=local, limits={"deadline_s": 0.5})) as (url, _):
            r = extract(url, {"input": "Where is my parcel?", "id": "late-1"})
            assert r.status_code == 504 and r.json()["error"]["type"] == "deadline_exceeded"
        logged = [json.loads(x) for x in (tmp_path / "decisions.jsonl").read_text().splitlines()]
        assert logged[-1]["id"] == "late-1" and logged[-1]["ok"] is False
        assert logged[-1]["error"] == "deadline_exceeded"
        limits = {"max_concurrency": 1, "queue_timeout_s": 0.2}
        with live_service(make_config(tmp_path, local=local, limits=limits)) as (url, _):
            async def two():
                async with httpx.AsyncClient(base_url=url, timeout=30) as c:
                    return await asyncio.gather(*(c.post("/v1/tasks/support_ticket/extract",
                                                         json={"input": f"parcel {i}"}) for i in range(2)))
            codes = sorted(r.status_code for r in asyncio.run(two()))
            assert codes == [200, 503]
            assert httpx.get(f"{url}/healthz").status_code == 200  # /healthz is outside the limit


def test_secrets_never_logged_or_returned(tmp_path, router_dir, caplog):
    # the stand-in frontier rejects the key and echoes it back in its error, as some gateways do
    echo = ScriptedServer([Reply(status=401, body={"error": {"message": f"invalid api key {SECRET}"}})])
    caplog.set_level(logging.DEBUG)
    with echo:
        cfg = make_config(tmp_path, local=down_local(), frontier=echo,
                          router={"artifact": str(router_dir), "threshold": -1e9},
                          routing={"fallback_frontier_to_local": False})
        with live_service(cfg) as (url, _):
            r = extract(url, {"input": "Where is my parcel?"})
            assert r.status_code == 502 and r.json()["error"]["type"] == "RequestRejected"
            chat = httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
                "model": "openfirst-router", "messages": [{"role": "user", "content": "hello"}]})
            assert chat.status_code == 502
            seen = [r.text, chat.text, httpx.get(f"{url}/metrics").text, httpx.get(f"{url}/healthz").text]
        headers = {k.lower(): v for k, v in echo.requests[0]["headers"].items()}
        assert headers["authorization"] == f"Bearer {SECRET}"  # it was sent...
    seen += [caplog.text, (tmp_path / "decisions.jsonl").read_text()]
    assert caplog.text  # DEBUG logging was on
    for text in seen:
        assert SECRET not in text  # ...and never shown


def test_model_output_failing_validation_is_a_typed_502(tmp_path):
    bad = ScriptedServer([Reply(body=completion('{"category": "nope", "priority": 9}', model="local-model"))])
    with bad:  # FAKE local model that answers outside the schema every time
        local = {"kind": "server", "model": "local-model", "base_url": bad.base_url}
        with live_service(make_config(tmp_path, local=local)) as (url, _):
            r = extract(url, {"input": "Where is my parcel?"})
            assert r.status_code == 502 and r.json()["error"]["type"] == "OutputValidationError"
            assert "priority" in r.json()["error"]["message"] and r.json()["attempts"] == 2
            assert bad.calls == 2  # the first answer plus one retry with the error fed back
