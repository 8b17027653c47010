"""The service's routing path against `openfirst eval` on the same labeled data (RouteLLM GSM8K slice):
the logged decisions, joined with the outcome labels, give the same frontier share and routed accuracy."""

import json

import httpx
import pytest

from openfirst.cli import main
from openfirst.router.records import read_log
from tests.helpers import down_local, live_service, make_config

pytestmark = pytest.mark.slow


def test_replay_matches_openfirst_eval(tmp_path, frontier, router_dir, gsm8k_slice, capsys):
    log = read_log(gsm8k_slice)
    cfg = make_config(tmp_path, local=down_local(), frontier=frontier, router={"artifact": str(router_dir)})
    with live_service(cfg) as (url, service):
        for start in range(0, len(log), 64):
            batch = [{"input": q, "id": i} for q, i in zip(log.queries[start:start + 64], log.ids[start:start + 64])]
            assert httpx.post(f"{url}/v1/route", json={"inputs": batch}, timeout=120).status_code == 200
    assert frontier.calls == 0  # routing only: nothing generated
    capsys.readouterr()
    assert main(["eval", "--decisions", str(tmp_path / "decisions.jsonl"), str(gsm8k_slice), "--json"]) == 0
    served = json.loads(capsys.readouterr().out)
    assert main(["eval", "--router", str(router_dir), str(gsm8k_slice), "--json", "--no-progress"]) == 0
    direct = json.loads(capsys.readouterr().out)["operating_point"]
    assert served["decisions"] == served["labeled"] == len(log)
    assert served["frontier_share"] == pytest.approx(direct["frontier_share"], abs=1.5 / len(log))
    assert served["accuracy"] == pytest.approx(direct["expected_accuracy"], abs=1.5 / len(log))


def test_operating_point_from_a_frontier_share_on_calibration_queries(tmp_path, frontier, router_dir, gsm8k_slice):
    log = read_log(gsm8k_slice)
    router = {"artifact": str(router_dir), "frontier_share": 0.25, "calibration": str(gsm8k_slice)}
    with live_service(make_config(tmp_path, local=down_local(), frontier=frontier, router=router)) as (url, service):
        assert service.expected_share == 0.25
        decisions = []
        for start in range(0, len(log), 64):
            body = {"inputs": log.queries[start:start + 64]}
            decisions += httpx.post(f"{url}/v1/route", json=body, timeout=120).json()["decisions"]
    share = sum(d["target"] == "frontier" for d in decisions) / len(log)
    assert share == pytest.approx(0.25, abs=1.5 / len(log))  # the calibration queries themselves
