"""Prometheus metrics of one service instance (its own registry, served at GET /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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
                                    "share of router-decided inputs sent to the frontier since start", registry=r)
        self.errors = Counter("openfirst_errors", "errors by endpoint and type", ["endpoint", "type"], registry=r)
        self.backend_latency = Histogram("openfirst_backend_latency_seconds", "generation latency by target",
                                         ["target"], buckets=LATENCY_BUCKETS, registry=r)
        self.cost = Counter("openfirst_cost_usd", "USD spent, by target (where a price is configured)", ["target"],
                            registry=r)
        self.tokens = Counter("openfirst_tokens", "tokens by target and kind", ["target", "kind"], registry=r)
        self.in_flight = Gauge("openfirst_in_flight_requests", "requests being handled", registry=r)
        self._decided = {"local": 0, "frontier": 0}

    def route(self, endpoint: str, target: str, decided_by: str) -> None:
        self.routed.labels(endpoint, target, decided_by).inc()
        if decided_by == "router":
            self._decided[target] += 1
            self.frontier_share.set(self._decided["frontier"] / sum(self._decided.values()))

    def generation(self, target: str, latency_s: float, usage: dict[str, int], cost_usd: float | None) -> None:
        self.backend_latency.labels(target).observe(latency_s)
        for kind in ("prompt_tokens", "completion_tokens"):
            if usage.get(kind):
                self.tokens.labels(target, kind.split("_")[0]).inc(usage[kind])
        if cost_usd:
            self.cost.labels(target).inc(cost_usd)

    def render(self) -> bytes:
        return generate_latest(self.registry)
