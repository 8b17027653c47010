"""Decision logs: writing, joining with labels added later, drift, and `openfirst eval --decisions`."""

import json

import pytest

from openfirst.cli import main
from openfirst.service.decision_log import DecisionLog, evaluate_decisions, joined_outcome_rows, labels_by_id, read_decisions
from openfirst.core.errors import LogFormatError


def decision(i, target, score, decided_by="router", query=None):
    return {"id": f"q{i}", "query": query or f"question {i}", "target": target, "decided_by": decided_by,
            "score": score, "threshold": 0.0, "p_success": 0.5, "expected_frontier_share": 0.5, "cost_usd": 0.001}


def test_write_read_and_keyed_hash_only_mode(tmp_path):
    """Without text, a query used to be kept as an unkeyed SHA-256 (short queries can be brute-forced from it)."""
    import hashlib
    import hmac

    log = DecisionLog(tmp_path / "d.jsonl", store_text=False, hash_key="k-secret")
    log.write_many([decision(1, "local", -1.0, query="yes"), decision(2, "frontier", 1.0)])
    log.close()
    rows = read_decisions(tmp_path / "d.jsonl")
    assert [r["id"] for r in rows] == ["q1", "q2"]
    assert rows[0]["query"] is None and rows[0]["query_sha256"] is None
    assert rows[0]["query_hmac"] == hmac.new(b"k-secret", b"yes", hashlib.sha256).hexdigest()
    assert hashlib.sha256(b"yes").hexdigest() not in (tmp_path / "d.jsonl").read_text()
    unkeyed = DecisionLog(tmp_path / "u.jsonl", store_text=False)
    unkeyed.write_many([decision(1, "local", -1.0, query="yes")])
    unkeyed.close()
    assert read_decisions(tmp_path / "u.jsonl")[0]["query_hmac"] is None  # no key: no hash at all


def test_private_by_default_mode_pinned_text_size_cap_and_rotation(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("")
    path.chmod(0o644)  # a file made earlier with a wider mode is narrowed
    log = DecisionLog(path, max_query_chars=20, max_bytes=10_000, backups=2)
    pinned = dict(decision(0, "local", None, decided_by="privacy", query="mail jane@example.com"),
                  pin_reasons=["email"])
    log.write_many([pinned, decision(1, "local", -1.0, query="x" * 500)])
    assert path.stat().st_mode & 0o777 == 0o600
    rows = read_decisions(path)
    assert rows[0]["query"] is None and "jane" not in path.read_text()  # pinned text never written
    assert rows[1]["query"] == "x" * 20 and rows[1]["query_truncated"] is True
    for i in range(2, 300):
        log.write_many([decision(i, "local", -1.0)])
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["d.jsonl", "d.jsonl.1", "d.jsonl.2"] and all(p.stat().st_size <= 10_000 for p in tmp_path.iterdir())
    ids = [r["id"] for r in read_decisions(path)]  # the rotated files too, oldest first
    assert ids == sorted(ids, key=lambda x: int(x[1:])) and ids[-1] == "q299"


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


def test_bad_decision_log_names_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(decision(1, "local", 0)) + "\n{not json\n" + json.dumps({"id": "x"}) + "\n")
    with pytest.raises(LogFormatError, match=r"d.jsonl:2: malformed JSON[\s\S]*d.jsonl:3: a decision needs"):
        read_decisions(path)


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
