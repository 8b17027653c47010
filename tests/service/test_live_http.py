"""Every endpoint over real HTTP (httpx -> uvicorn on 127.0.0.1): a real router, the real SmolLM2 behind
llama.cpp's server as the local model, a recording stand-in frontier; bad inputs; metrics; the decision log."""

import json

import httpx
import pytest

from openfirst.cli import main
from openfirst.router.api import Router
from openfirst.router.records import read_log
from tests.helpers import live_service, llama_local, make_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory, llama, router_dir):
    from openfirst.compiler.backends.fake_server import ScriptedServer
    from tests.helpers import frontier_reply

    tmp = tmp_path_factory.mktemp("served")
    with ScriptedServer(responder=frontier_reply) as frontier:
        config = make_config(tmp, local=llama_local(llama), frontier=frontier,
                             router={"artifact": str(router_dir)}, limits={"max_body_bytes": 4096, "max_batch": 8})
        with live_service(config) as (url, service):
            with httpx.Client(base_url=url, timeout=120) as client:
                yield client, service, frontier, tmp


def test_health_tasks_and_openapi(served):
    client, service, _, _ = served
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["tasks"] == ["support_ticket"]
    assert health["local"]["model"] == "smollm2" and health["frontier"]["model"] == "frontier-model"
    tasks = client.get("/v1/tasks").json()["tasks"]
    assert tasks[0]["name"] == "support_ticket"
    assert tasks[0]["json_schema"] == service.tasks["support_ticket"].json_schema
    assert tasks[0]["json_schema"]["properties"]["priority"]["maximum"] == 5
    spec = client.get("/openapi.json").json()
    for path in ("/v1/tasks/{name}/extract", "/v1/route", "/v1/tasks", "/v1/chat/completions", "/healthz",
                 "/metrics"):
        assert path in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_route_matches_the_router(served, router_dir, gsm8k_slice):
    client, *_ = served
    log = read_log(gsm8k_slice)
    ids, texts = log.ids[:6], log.queries[:6]
    body = {"inputs": [{"input": t, "id": i} for i, t in zip(ids, texts)]}
    decisions = client.post("/v1/route", json=body).json()["decisions"]
    expected = Router.load(router_dir).route_many(texts)
    assert [d["id"] for d in decisions] == ids
    assert [d["target"] for d in decisions] == [e.target for e in expected]
    assert [d["p_success"] for d in decisions] == pytest.approx([e.p_success for e in expected], abs=1e-5)
    assert all(d["decided_by"] == "router" and d["threshold"] == expected[0].threshold for d in decisions)
    assert {d["model"] for d in decisions} <= {"smollm2", "frontier-model"}
    one = client.post("/v1/route", json={"input": texts[0]}).json()
    assert one["target"] == expected[0].target and one["latency_ms"] > 0


def test_extract_on_the_real_local_model(served):
    client, *_ = served
    r = client.post("/v1/tasks/support_ticket/extract",
                    json={"input": "My parcel has not arrived after three weeks, where is it?", "id": "t-1",
                          "private": True})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == "t-1" and out["target"] == "local" and out["model"] == "smollm2"
    assert out["pinned"] and out["pin_reasons"] == ["request_flag"] and out["p_success"] is None
    assert out["output"]["category"] in {"billing", "technical", "account", "shipping", "other"}
    assert 1 <= out["output"]["priority"] <= 5
    assert out["cost_usd"] > 0 and out["latency_ms"] > 0 and out["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize("kind, request_kwargs, status, error_type", [
    ("unknown task", dict(url="/v1/tasks/nope/extract", json={"input": "x"}), 404, "unknown_task"),
    ("invalid JSON", dict(url="/v1/route", content=b'{"input": ', headers={"content-type": "application/json"}),
     400, "invalid_json"),
    ("deeply nested JSON", dict(url="/v1/route", content=b"[" * 2000 + b"]" * 2000,
                                headers={"content-type": "application/json"}), 400, "invalid_json"),
    ("not UTF-8", dict(url="/v1/route", content=b'{"input": "\xff\xfe"}', headers={"content-type": "application/json"}),
     400, "invalid_json"),
    ("empty body", dict(url="/v1/route", content=b"", headers={"content-type": "application/json"}), 422,
     "invalid_request"),
    ("empty input", dict(url="/v1/route", json={"input": "   "}), 422, "invalid_request"),
    ("both input and inputs", dict(url="/v1/route", json={"input": "a", "inputs": ["b"]}), 422, "invalid_request"),
    ("unknown field", dict(url="/v1/tasks/support_ticket/extract", json={"input": "a", "temperature": 2}), 422,
     "invalid_request"),
    ("wrong type", dict(url="/v1/route", json={"inputs": [1, 2]}), 422, "invalid_request"),
    ("not an object", dict(url="/v1/route", json=["a"]), 422, "invalid_request"),
    ("batch too large", dict(url="/v1/route", json={"inputs": ["q"] * 9}), 413, "batch_too_large"),
    ("oversized body", dict(url="/v1/route", json={"input": "x" * 5000}), 413, "request_too_large"),
    ("unknown path", dict(url="/v1/nothing", json={}), 404, "not_found"),
    ("chat with another model", dict(url="/v1/chat/completions",
                                     json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
     404, "model_not_found"),
])
def test_bad_requests_get_json_errors(served, kind, request_kwargs, status, error_type):
    client, *_ = served
    r = client.post(**request_kwargs)
    assert r.status_code == status, (kind, r.text)
    error = r.json()["error"]
    assert error["type"] == error_type and error["message"]
    assert "x" * 100 not in r.text  # inputs are never echoed back
    assert client.get("/healthz").status_code == 200  # the worker is still serving


def test_oversized_body_without_content_length(served):
    client, *_ = served

    def chunks():  # chunked transfer encoding: no Content-Length header
        yield b'{"input": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    r = client.post("/v1/route", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
    assert client.get("/healthz").status_code == 200


def test_metrics_and_decision_log(served, gsm8k_slice, capsys):
    client, service, _, tmp = served
    client.post("/v1/tasks/nope/extract", json={"input": "x"})
    client.post("/v1/route", json={"inputs": ["what is 2 + 2?", "write to me at a@b.org"]})
    text = client.get("/metrics").text
    assert 'openfirst_requests_total{endpoint="/v1/route",status="200"}' in text
    assert 'openfirst_errors_total{endpoint="/v1/tasks/{name}/extract",type="unknown_task"}' in text
    assert 'openfirst_routed_total{decided_by="privacy",endpoint="route",target="local"}' in text
    assert "openfirst_routed_frontier_share" in text and "openfirst_target_frontier_share" in text
    assert 'openfirst_request_latency_seconds_bucket{endpoint="/v1/route",le="0.25"}' in text
    assert "openfirst_cost_usd_total" in text
    rows = [json.loads(x) for x in (tmp / "decisions.jsonl").read_text().splitlines()]
    assert {r["endpoint"] for r in rows} >= {"route"} and all(r["id"] and r["target"] for r in rows)
    assert main(["eval", "--decisions", str(tmp / "decisions.jsonl"), str(gsm8k_slice), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["decisions"] == len(rows) and report["labeled"] >= 6  # the GSM8K queries routed by id
