"""`SharedState`: what replicas share, assembled from `[state]`, and the per-key objects the service uses in place
of its in-process ones: a rate limiter and a budget ledger backed by Redis, and a decision sink backed by the
database through the local spool. Each fails closed:

- Redis down or slow: a rate limit falls back to a conservative local one (1 / the replicas Redis last counted
  alive, or `fallback_rate_fraction`, of the key's rate per replica); a frontier reservation is refused as
  unknown (`reserve` returns None: the request stays local, `decided_by: budget`, or a 503 for keys that must not
  fall back); settlements wait in memory for Redis.
- The database down: decisions and spend wait in the spool on local disk and are written when it is back, each
  exactly once; a day that Redis must seed from the database is refused until the database answers.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from openfirst.state.breaker import Breaker, StoreDown
from openfirst.state.settings import StateSettings

log = logging.getLogger("openfirst.state")


HEARTBEAT_S, HEARTBEAT_TTL_S = 2.0, 10.0  # a replica counts as alive for 10 s after its last beat
DEFAULT_REPLICAS = 4  # the fallback's divisor before Redis has counted the replicas once


def utc_day() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


class SharedState:
    def __init__(self, settings: StateSettings):
        s = settings.resolved()
        self.settings = s
        self.replica = s.replica or f"{socket.gethostname()}-{os.getpid()}"
        self.redis_breaker = Breaker("redis", s.retry_after_s)
        self.db_breaker = Breaker("database", s.retry_after_s)
        self.db = self.spool = self.counters = None
        if s.database_url is not None:
            from openfirst.core.paths import cache_dir
            from openfirst.state.database import Database
            from openfirst.state.spool import Spool

            self.db = Database(s.database_url.get_secret_value(), self.db_breaker)
            self.spool = Spool.for_replica(Path(s.spool_dir or cache_dir("spool")), self.replica)
        if s.redis_url is not None:
            from openfirst.state.redis_counters import RedisCounters

            self.counters = RedisCounters(s.redis_url.get_secret_value(), s.timeout_s, self.redis_breaker,
                                          self.durable_spend if self.db is not None else None)
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._beater: threading.Thread | None = None
        self.live_replicas: int | None = None  # as Redis last counted them (heartbeats)

    def start(self) -> None:
        """Check the stores (configuration errors raise; unreachable ones start down) and start the flusher."""
        if self.counters is not None:
            self.counters.check()
            self._beat()
            self._beater = threading.Thread(target=self._beat_loop, name="openfirst-heartbeat", daemon=True)
            self._beater.start()
        if self.db is not None:
            self.db.check()
            self._flusher = threading.Thread(target=self._flush_loop, name="openfirst-spool", daemon=True)
            self._flusher.start()

    # -- replicas alive --------------------------------------------------------------------------
    def _beat(self) -> None:
        try:
            self.live_replicas = self.counters.heartbeat(self.replica, HEARTBEAT_TTL_S)
        except StoreDown:
            pass  # keep the last count: the fallback rate limits need it while Redis is down

    def _beat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self._beat()

    def fallback_fraction(self) -> float:
        """The share of a key's rate limit one replica grants while Redis is down."""
        if self.settings.fallback_rate_fraction is not None:
            return self.settings.fallback_rate_fraction
        return 1.0 / (self.live_replicas or DEFAULT_REPLICAS)

    # -- per key ---------------------------------------------------------------------------------
    def limiter(self, name: str, rate_per_minute: int, local: Any) -> Any:
        if self.counters is None:
            return local
        return SharedRateLimiter(name, rate_per_minute, self.counters, self.fallback_fraction)

    def ledger(self, name: str, budget: float | None, local: Any) -> Any:
        if self.counters is None and self.db is None:
            return local
        return SharedLedger(self, name, budget, local)

    # -- durable spend and decisions -------------------------------------------------------------
    def durable_spend(self, key: str, day: str) -> float:
        """The key's spend on `day` in the database, plus this replica's not yet written (StoreDown: unknown)."""
        assert self.db is not None
        spent = self.db.spend(key, day)
        rows, _ = self.spool.read(max_rows=10**9)
        return spent + sum(r["usd"] for t, r in rows if t == "spend" and r["key"] == key and r["day"] == day)

    def record_spend(self, key: str, day: str, usd: float) -> None:
        if self.spool is not None and usd > 0:
            self.spool.append([("spend", {"settlement_id": uuid.uuid4().hex, "key": key, "day": day, "usd": usd,
                                          "time": dt.datetime.now(dt.timezone.utc).isoformat(),
                                          "replica": self.replica})])

    def write_decisions(self, records: list[dict[str, Any]]) -> None:
        from openfirst.state.database import decision_row

        self.spool.append([("decisions", decision_row(r, uuid.uuid4().hex, self.replica)) for r in records])

    def flush(self) -> bool:
        """Send what waits in the spools (this replica's, and those of replicas that died); True when all went."""
        done = self._flush_one(self.spool)
        for orphan in self.spool.orphans():
            try:
                if self._flush_one(orphan):
                    log.info("sent the decisions a stopped replica left in %s", orphan.path)
                    orphan.remove()
            finally:
                orphan.close()
        return done

    def _flush_one(self, spool: Any) -> bool:
        while True:
            rows, end = spool.read()
            if not rows and end == spool.offset:
                return True
            try:
                self.db.insert(rows)
            except StoreDown:
                return False
            spool.commit(end)

    def _flush_loop(self) -> None:
        last_orphans = 0.0
        while not self._stop.wait(self.settings.flush_interval_s):
            try:
                if time.monotonic() - last_orphans > 10:
                    last_orphans = time.monotonic()
                    self.flush()
                else:
                    self._flush_one(self.spool)
            except Exception:  # noqa: BLE001 - the loop must outlive any one failure; rows stay in the spool
                log.exception("writing the spool to the database failed; retrying")

    # -- health ----------------------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        return (self.counters is not None and not self.redis_breaker.up) or (self.db is not None and
                                                                              not self.db_breaker.up)

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"replica": self.replica, "live_replicas": self.live_replicas,
                               "rate_limits": "redis" if self.counters else "local",
                               "budgets": "redis" if self.counters else "local",
                               "decisions": "database" if self.db else "file"}
        if self.counters is not None:
            if not self.redis_breaker.up:
                try:
                    self.counters.probe()  # down until a call says otherwise: ask, so health does not lag
                except StoreDown:
                    pass
            out["redis"] = {**self.redis_breaker.state(), "pending_settlements": self.counters.pending}
        if self.db is not None:
            out["database"] = {**self.db_breaker.state(), "spooled_bytes": self.spool.backlog()}
        return out

    def close(self) -> None:
        self._stop.set()
        if self._beater is not None:
            self._beater.join(timeout=5)
        if self._flusher is not None:
            self._flusher.join(timeout=5)
            try:
                self._flush_one(self.spool)  # a last try; what does not go waits on disk for the next start
            except Exception:  # noqa: BLE001
                pass
        if self.counters is not None:
            self.counters.close()
        if self.db is not None:
            self.db.close()
            self.spool.close()


