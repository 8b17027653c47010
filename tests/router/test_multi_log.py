"""Many-model outcome logs: JSONL with `scores`/`costs` objects, CSV with a column per model, line-numbered errors,
models missing from records, two-model logs converted."""

import json

import numpy as np
import pytest

from openfirst.core.errors import ConfigError, LogFormatError
from openfirst.router.multi_log import MultiOutcomeLog, is_multi_model, read_multi_log
from openfirst.router.records import log_from_rows


def jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_jsonl_with_models_missing_from_some_records(tmp_path):
    p = jsonl(tmp_path / "m.jsonl", [
        {"id": "a", "query": "2+2?", "scores": {"small": True, "big": 1.0}, "costs": {"small": 0.001, "big": 0.02}},
        {"id": "b", "query": "prove it", "scores": {"small": 0, "big": 1, "mid": 0.5}, "group": "g1"}])
    log = read_multi_log(p)
    assert is_multi_model(p) and log.models == ["big", "mid", "small"] and len(log) == 2
    assert np.isnan(log.scores[0, 1]) and log.scores[1].tolist() == [1.0, 0.5, 0.0] and log.groups == ["a", "g1"]
    assert log.complete().ids == ["b"]
    filled = log.costs_or({"big": 0.03, "mid": 0.01, "small": 0.002})
    assert filled[0].tolist() == [0.02, 0.01, 0.001] and filled[1].tolist() == [0.03, 0.01, 0.002]
    with pytest.raises(ConfigError, match="mid"):
        log.costs_or({"big": 0.03, "small": 0.002})
    log.write_jsonl(tmp_path / "again.jsonl")
    again = read_multi_log(tmp_path / "again.jsonl")
    assert np.array_equal(np.nan_to_num(again.scores, nan=-1), np.nan_to_num(log.scores, nan=-1))


def test_every_bad_line_is_named_and_can_be_skipped(tmp_path):
    p = jsonl(tmp_path / "bad.jsonl", [
        {"query": "ok", "scores": {"a": 1, "b": 0}}, {"query": "", "scores": {"a": 1}},
        {"query": "x", "scores": {"a": 2}}, {"query": "y", "scores": []}, "{not json",
        {"query": "z", "scores": {"a": 1}, "costs": {"a": -1}}])
    with pytest.raises(LogFormatError) as exc:
        read_multi_log(p)
    assert [line for _, line, _ in exc.value.problems] == [2, 3, 4, 5, 6]
    assert "score of a must be in [0, 1]" in str(exc.value)
    assert len(read_multi_log(p, skip_bad_lines=True)) == 1
    with pytest.raises(LogFormatError, match="at least two"):
        read_multi_log(jsonl(tmp_path / "one.jsonl", [{"query": "q", "scores": {"a": 1}}]))


def test_csv_with_a_column_per_model_and_two_model_logs_convert(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("question,s_small,s_big,c_big\nwhat,1,0,0.5\nwhy,,1,0.4\n")
    log = read_multi_log(p, query_column="question", score_columns={"small": "s_small", "big": "s_big"},
                         cost_columns={"big": "c_big"})
    assert log.models == ["big", "small"] and np.isnan(log.scores[1, 1]) and log.costs[:, 0].tolist() == [0.5, 0.4]
    two = MultiOutcomeLog.from_two_models(log_from_rows([{"query": "q", "local_score": 1, "frontier_score": 0}]))
    assert two.models == ["local", "frontier"] and two.scores.tolist() == [[1.0, 0.0]]
