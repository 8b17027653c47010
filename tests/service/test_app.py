"""The FastAPI app in process (httpx over ASGI, no socket) on FAKE backends and a FAKE-embedder router: endpoints,
status codes of typed errors, the JSON error shape."""

from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.errors import ConnectionFailed
from tests.helpers import GOOD_TICKET, call, fake_service


def test_endpoints_and_errors(tmp_path):
    local = ScriptedBackend([GOOD_TICKET, ConnectionFailed("down")], cycle=True)
    service = fake_service(tmp_path, local, ScriptedBackend([GOOD_TICKET], cycle=True), limits={"max_batch": 2})
    assert call(service, "GET", "/healthz").json()["status"] == "ok"
    assert call(service, "GET", "/health").json()["status"] == "ok"  # the alias
    models = call(service, "GET", "/v1/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["openfirst-router",
                                                                               "task:support_ticket"]
    tasks = call(service, "GET", "/v1/tasks").json()["tasks"]
    assert tasks[0]["name"] == "support_ticket" and tasks[0]["frontier"] is True
    route = call(service, "POST", "/v1/route", json={"inputs": ["prove the theorem 1", "refund my order 2"]}).json()
    assert [r["target"] for r in route["decisions"]] == ["frontier", "local"]
    ok = call(service, "POST", "/v1/tasks/support_ticket/extract", json={"input": "refund my order 3", "id": "a"})
    assert ok.status_code == 200 and ok.json()["output"]["priority"] == 2 and ok.json()["id"] == "a"
    down = call(service, "POST", "/v1/tasks/support_ticket/extract", json={"input": "refund my order 4"})
    assert down.status_code == 502 and down.json()["error"]["type"] == "ConnectionFailed"  # the typed error's status
    for body, status, kind in [({"input": "x"}, 404, "unknown_task"), ({"inputs": ["a", "b", "c"]}, 413, None),
                               ({"input": ""}, 422, "invalid_request"), ({"text": "x"}, 422, "invalid_request")]:
        path = "/v1/tasks/nope/extract" if status == 404 else "/v1/tasks/support_ticket/extract"
        r = call(service, "POST", path, json=body)
        assert r.status_code == status and set(r.json()["error"]) >= {"type", "message", "hint", "retryable"}
        assert kind is None or r.json()["error"]["type"] == kind
    bad = call(service, "POST", "/v1/route", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_json"


def test_batch_size_text_size_and_unicode_are_typed_4xx(tmp_path):
    service = fake_service(tmp_path, ScriptedBackend([GOOD_TICKET], cycle=True),
                           limits={"max_batch": 4, "max_text_chars": 50})
    huge = call(service, "POST", "/v1/route", json={"inputs": ["x"] * 100_000})
    assert huge.status_code == 413 and huge.json()["error"]["type"] == "batch_too_large"
    long = call(service, "POST", "/v1/tasks/support_ticket/extract", json={"inputs": ["a" * 30, "b" * 30]})
    assert long.status_code == 413 and long.json()["error"]["type"] == "text_too_long"
    bad = call(service, "POST", "/v1/route", content=b'{"input": "x \\ud800"}',
               headers={"content-type": "application/json"})
    assert bad.status_code == 422 and bad.json()["error"]["type"] in ("invalid_text", "invalid_request")


def test_a_lone_surrogate_inside_a_batch_is_a_4xx_not_a_500(tmp_path):
    """Found by benchmarks/service_abuse.py: a batch text with a lone surrogate was validated twice and the second
    validation raised outside the error handlers (500)."""
    service = fake_service(tmp_path, ScriptedBackend([GOOD_TICKET], cycle=True))
    r = call(service, "POST", "/v1/route", content=b'{"inputs": ["ok", "bad \\ud800"]}',
             headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_text"


def test_a_request_can_set_its_own_operating_point(tmp_path):
    """`extra_body={"openfirst_threshold": ...}`: the same routing score, this request's threshold."""
    local = ScriptedBackend([GOOD_TICKET], cycle=True)
    frontier = ScriptedBackend([GOOD_TICKET], cycle=True)
    service = fake_service(tmp_path, local, frontier)
    base = call(service, "POST", "/v1/route", json={"input": "refund my order 2"}).json()
    assert base["target"] == "local"
    low = call(service, "POST", "/v1/route", json={"input": "refund my order 2",
                                                   "openfirst_threshold": base["score"] - 1}).json()
    assert low["target"] == "frontier" and low["threshold"] == base["score"] - 1 and "this request" in low["reason"]
    out = call(service, "POST", "/v1/tasks/support_ticket/extract",
               json={"input": "refund my order 2", "openfirst_threshold": base["score"] - 1}).json()
    assert out["target"] == "frontier"
    share = call(service, "POST", "/v1/route", json={"input": "x y", "openfirst_frontier_share": 0.5})
    assert share.status_code == 422 and "calibration" in share.json()["error"]["message"]
    bad = call(service, "POST", "/v1/route", json={"input": "x y", "openfirst_frontier_share": 2})
    assert bad.status_code == 422
