"""Two replicas of the service in one process (in process over ASGI, scripted FAKE backends) sharing a real Redis
and a real PostgreSQL: one budget and one rate limit per key across both, decisions of both in the database under
the log's privacy rules, and the fail-closed paths when Redis is down (no 500s)."""

import pytest

from openfirst.cli import main
from openfirst.compiler.backends.base import Generation
from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.backends.pricing import Price
from openfirst.service.auth import key_hash
from openfirst.service.decision_log import read_decisions
from openfirst.state.shared import utc_day
from tests.helpers import GOOD_TICKET, call, fake_service

TIGHT, STRICT, SLOW, ADMIN = "of_tight", "of_strict", "of_slow", "of_admin"
HARD = "prove the theorem 11"  # the FAKE router sends it to the frontier
KEYS = [{"name": "tight", "sha256": key_hash(TIGHT), "frontier_budget_usd_per_day": 0.02},
        {"name": "strict", "sha256": key_hash(STRICT), "frontier_budget_usd_per_day": 0.02, "over_budget": "reject"},
        {"name": "slow", "sha256": key_hash(SLOW), "rate_per_minute": 4},
        {"name": "admin", "sha256": key_hash(ADMIN), "endpoints": ["extract", "health", "metrics"]}]


def replica(tmp_path, name, redis_url, database_url, frontier, **log):
    local = ScriptedBackend([GOOD_TICKET], cycle=True, model_name="small")
    state = {"redis_url": redis_url, "database_url": database_url, "spool_dir": str(tmp_path / "spool"),
             "replica": name, "flush_interval_s": 0.05, "retry_after_s": 0.3}
    return fake_service(tmp_path / name, local, frontier, auth={"keys": KEYS}, state=state,
                        log={"decisions": str(tmp_path / name / "decisions.jsonl"), **log})


def frontier_backend():
    # each answer: 3,000 tokens in, 400 out at 1 USD per million: 0.0034 USD (its worst case is higher)
    return ScriptedBackend([Generation(GOOD_TICKET, 3000, 400, True)], cycle=True, model_name="big",
                           price=Price(input_per_mtok=1.0, output_per_mtok=1.0))


def extract(service, secret, text=HARD):
    return call(service, "POST", "/v1/tasks/support_ticket/extract", json={"input": text},
                headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def replicas(tmp_path, redis_url, database_url):
    frontier = frontier_backend()
    pair = [replica(tmp_path, n, redis_url, database_url, frontier) for n in ("a", "b")]
    yield pair, frontier
    for service in pair:
        service.close()


def test_one_budget_and_one_rate_limit_per_key_across_replicas(replicas, database_url):
    (a, b), frontier = replicas
    bodies = [extract(a if i % 2 else b, TIGHT).json() for i in range(16)]
    spent = sum(r["cost_usd"] for r in bodies if r["target"] == "frontier")
    # alone, each replica would spend up to the whole budget (10 calls of the 16 between them); together, one budget
    assert 0 < spent <= 0.02 and len(frontier.seen) == round(spent / 0.0034) <= 5
    assert bodies[-1]["decided_by"] == "budget" and "over its frontier budget" in bodies[-1]["reason"]
    statuses = [extract(a if i % 2 else b, SLOW, "refund my order").status_code for i in range(6)]
    assert statuses == [200] * 4 + [429] * 2  # 4 a minute for the key, not per replica
    for s in (a, b):
        s.state.flush()
    # the durable spend in the database is what the frontier billed
    assert a.state.durable_spend("tight", utc_day()) == pytest.approx(spent)


def test_decisions_of_every_replica_reach_the_database_under_the_logs_privacy_rules(replicas, database_url, capsys):
    (a, b), _ = replicas
    extract(a, TIGHT, "refund my order 1")
    extract(b, TIGHT, "my card is 4111 1111 1111 1111, refund it")  # pinned: its text is never stored
    for s in (a, b):
        s.state.flush()
    rows = read_decisions(database_url)
    assert [r["decided_by"] for r in rows] == ["router", "privacy"] and rows[0]["query"] == "refund my order 1"
    assert rows[1]["query"] is None and rows[1]["output"] is None and "4111" not in str(rows[1])
    labels = a.config.log.decisions.parent / "labels.jsonl"
    labels.write_text("".join(f'{{"id": "{r["id"]}", "score": 1}}\n' for r in rows))
    assert main(["eval", "--decisions", database_url, str(labels), "--json"]) == 0
    assert '"labeled": 2' in capsys.readouterr().out


@pytest.mark.slow  # kills and restarts a server of its own
def test_redis_down_stops_frontier_spend_and_falls_back_to_local_limits(tmp_path, database_url):
    from openfirst.state.servers import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    frontier = frontier_backend()
    service = replica(tmp_path, "a", server.url, database_url, frontier)
    other = replica(tmp_path, "b", server.url, database_url, frontier)
    service.state._beat()  # the heartbeat a replica sends every 2 s: two replicas alive
    assert service.state.live_replicas == 2
    assert extract(service, TIGHT).json()["target"] == "frontier"
    server.kill()
    body = extract(service, TIGHT).json()
    assert (body["target"], body["decided_by"]) == ("local", "budget") and "unreachable" in body["reason"]
    refused = extract(service, STRICT)
    assert refused.status_code == 503 and refused.json()["error"]["type"] == "BudgetStoreUnavailable"
    # the local fallback: half the key's 4 a minute, as two replicas were alive
    assert [extract(service, SLOW, "refund my order").status_code for _ in range(3)] == [200, 200, 429]
    health = call(service, "GET", "/healthz", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert health["status"] == "degraded" and health["state"]["redis"]["up"] is False
    metrics = call(service, "GET", "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
    assert 'openfirst_state_store_up{store="redis"} 0.0' in metrics
    assert 'openfirst_state_store{state="budgets",store="redis"} 1.0' in metrics
    assert len(frontier.seen) == 1
    server.start()
    import time
    time.sleep(0.4)
    assert extract(service, TIGHT).json()["target"] == "frontier" and not service.degraded
    service.close()
    other.close()
    server.stop()
