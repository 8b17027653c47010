"""The service's Prometheus metrics: routed inputs, generations, cost, and the live drift monitor."""

from openfirst.service.metrics import ServiceMetrics


def test_routes_generations_and_cost_are_counted_and_rendered():
    m = ServiceMetrics()
    m.watch_drift(0.5, 0.1)
    assert m.route("extract", "frontier", "router", "frontier") is None
    m.route("extract", "local", "privacy", "frontier")  # the router's own choice still feeds the drift monitor
    m.generation("frontier", 0.2, {"prompt_tokens": 10, "completion_tokens": 4}, 0.003)
    text = m.render().decode()
    assert 'openfirst_routed_total{decided_by="privacy",endpoint="extract",target="local"} 1.0' in text
    assert 'openfirst_tokens_total{kind="prompt",target="frontier"} 10.0' in text
    assert 'openfirst_cost_usd_total{target="frontier"} 0.003' in text


def test_live_drift_monitor_warns_once_per_excursion():
    from openfirst.service.metrics import DriftMonitor

    m = DriftMonitor(target=0.3, tolerance=0.1, window=100, min_decisions=50)
    warnings = [m.add(i % 10 < 3) for i in range(100)]  # 30% frontier: on target
    assert not any(warnings) and m.share == 0.3
    warnings = [m.add(True) for _ in range(100)]  # everything to the frontier now
    assert sum(w is not None for w in warnings) == 1 and "drift" in next(w for w in warnings if w)
    assert m.warning and m.share == 1.0
    [m.add(i % 10 < 3) for i in range(100)]
    assert not m.warning
