"""The decision log's writer and reader: privacy of pinned text, keyed hashes, rotation, line-numbered errors."""

import json

import pytest

from openfirst.service.decision_log import DecisionLog, read_decisions
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


def test_bad_decision_log_names_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(decision(1, "local", 0)) + "\n{not json\n" + json.dumps({"id": "x"}) + "\n")
    with pytest.raises(LogFormatError, match=r"d.jsonl:2: malformed JSON[\s\S]*d.jsonl:3: a decision needs"):
        read_decisions(path)


