"""Training examples: validation with file:line errors, --skip-bad-lines, de-duplication, the grouped held-out split,
SNIPS draws, and a decision log's frontier answers (pinned requests have none)."""

import json

import pytest

from openfirst.compiler.task import load_task
from openfirst.core.errors import LogFormatError
from openfirst.finetune.errors import FinetuneError
from openfirst.finetune.examples import merge, read_decisions, read_labelled, read_snips, split_held_out
from tests.helpers import ROOT

TASK = f"{ROOT}/datasets/tasks/support_ticket.py:SupportTicket"
GOOD = {"category": "billing", "priority": 2, "summary": "Refund the double charge."}


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_bad_lines_are_named_by_file_and_line_and_can_be_skipped(tmp_path):
    task = load_task(TASK)
    path = _jsonl(tmp_path / "data.jsonl", [
        {"input": "I was charged twice", "output": GOOD},
        {"input": "", "output": GOOD},
        "{not json",
        {"input": "x", "output": {**GOOD, "category": "astrology"}},
        {"input": "y", "output": ["not", "an", "object"]}])
    with pytest.raises(LogFormatError) as err:
        read_labelled(path, task)
    msg = str(err.value)
    assert "4 bad line(s)" in msg and f"{path}:2: `input` must be a non-empty string" in msg
    assert f"{path}:3:" in msg and f"{path}:4: output does not fit task SupportTicket" in msg and "astrology" in msg
    assert "--skip-bad-lines" in msg
    ts = read_labelled(path, task, skip_bad_lines=True)
    assert [ex.input for ex in ts.examples] == ["I was charged twice"] and ts.dropped == {"bad_lines": 4}


def test_outputs_are_normalised_and_duplicates_removed(tmp_path):
    task = load_task(TASK)
    reordered = {"summary": GOOD["summary"], "priority": 2, "category": "billing"}
    path = _jsonl(tmp_path / "d.jsonl", [{"input": "a", "output": GOOD}, {"input": "a", "output": reordered},
                                         {"input": "b", "output": GOOD, "id": "b1", "group": "g"}])
    ts = read_labelled(path, task)
    assert len(ts.examples) == 2 and ts.dropped == {"duplicates": 1}
    assert list(ts.examples[0].output) == ["category", "priority", "summary"]  # the schema's order
    assert ts.examples[1].id == "b1" and ts.examples[1].group == "g"
    with pytest.raises(FinetuneError, match="does not exist"):
        read_labelled(tmp_path / "missing.jsonl", task)


def test_the_held_out_split_keeps_groups_whole_and_is_seeded(tmp_path):
    task = load_task(TASK)
    rows = [{"input": f"text {i}", "output": GOOD, "group": f"g{i // 3}"} for i in range(30)]
    ts = read_labelled(_jsonl(tmp_path / "d.jsonl", rows), task)
    train, held = split_held_out(ts.examples, 0.2, seed=1)
    assert len(train) + len(held) == 30 and 3 <= len(held) <= 9
    assert not {e.group for e in train} & {e.group for e in held}
    assert split_held_out(ts.examples, 0.2, seed=1) == (train, held)
    assert split_held_out(ts.examples, 0.0, seed=1) == (ts.examples, [])


def test_snips_draws_one_task_per_intent(data_dir):
    ts = read_snips("snips", 5, data_dir)
    assert len(ts.tasks) == 7 and len(ts.examples) == 35
    one = read_snips("snips:GetWeather", 3, data_dir)
    assert list(one.tasks) == ["GetWeather"] and len(one.examples) == 3
    assert all(set(ex.output) <= set(one.tasks["GetWeather"].json_schema["properties"]) for ex in one.examples)
    with pytest.raises(FinetuneError, match="unknown SNIPS intent"):
        read_snips("snips:Nope", 3, data_dir)


def test_a_decision_log_gives_only_the_frontiers_validated_answers(tmp_path):
    task = load_task(TASK)
    base = {"endpoint": "extract", "task": "support_ticket", "ok": True, "decided_by": "router"}
    log = _jsonl(tmp_path / "decisions.jsonl", [
        {**base, "id": "1", "target": "frontier", "query": "parcel lost", "output": GOOD},
        {**base, "id": "2", "target": "local", "query": "local answer", "output": GOOD},
        {**base, "id": "3", "target": "local", "decided_by": "privacy", "query": None, "output": None},
        {**base, "id": "4", "target": "frontier", "query": None, "query_hmac": "ab", "output": None},
        {**base, "id": "5", "target": "frontier", "query": "failed", "ok": False, "output": None},
        {**base, "id": "6", "target": "frontier", "query": "other", "task": "invoice", "output": {"x": 1}},
        {**base, "id": "7", "target": "frontier", "decided_by": "cascade", "query": "escalated", "output": GOOD}])
    ts = read_decisions(log, task, service_task="support_ticket")
    assert [ex.input for ex in ts.examples] == ["parcel lost", "escalated"]
    assert ts.dropped == {"not_frontier": 2, "no_text_or_output": 1, "other_task": 1, "failed": 1}
    with pytest.raises(FinetuneError, match="--service-task"):
        read_decisions(log, task)  # the class name, SupportTicket, is not what the service logged
    both = merge([ts, ts])
    assert len(both.examples) == 2 and both.dropped["duplicates"] == 2
