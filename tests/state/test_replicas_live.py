"""Real `openfirst serve` replicas sharing a real Redis and PostgreSQL (slow): the replica benchmark's phases at a
small size: one budget across replicas, one rate limit, and Redis then the database killed and restarted under
load with no 500s, no spend past the budget and every decision in the database exactly once."""

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def test_replicas_share_budget_rate_limit_and_decisions_through_store_failures(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "replicas.py"), "--replicas", "2",
                          "--requests", "200", "--rate", "300", "--rate-requests", "800", "--chaos-requests", "400", "--chaos-pace", "0.02",
                          "--latency-requests", "20", "--out-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    res = json.loads((tmp_path / "replicas.json").read_text())
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    b, r, c = res["budget"], res["rate_limit"], res["chaos"]
    assert b["frontier_spend_usd"] <= b["bound_usd"] and b["each_call_above_b_over_100"] and b["frontier_calls"] > 0
    assert abs(r["error"]) <= 0.05 and r["rate_limited"] > 0
    assert c["statuses"].get("500", 0) == 0 and c["frontier_spend_usd"] <= c["budget_usd"]
    assert c["spool_flushed"] and c["duplicates"] == 0 and c["missing"] == 0 and c["decisions_in_database"] == c["answered"] > 0
    assert [e["event"] for e in c["events"]] == ["kill redis", "kill database", "restart redis", "restart database"]
    assert (tmp_path / "replicas.md").is_file()