class SharedRateLimiter:
    """A key's rate limit in Redis; with Redis down, a local bucket of `fraction()` of the rate (sized when Redis
    goes down, from the replicas alive then)."""

    def __init__(self, name: str, rate_per_minute: int, counters: Any, fraction: Callable[[], float]):
        self.name, self.rate, self.counters, self.fraction = name, rate_per_minute, counters, fraction
        self.fallback: Any = None

    def take(self) -> float:
        try:
            wait = self.counters.take(self.name, self.rate)
            self.fallback = None
            return wait
        except StoreDown:
            if self.fallback is None:
                from openfirst.service.auth import RateLimiter

                self.fallback = RateLimiter(max(1, int(self.rate * self.fraction())))
            return self.fallback.take()


class SharedLedger:
    """A key's frontier budget across replicas: reservations in Redis (or the local ledger without Redis), every
    settled cost also in the database (its durable spend)."""

    def __init__(self, state: SharedState, name: str, budget: float | None, local: Any):
        self.shared, self.name, self.budget, self.local = state, name, budget, local
        if state.counters is None and state.db is not None and budget is not None:
            try:  # one process with a database: today's durable spend counts against the budget from the start
                local.spent = state.durable_spend(name, utc_day())
            except StoreDown:
                log.warning("key %s: the database is down; today's earlier spend is not counted yet", name)

    def reserve(self, worst_case_usd: float) -> bool | None:
        """True: reserved; False: over the budget; None: the budget store cannot say (fail closed)."""
        if self.shared.counters is None:
            return self.local.reserve(worst_case_usd)
        try:
            return self.shared.counters.reserve(self.name, utc_day(), worst_case_usd, self.budget)
        except StoreDown:
            return None

    def settle(self, reserved_usd: float, cost_usd: float | None) -> None:
        cost = reserved_usd if cost_usd is None else cost_usd
        day = utc_day()
        if self.shared.counters is None:
            self.local.settle(reserved_usd, cost_usd)
        else:
            self.shared.counters.settle(self.name, day, reserved_usd, cost)
        self.shared.record_spend(self.name, day, cost)

    def state(self) -> dict[str, Any]:
        if self.shared.counters is None:
            return self.local.state()
        try:
            return {"day": utc_day(), **self.shared.counters.state(self.name, utc_day()), "budget_usd": self.budget}
        except StoreDown:
            return {"day": utc_day(), "budget_usd": self.budget, "store": "down"}
