"""Offline evaluation of decision logs: joining with labels added later, drift, `openfirst eval --decisions`."""

import json

import pytest

from openfirst.cli import main
from openfirst.service.decision_eval import evaluate_decisions, joined_outcome_rows, labels_by_id
from openfirst.service.decision_log import DecisionLog


def decision(i, target, score, decided_by="router", query=None):
    return {"id": f"q{i}", "query": query or f"question {i}", "target": target, "decided_by": decided_by,
            "score": score, "threshold": 0.0, "p_success": 0.5, "expected_frontier_share": 0.5, "cost_usd": 0.001}


def test_join_accuracy_share_and_drift():
    decisions = [decision(0, "local", -1), decision(1, "frontier", 1), decision(2, "local", -1),
                 decision(3, "local", 1, decided_by="privacy")]  # the router wanted frontier; privacy pinned it
    labels = labels_by_id([{"id": "q0", "local_score": 1, "frontier_score": 1},
                           {"id": "q1", "local_score": 0, "frontier_score": 1},
                           {"id": "q2", "score": 0},  # outcome of the model that answered (local)
                           {"id": "unknown", "score": 1}])
    r = evaluate_decisions(decisions, labels, target_share=0.5, tolerance=0.1)
    assert r["labeled"] == 3 and r["accuracy"] == pytest.approx(2 / 3)
    assert r["frontier_share"] == 0.25 and r["routed_frontier_share"] == 0.5
    assert r["drift"]["warning"] is None
    r = evaluate_decisions(decisions, labels, target_share=0.1, tolerance=0.1)
    assert "above the target" in r["drift"]["warning"]
    rows = joined_outcome_rows(decisions, labels)
    assert [x["id"] for x in rows] == ["q0", "q1", "q2"] and rows[1] == {
        "id": "q1", "query": "question 1", "local_score": 0.0, "frontier_score": 1.0}


def test_eval_cli_joins_labels_and_writes_training_log(tmp_path, capsys):
    dpath, lpath, out = tmp_path / "d.jsonl", tmp_path / "labels.csv", tmp_path / "joined.jsonl"
    log = DecisionLog(dpath)
    log.write_many([decision(i, "frontier" if i % 2 else "local", 1 if i % 2 else -1) for i in range(10)])
    log.close()
    lpath.write_text("id,local_score,frontier_score\n" + "".join(f"q{i},{i % 3 == 0:d},1\n" for i in range(10)))
    assert main(["eval", "--decisions", str(dpath), str(lpath), "--json", "--joined-out", str(out),
                 "--target-frontier-share", "0.1"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["labeled"] == 10 and report["routed_frontier_share"] == 0.5
    assert "warning" in captured.err and report["drift"]["warning"]
    assert len(out.read_text().splitlines()) == 10
    assert main(["eval"]) == 2


def test_many_model_decisions_join_per_model_labels_into_a_many_model_log():
    from openfirst.router.multi_log import multi_log_from_rows

    preds = {m: {"p_success": 0.5, "cost_usd": c} for m, c in (("local", 0.0), ("mid", 0.01), ("big", 0.1))}
    decisions = [{**decision(i, target, None), "predictions": preds} for i, target in enumerate(["mid", "local", "big"])]
    labels = labels_by_id([{"id": "q0", "score": 1},  # the answering model's outcome (mid)
                           {"id": "q1", "scores": {"local": 0, "mid": 1, "big": 1}}])  # every model replayed
    assert labels["q1"] == {"local_score": 0.0, "mid_score": 1.0, "big_score": 1.0}
    with pytest.raises(Exception, match="not a number"):
        labels_by_id([{"id": "q2", "scores": {"big": "x"}}])
    rows = joined_outcome_rows(decisions, labels)
    assert rows == [{"id": "q0", "query": "question 0", "scores": {"mid": 1.0}, "costs": {"mid": 0.001}},
                    {"id": "q1", "query": "question 1", "scores": {"big": 1.0, "local": 0.0, "mid": 1.0},
                     "costs": {"local": 0.001, "mid": 0.01, "big": 0.1}}]  # the logged cost of the answering model
    log = multi_log_from_rows(rows)
    assert log.models == ["big", "local", "mid"] and len(log.complete()) == 1
    r = evaluate_decisions(decisions, labels)
    assert r["by_model"]["mid"] == {"share": pytest.approx(1 / 3), "accuracy": 1.0}
    assert set(r["by_model"]) == {"local", "mid", "big"}
