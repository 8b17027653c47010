"""Callers: keys, permissions, rate limits, frontier budgets (in process over ASGI, on scripted FAKE backends)."""


import pytest

from openfirst.cli import main
from openfirst.compiler.backends.base import Generation
from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.backends.pricing import Price
from openfirst.service.auth import key_hash
from tests.helpers import GOOD_TICKET, fake_service
from tests.helpers import call

FULL, NARROW, LOCAL_ONLY, TIGHT, STRICT = "of_full-key", "of_narrow-key", "of_local-key", "of_tight-key", "of_strict"
HARD = "prove the theorem 11"


def key(name, secret, **kw):
    return {"name": name, "sha256": key_hash(secret), **kw}


def keyed_service(tmp_path, frontier=None, **kw):
    # a realistic usage per answer (3,000 tokens in, 400 out: 0.0034 USD at 1 USD per million tokens)
    frontier = frontier or ScriptedBackend([Generation(GOOD_TICKET, 3000, 400, True)], cycle=True, model_name="big",
                                           price=Price(input_per_mtok=1.0, output_per_mtok=1.0))
    keys = [key("full", FULL, endpoints=["extract", "route", "chat", "tasks", "metrics", "health"]),
            key("narrow", NARROW, tasks=[], endpoints=["extract"], rate_per_minute=2),
            key("local-only", LOCAL_ONLY, frontier=False),
            key("tight", TIGHT, frontier_budget_usd_per_day=0.02),
            key("strict", STRICT, frontier_budget_usd_per_day=0.02, over_budget="reject")]
    return fake_service(tmp_path, ScriptedBackend([GOOD_TICKET], cycle=True, model_name="small"), frontier,
                        auth={"keys": keys}, **kw), frontier


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def extract(service, secret, text=HARD):
    return call(service, "POST", "/v1/tasks/support_ticket/extract", json={"input": text}, headers=bearer(secret))


def test_no_request_without_a_valid_key_is_served(tmp_path):
    service, frontier = keyed_service(tmp_path)
    for headers in ({}, bearer("of_wrong"), {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        for method, path in [("POST", "/v1/tasks/support_ticket/extract"), ("POST", "/v1/route"),
                             ("POST", "/v1/chat/completions"), ("GET", "/v1/tasks"), ("GET", "/metrics"),
                             ("GET", "/v1/nowhere")]:
            r = call(service, method, path, json={"input": HARD}, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (path, headers)
    assert frontier.seen == []
    assert call(service, "GET", "/healthz").json() == {"status": "ok"}  # bare liveness, no key needed
    detailed = call(service, "GET", "/healthz", headers=bearer(FULL)).json()
    assert "tasks" in detailed and call(service, "GET", "/metrics", headers=bearer(FULL)).status_code == 200


def test_endpoints_tasks_and_rate_limit_per_key(tmp_path):
    service, _ = keyed_service(tmp_path)
    assert call(service, "GET", "/metrics", headers=bearer(NARROW)).status_code == 403
    assert call(service, "POST", "/v1/route", json={"input": "x"}, headers=bearer(LOCAL_ONLY)).status_code == 403
    assert extract(service, NARROW).status_code == 404  # a task it may not use does not exist for it
    assert extract(service, NARROW).status_code == 404
    assert extract(service, NARROW).status_code == 429  # third request in a minute: over its 2/minute
    assert call(service, "GET", "/v1/tasks", headers=bearer(FULL)).json()["tasks"]


def test_a_key_without_frontier_access_stays_local(tmp_path):
    service, frontier = keyed_service(tmp_path)
    r = extract(service, LOCAL_ONLY)
    assert r.status_code == 200 and (r.json()["target"], r.json()["decided_by"]) == ("local", "policy")
    assert frontier.seen == []
    assert extract(service, FULL).json()["target"] == "frontier"


@pytest.mark.parametrize("secret, policy", [(TIGHT, "local"), (STRICT, "reject")])
def test_frontier_spend_never_exceeds_the_budget(tmp_path, secret, policy):
    service, frontier = keyed_service(tmp_path)
    spent, statuses = 0.0, []
    for _ in range(12):
        r = extract(service, secret)
        statuses.append(r.status_code)
        if r.status_code == 200 and r.json()["target"] == "frontier":
            spent += r.json()["cost_usd"]
    caller = service.auth.by_hash[key_hash(secret)]
    assert caller.ledger.spent == pytest.approx(spent) and 0 < spent <= 0.02 and caller.ledger.reserved == 0
    assert len(frontier.seen) < 12  # the budget stopped it
    if policy == "local":
        assert set(statuses) == {200} and extract(service, secret).json()["decided_by"] == "budget"
    else:
        assert statuses[-1] == 429 and extract(service, secret).json()["error"]["type"] == "FrontierBudgetExceeded"


def test_keys_create_prints_the_key_once_and_stores_its_hash(capsys):
    assert main(["keys", "create", "--name", "app", "--budget", "2", "--tasks", "support_ticket"]) == 0
    out, err = capsys.readouterr()
    secret = err.rsplit(" ", 1)[-1].strip()
    assert secret.startswith("of_") and secret not in out
    assert f'sha256 = "{key_hash(secret)}"' in out and 'frontier_budget_usd_per_day = 2.0' in out
    assert main(["keys", "create", "--name", "x", "--endpoints", "nonsense"]) == 2


def test_serving_without_keys_is_loopback_only(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('[tasks]\nt = "x.py:T"\n[serve]\nhost = "0.0.0.0"\n')
    assert main(["serve", "--config", str(config), "--check"]) == 2
    assert "no API keys configured" in capsys.readouterr().err


def test_chat_spend_is_reserved_and_bounded_too(tmp_path):
    service, frontier = keyed_service(tmp_path)
    for _ in range(10):
        r = call(service, "POST", "/v1/chat/completions", headers=bearer(TIGHT),
                 json={"model": "openfirst-router", "messages": [{"role": "user", "content": HARD}]})
        assert r.status_code == 200
    caller = service.auth.by_hash[key_hash(TIGHT)]
    assert 0 < caller.ledger.spent <= 0.02 and caller.ledger.reserved == 0 and len(frontier.seen) < 10
    assert r.json()["openfirst"]["decided_by"] == "budget"
