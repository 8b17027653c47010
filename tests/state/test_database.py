"""Decisions and durable spend in a real PostgreSQL (and SQLite): the schema created and versioned at start, rows
spooled on local disk and written exactly once, through an outage and after a replica dies."""

import json

import pytest
import sqlalchemy as sa

from openfirst.core.errors import ConfigError
from openfirst.state.breaker import Breaker
from openfirst.state.database import SCHEMA_VERSION, Database, decision_row
from openfirst.state.settings import StateSettings
from openfirst.state.shared import SharedState
from openfirst.state.spool import Spool


def decision(i, **kw):
    return {"id": f"q{i}", "time": f"2026-12-05T00:00:{i:02d}", "endpoint": "extract", "task": "t",
            "target": "local", "decided_by": "router", "query": f"question {i}", **kw}


def count(url, table="openfirst_decisions"):
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text(f"SELECT count(*), count(DISTINCT record_id) FROM {table}")).one() \
            if table == "openfirst_decisions" else conn.execute(sa.text(f"SELECT count(*) FROM {table}")).one()
    engine.dispose()
    return tuple(n)


def test_the_schema_is_created_versioned_and_a_newer_one_refused(database_url):
    db = Database(database_url, Breaker("database", 1.0))
    db.check()
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT version FROM openfirst_schema")).scalar() == SCHEMA_VERSION
        conn.execute(sa.text("UPDATE openfirst_schema SET version = 99"))
    engine.dispose()
    with pytest.raises(ConfigError, match="schema is version 99"):
        Database(database_url, Breaker("database", 1.0)).check()
    db.close()


def test_a_row_is_written_once_however_often_it_is_sent(database_url):
    db = Database(database_url, Breaker("database", 1.0))
    rows = [("decisions", decision_row(decision(i), f"r{i}", "replica-a")) for i in range(3)]
    assert db.insert(rows) == 3 and db.insert(rows[:2]) == 2  # sent again (a crash before the offset moved)
    assert count(database_url) == (3, 3) and [d["id"] for d in db.decisions()] == ["q0", "q1", "q2"]
    db.insert([("spend", {"settlement_id": f"s{i}", "key": "team", "day": "2026-12-05", "usd": 0.25})
               for i in (1, 2, 2)])
    assert db.spend("team", "2026-12-05") == 0.5 and db.spend("team", "2026-12-06") == 0.0
    db.close()


@pytest.mark.slow  # kills and restarts a server of its own
def test_decisions_wait_on_disk_through_an_outage_and_arrive_exactly_once(tmp_path):
    from openfirst.state.servers import PostgresServer

    server = PostgresServer(tmp_path / "pg").start()
    state = SharedState(StateSettings(database_url=server.url, spool_dir=tmp_path / "spool", replica="a",
                                      flush_interval_s=0.05, retry_after_s=0.2))
    state.start()
    state.write_decisions([decision(i) for i in range(5)])
    assert state.flush()
    server.kill()
    state.write_decisions([decision(i) for i in range(5, 10)])
    assert not state.flush() and state.degraded and state.spool.backlog() > 0
    assert state.health()["database"]["up"] is False
    server.start()
    import time
    deadline = time.monotonic() + 15
    while state.spool.backlog() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert state.spool.backlog() == 0 and not state.degraded
    assert count(server.url) == (10, 10)
    state.close()
    server.stop()


def test_a_dead_replicas_spool_is_sent_by_another(database_url, tmp_path):
    dead = Spool.for_replica(tmp_path / "spool", "dead")
    dead.append([("decisions", decision_row(decision(i), f"d{i}", "dead")) for i in range(4)])
    dead.close()  # the process is gone: its lock with it
    state = SharedState(StateSettings(database_url=database_url, spool_dir=tmp_path / "spool", replica="live"))
    state.start()
    assert state.flush() and count(database_url) == (4, 4)
    assert sorted(p.name for p in (tmp_path / "spool").glob("*.jsonl")) == ["live.jsonl"]
    with pytest.raises(ConfigError, match="in use"):  # two live replicas may not share a name (and a spool)
        SharedState(StateSettings(database_url=database_url, spool_dir=tmp_path / "spool", replica="live"))
    state.close()


def test_configuration_errors_are_clear_at_start(postgres_server, tmp_path):
    wrong = postgres_server.url.replace(postgres_server.password, "wrong")
    with pytest.raises(ConfigError, match="refused the connection"):
        Database(wrong, Breaker("database", 1.0)).check()
    with pytest.raises(ConfigError, match="not a database URL"):
        Database("not a url", Breaker("database", 1.0))
    with pytest.raises(ConfigError, match="no driver"):
        Database("postgresql+nodriver://x@127.0.0.1/db", Breaker("database", 1.0))
    down = Database("postgresql+psycopg://u:p@127.0.0.1:1/db", Breaker("database", 1.0))
    down.check()  # unreachable: it starts down, decisions wait on disk
    assert not down.breaker.up


def test_sqlite_works_as_the_embedded_database_and_read_decisions_takes_a_url(tmp_path):
    from openfirst.service.decision_log import read_decisions

    url = f"sqlite:///{tmp_path / 'state.db'}"
    state = SharedState(StateSettings(database_url=url, spool_dir=tmp_path / "spool", replica="one"))
    state.start()
    state.write_decisions([decision(i) for i in range(3)])
    assert state.flush()
    state.close()
    assert [d["id"] for d in read_decisions(url)] == ["q0", "q1", "q2"]
    assert json.loads(json.dumps(read_decisions(url)[0]))["query"] == "question 0"
