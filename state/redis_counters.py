"""Per-key rate limits and frontier budgets in Redis, shared by every replica. Each operation is one Lua script,
atomic in Redis: a rate limit is a GCRA token bucket on Redis's own clock (the same bucket as the in-process
limiter: `rate_per_minute` tokens, refilled continuously); a budget is a hash per key and UTC day with the spent
and reserved amounts in integer nano-USD, and a reservation only succeeds while spent + reserved + the worst case
stays within the budget, so concurrent replicas can never reserve past it.

A day's hash missing (the first request of the day, or Redis lost its data) is seeded with the durable spend the
database holds for that key and day (0 without a database; fail closed while the database cannot say)."""

from __future__ import annotations

import threading
from typing import Any, Callable

from openfirst.core.errors import ConfigError
from openfirst.state.breaker import Breaker

NANO = 1_000_000_000
DAY_TTL_S = 3 * 86_400
PREFIX = "openfirst"

# KEYS[1]: the key's bucket; ARGV: emission interval, burst tolerance (microseconds). Returns 0 (go) or the wait (us)
RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tonumber(ARGV[2]) - now
if wait > 0 then return wait end
local new = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.floor((new - now) / 1000) + 1000)
return 0
"""
# KEYS[1]: the key's day; ARGV: worst case, budget (nano-USD). Returns 1 reserved, 0 over budget, -1 not seeded
RESERVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
if spent + reserved + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[1])
return 1
"""
# KEYS[1]: the key's day; ARGV: reserved, cost (nano-USD). Returns 1, or -1 not seeded
SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(ARGV[1])) < 0 then redis.call('HSET', KEYS[1], 'reserved', 0) end
redis.call('HINCRBY', KEYS[1], 'spent', ARGV[2])
return 1
"""
# KEYS[1]: the key's day; ARGV: spent (nano-USD), ttl (s). Seeds a missing day; returns 1 if it did
SEED = """
if redis.call('HSETNX', KEYS[1], 'spent', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'reserved', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


# KEYS[1]: the live replicas (a sorted set by last beat); ARGV: this replica, ttl (ms). Returns how many beat within
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return redis.call('ZCARD', KEYS[1])
"""


def nano(usd: float) -> int:
    return int(round(usd * NANO))


class RedisCounters:
    """The shared counters. Every call goes through `breaker` (StoreDown when Redis is down or slower than the
    timeout); `durable_spend(key, day)` gives the database's spend for seeding (StoreDown where it cannot)."""

    def __init__(self, url: str, timeout_s: float, breaker: Breaker,
                 durable_spend: Callable[[str, str], float] | None = None):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:
            self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                               retry=Retry(NoBackoff(), 0), health_check_interval=0)
        except ValueError as exc:
            raise ConfigError(f"[state] redis_url is not a Redis URL: {exc}",
                              hint="redis://[:password@]host:6379/0 or rediss:// for TLS") from None
        self.errors = (redis.ConnectionError, redis.TimeoutError, OSError)
        self.breaker, self.durable_spend = breaker, durable_spend
        self._rate, self._reserve = self.client.register_script(RATE), self.client.register_script(RESERVE)
        self._settle, self._seed = self.client.register_script(SETTLE), self.client.register_script(SEED)
        self._beat = self.client.register_script(HEARTBEAT)
        self._pending: list[tuple[str, str, int, int]] = []  # settlements Redis missed: applied when it is back
        self._lock = threading.Lock()

    def check(self) -> None:
        """At start: a wrong password or a bad database number is a ConfigError; unreachable leaves it down."""
        import redis

        try:
            self.client.ping()
        except (redis.AuthenticationError, redis.ResponseError) as exc:  # before ConnectionError: a subclass
            raise ConfigError(f"[state] redis_url: Redis refused the connection ({type(exc).__name__}: {exc})",
                              hint="check the password (redis://:password@host:port/db) and the database number"
                              ) from None
        except self.errors as exc:  # unreachable: start degraded, fail closed until Redis answers
            self.breaker.fail(f"{type(exc).__name__}: {exc}")

    def probe(self) -> None:
        """Ask Redis whether it is back (StoreDown: not yet, or not tried again so soon)."""
        self.breaker.call(self.client.ping, self.errors)

    def heartbeat(self, replica: str, ttl_s: float) -> int:
        """Say this replica is alive; how many replicas said so within `ttl_s` (StoreDown: Redis cannot say)."""
        return int(self.breaker.call(lambda: self._beat(keys=[f"{PREFIX}:replicas"], args=[replica, int(ttl_s * 1000)]),
                                     self.errors))

    def take(self, key: str, rate_per_minute: int) -> float:
        """0 if a request may go now, else the seconds until one may (StoreDown: Redis cannot say)."""
        interval = 60_000_000 / rate_per_minute
        wait = self.breaker.call(lambda: self._rate(keys=[f"{PREFIX}:rate:{key}"],
                                                    args=[interval, interval * (rate_per_minute - 1)]), self.errors)
        return int(wait) / 1_000_000

    def reserve(self, key: str, day: str, worst_usd: float, budget_usd: float) -> bool:
        """Reserve `worst_usd` of the key's day within its budget (StoreDown: Redis or the seed is unreachable)."""
        self._apply_pending()
        args = [nano(worst_usd), nano(budget_usd)]
        got = self.breaker.call(lambda: self._reserve(keys=[self._day(key, day)], args=args), self.errors)
        if int(got) == -1:
            self._seed_day(key, day)
            got = self.breaker.call(lambda: self._reserve(keys=[self._day(key, day)], args=args), self.errors)
        return int(got) == 1

    def settle(self, key: str, day: str, reserved_usd: float, cost_usd: float) -> None:
        """Release a reservation and book the cost; kept for later when Redis cannot take it now (meanwhile the
        reservation stays counted: the budget errs on the safe side)."""
        item = (key, day, nano(reserved_usd), nano(cost_usd))
        try:
            self._settle_one(item)
        except Exception:  # noqa: BLE001 - StoreDown: kept, applied once Redis is back
            with self._lock:
                self._pending.append(item)

    def _settle_one(self, item: tuple[str, str, int, int]) -> None:
        key, day, reserved, cost = item
        got = self.breaker.call(lambda: self._settle(keys=[self._day(key, day)], args=[reserved, cost]), self.errors)
        if int(got) == -1:
            self._seed_day(key, day)
            self.breaker.call(lambda: self._settle(keys=[self._day(key, day)], args=[reserved, cost]), self.errors)

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for i, item in enumerate(pending):
            try:
                self._settle_one(item)
            except Exception:  # noqa: BLE001 - still down: keep the rest for later
                with self._lock:
                    self._pending = pending[i:] + self._pending
                raise

    def _seed_day(self, key: str, day: str) -> None:
        spent = self.durable_spend(key, day) if self.durable_spend is not None else 0.0
        self.breaker.call(lambda: self._seed(keys=[self._day(key, day)], args=[nano(spent), DAY_TTL_S]), self.errors)

    def state(self, key: str, day: str) -> dict[str, Any]:
        raw = self.breaker.call(lambda: self.client.hgetall(self._day(key, day)), self.errors)
        return {"spent_usd": int(raw.get(b"spent", 0)) / NANO, "reserved_usd": int(raw.get(b"reserved", 0)) / NANO}

    @property
    def pending(self) -> int:
        return len(self._pending)

    @staticmethod
    def _day(key: str, day: str) -> str:
        return f"{PREFIX}:budget:{key}:{day}"

    def close(self) -> None:
        self.client.close()
