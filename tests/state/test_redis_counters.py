"""Rate limits and budgets in a real Redis (on loopback): atomic across "replicas" (several clients), the same
token bucket as the in-process limiter, seeded from durable spend, failing closed when Redis is down."""

import threading
import time

import pytest

from openfirst.core.errors import ConfigError
from openfirst.state.breaker import Breaker, StoreDown
from openfirst.state.redis_counters import RedisCounters

DAY = "2026-12-05"


def counters(url, durable=None, timeout_s=0.25):
    return RedisCounters(url, timeout_s, Breaker("redis", 0.5), durable)


def test_concurrent_replicas_never_reserve_past_the_budget(redis_url):
    replicas = [counters(redis_url) for _ in range(4)]
    granted = []

    def client(c):
        for _ in range(25):
            if c.reserve("team", DAY, 0.03, 1.0):
                granted.append(1)
    threads = [threading.Thread(target=client, args=(c,)) for c in replicas for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 33  # 33 x 0.03 = 0.99 <= 1.0 < 34 x 0.03, out of 200 tries on 8 threads
    replicas[0].settle("team", DAY, 0.03, 0.01)  # a call that cost less than its worst case frees the rest
    assert replicas[1].state("team", DAY) == pytest.approx({"spent_usd": 0.01, "reserved_usd": 0.96})
    assert replicas[2].reserve("team", DAY, 0.03, 1.0) and not replicas[2].reserve("team", DAY, 0.03, 1.0)


def test_the_rate_limit_is_one_bucket_for_every_replica(redis_url):
    a, b = counters(redis_url), counters(redis_url)
    waits = [(a if i % 2 else b).take("team", 60) for i in range(61)]  # 60 a minute: a burst of 60, then 1/s
    assert waits[:60] == [0.0] * 60 and 0.9 < waits[60] <= 1.0
    assert a.take("other", 60) == 0.0  # per key


def test_replicas_are_counted_by_their_heartbeats(redis_url):
    a, b = counters(redis_url), counters(redis_url)
    assert a.heartbeat("r1", 0.3) == 1 and b.heartbeat("r2", 0.3) == 2 and a.heartbeat("r1", 0.3) == 2
    time.sleep(0.4)
    assert b.heartbeat("r2", 0.3) == 1  # r1 stopped beating: no longer counted


def test_a_missing_day_is_seeded_from_durable_spend(redis_url):
    c = counters(redis_url, durable=lambda key, day: 0.95)
    assert not c.reserve("team", DAY, 0.1, 1.0) and c.reserve("team", DAY, 0.05, 1.0)

    def unknown(key, day):
        raise StoreDown("database down")
    with pytest.raises(StoreDown):  # the database cannot say what was spent: nothing is reserved
        counters(redis_url, durable=unknown).reserve("other", DAY, 0.01, 1.0)


@pytest.mark.slow  # kills and restarts a server of its own
def test_redis_down_fails_fast_and_settlements_wait_for_it(redis_server, tmp_path):
    from openfirst.state.servers import RedisServer

    server = RedisServer(tmp_path / "r").start()
    c = counters(server.url)
    assert c.reserve("team", DAY, 0.5, 1.0)
    server.kill()
    c.settle("team", DAY, 0.5, 0.2)  # Redis cannot take it now: kept
    with pytest.raises(StoreDown):
        c.reserve("team", DAY, 0.1, 1.0)
    start = time.perf_counter()
    for _ in range(100):  # the breaker is open: no call waits for a timeout
        with pytest.raises(StoreDown):
            c.take("team", 60)
    assert time.perf_counter() - start < 0.5 and c.pending == 1 and not c.breaker.up
    server.start()  # same port, same append-only file: nothing lost
    time.sleep(0.6)
    assert c.reserve("team", DAY, 0.1, 1.0) and c.pending == 0
    assert c.state("team", DAY) == pytest.approx({"spent_usd": 0.2, "reserved_usd": 0.1})
    server.stop()


def test_configuration_errors_are_clear_at_start_and_unreachable_starts_down(redis_server):
    with pytest.raises(ConfigError, match="refused the connection"):
        counters(redis_server.url.replace(redis_server.password, "wrong")).check()
    with pytest.raises(ConfigError, match="not a Redis URL"):
        counters("http://127.0.0.1:1/0")
    down = counters("redis://127.0.0.1:1/0")
    down.check()
    assert not down.breaker.up and "Connection" in down.breaker.error
