import json

import numpy as np
import pytest

from openfirst.core.errors import ConfigError, LogFormatError
from openfirst.router.records import ColumnMap, log_from_rows, parse_score, read_log


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_jsonl_good_lines(tmp_path):
    p = write(tmp_path, "log.jsonl", "\n".join([
        json.dumps({"query": "a", "local_score": True, "frontier_score": 1, "local_cost": 0.001, "id": "x"}),
        "",
        json.dumps({"query": "b", "local_score": 0.25, "group": "g1"}),
    ]) + "\n")
    log = read_log(p)
    assert log.queries == ["a", "b"]
    assert log.local_score.tolist() == [1.0, 0.25]
    assert log.frontier_score[0] == 1.0 and np.isnan(log.frontier_score[1])
    assert log.ids[0] == "x" and log.ids[1] == "log.jsonl:3"
    assert not log.has_frontier


def test_csv_with_mapped_columns(tmp_path):
    p = write(tmp_path, "log.csv", "prompt,mixtral,gpt4\nhello,False,True\n\"multi\nline\",true,false\n")
    log = read_log(p, ColumnMap(query="prompt", local_score="mixtral", frontier_score="gpt4"))
    assert log.queries == ["hello", "multi\nline"]
    assert log.local_score.tolist() == [0.0, 1.0]
    assert log.frontier_score.tolist() == [1.0, 0.0]


def test_bad_lines_are_reported_with_file_and_line(tmp_path):
    p = write(tmp_path, "bad.jsonl", "\n".join([
        json.dumps({"query": "ok", "local_score": 1}),
        "{not json",
        json.dumps({"query": "no score"}),
        json.dumps({"query": "range", "local_score": 1.5}),
        json.dumps({"query": "   ", "local_score": 0}),
        json.dumps({"query": "cost", "local_score": 0, "frontier_cost": -1}),
        json.dumps([1, 2]),
    ]) + "\n")
    with pytest.raises(LogFormatError) as err:
        read_log(p)
    lines = {n: why for _, n, why in err.value.problems}
    assert sorted(lines) == [2, 3, 4, 5, 6, 7]
    assert "malformed JSON" in lines[2]
    assert "missing local_score" in lines[3]
    assert "[0, 1]" in lines[4]
    assert "empty query" in lines[5]
    assert "frontier_cost" in lines[6]
    assert f"{p}:2" in str(err.value)


def test_skip_bad_lines_reports_count(tmp_path):
    p = write(tmp_path, "bad.jsonl", '{"query": "a", "local_score": 1}\n{oops\n{"query": "b", "local_score": 0}\n')
    log = read_log(p, skip_bad_lines=True)
    assert len(log) == 2 and log.skipped == 1 and log.problems[0][1] == 2


def test_csv_ragged_rows(tmp_path):
    p = write(tmp_path, "r.csv", "query,local_score\na,1\nb,0,extra\nc\n")
    with pytest.raises(LogFormatError) as err:
        read_log(p)
    assert [n for _, n, _ in err.value.problems] == [3, 4]


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(ConfigError):
        read_log(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match="unknown log format"):
        read_log(write(tmp_path, "x.parquet", ""))


def test_frontier_optional_unless_required(tmp_path):
    p = write(tmp_path, "l.jsonl", '{"query": "a", "local_score": 1}\n')
    with pytest.raises(LogFormatError, match="frontier_score"):
        read_log(p, require_frontier=True)


@pytest.mark.parametrize("value,expected", [(True, 1.0), ("false", 0.0), ("0.5", 0.5), (0, 0.0), ("TRUE", 1.0)])
def test_parse_score(value, expected):
    assert parse_score(value, "s") == expected


@pytest.mark.parametrize("value", [-0.1, "2", "maybe", None, [1]])
def test_parse_score_rejects(value):
    with pytest.raises(ValueError):
        parse_score(value, "s")


def test_identical_queries_and_groups_share_a_fold_group():
    log = log_from_rows([
        {"query": "same", "local_score": 1, "group": "a"},
        {"query": "same", "local_score": 0, "group": "b"},
        {"query": "other", "local_score": 1, "group": "b"},
        {"query": "lonely", "local_score": 0},
    ])
    g = log.fold_groups()
    assert g[0] == g[1] == g[2]
    assert g[3] != g[0]
