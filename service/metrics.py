"""Prometheus metrics of one service instance (its own registry, served at GET /metrics)."""

from __future__ import annotations

from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from openfirst.service.decision_eval import drift_warning

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServiceMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("openfirst_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("openfirst_request_latency_seconds", "request latency by endpoint", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.routed = Counter("openfirst_routed", "inputs routed, by endpoint, target and who decided "
                              "(router, privacy, default, fallback)", ["endpoint", "target", "decided_by"],
                              registry=r)
        self.frontier_share = Gauge("openfirst_routed_frontier_share",
                                    "the router's frontier share over its last `window` decisions", registry=r)
        self.target_share = Gauge("openfirst_target_frontier_share", "the frontier share the router was tuned for",
                                  registry=r)
        self.drifting = Gauge("openfirst_drift_warning", "1 while the router's recent frontier share is further "
                              "from the target than the tolerance", registry=r)
        self.errors = Counter("openfirst_errors", "errors by endpoint and type", ["endpoint", "type"], registry=r)
        self.backend_latency = Histogram("openfirst_backend_latency_seconds", "generation latency by target",
                                         ["target"], buckets=LATENCY_BUCKETS, registry=r)
        self.cost = Counter("openfirst_cost_usd", "USD spent, by target (where a price is configured)", ["target"],
                            registry=r)
        self.tokens = Counter("openfirst_tokens", "tokens by target and kind", ["target", "kind"], registry=r)
        self.in_flight = Gauge("openfirst_in_flight_requests", "requests being handled", registry=r)
        self.store = Gauge("openfirst_state_store", "1 for the store each kind of state is kept in (rate_limits, "
                           "budgets: redis or local; decisions: database or file)", ["state", "store"], registry=r)
        self.store_up = Gauge("openfirst_state_store_up", "1 while a shared store answers, 0 while it is down "
                              "(requests take the fail-closed path)", ["store"], registry=r)
        self.spooled = Gauge("openfirst_state_spooled_bytes", "decisions and spend waiting on local disk for the "
                             "database", registry=r)
        self.drift: DriftMonitor | None = None

    def watch_drift(self, target: float | None, tolerance: float, window: int = 1000) -> None:
        if target is not None:
            self.drift = DriftMonitor(target, tolerance, window)
            self.target_share.set(target)

    def route(self, endpoint: str, target: str, decided_by: str, router_chose: str | None = None) -> str | None:
        """Count one routed input; `router_chose`: the router's own choice where it decided (privacy or
        configuration may have overridden it). Returns a drift warning when the share newly leaves the band."""
        self.routed.labels(endpoint, target, decided_by).inc()
        if router_chose is None or self.drift is None:
            return None
        warning = self.drift.add(router_chose == "frontier")
        self.frontier_share.set(self.drift.share)
        self.drifting.set(1 if self.drift.warning else 0)
        return warning

    def generation(self, target: str, latency_s: float, usage: dict[str, int], cost_usd: float | None) -> None:
        self.backend_latency.labels(target).observe(latency_s)
        for kind in ("prompt_tokens", "completion_tokens"):
            if usage.get(kind):
                self.tokens.labels(target, kind.split("_")[0]).inc(usage[kind])
        if cost_usd:
            self.cost.labels(target).inc(cost_usd)

    def watch_state(self, health: dict) -> None:
        """Which store each kind of state is in, whether the shared ones answer, what waits on disk."""
        for kind in ("rate_limits", "budgets", "decisions"):
            self.store.labels(kind, health[kind]).set(1)
        for store in ("redis", "database"):
            if store in health:
                self.store_up.labels(store).set(1 if health[store]["up"] else 0)
        if "database" in health:
            self.spooled.set(health["database"]["spooled_bytes"])

    def render(self) -> bytes:
        return generate_latest(self.registry)


class DriftMonitor:
    """The router's frontier choices over the last `window` decisions against the target share; warns (once per
    excursion) when they differ by more than `tolerance`, after at least `min_decisions`."""

    def __init__(self, target: float, tolerance: float, window: int = 1000, min_decisions: int = 200):
        self.target, self.tolerance, self.min_decisions = target, tolerance, min(min_decisions, window)
        self.recent: deque[bool] = deque(maxlen=window)
        self.warning = False

    @property
    def share(self) -> float:
        return sum(self.recent) / len(self.recent) if self.recent else 0.0

    def add(self, frontier: bool) -> str | None:
        self.recent.append(frontier)
        if len(self.recent) < self.min_decisions:
            return None
        warning = drift_warning(self.share, self.target, self.tolerance, f"last {len(self.recent)} decisions")
        newly = warning is not None and not self.warning
        self.warning = warning is not None
        return warning if newly else None
