"""The shared row reader: JSONL, CSV, TSV, gzip; bad lines reported with their line numbers."""

import gzip

import pytest

from openfirst.core.errors import ConfigError
from openfirst.core.rows import iter_raw_rows


def test_jsonl_with_bad_lines(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"a": 1}\n\nnot json\n[1, 2]\n{"b": "x"}\n')
    rows = list(iter_raw_rows(p))
    assert [(n, r) for n, r, e in rows if e is None] == [(1, {"a": 1}), (5, {"b": "x"})]
    assert [n for n, r, e in rows if e] == [3, 4] and "malformed JSON" in rows[1][2]


def test_csv_tsv_and_gzip(tmp_path):
    (tmp_path / "a.csv").write_text("q,s\nhello,1\nragged\n")
    rows = list(iter_raw_rows(tmp_path / "a.csv"))
    assert rows[0] == (2, {"q": "hello", "s": "1"}, None) and rows[1][2] == "fewer fields than the header"
    with gzip.open(tmp_path / "b.tsv.gz", "wt") as fh:
        fh.write("q\ts\nhi\t0\n")
    assert list(iter_raw_rows(tmp_path / "b.tsv.gz")) == [(2, {"q": "hi", "s": "0"}, None)]


def test_unknown_format(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ConfigError, match="unknown log format"):
        list(iter_raw_rows(tmp_path / "a.txt"))


def test_a_csv_saved_by_excel_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    """Reported: a UTF-8-with-BOM CSV failed with 'missing query column' on every line."""
    path = tmp_path / "log.csv"
    path.write_bytes("query,local_score\nwhat is 2+2,1\n".encode("utf-8-sig"))
    rows = [row for _, row, _ in iter_raw_rows(path)]
    assert rows == [{"query": "what is 2+2", "local_score": "1"}]
    jsonl = tmp_path / "log.jsonl"
    jsonl.write_bytes('{"query": "x"}\n'.encode("utf-8-sig"))
    assert [row for _, row, _ in iter_raw_rows(jsonl)] == [{"query": "x"}]
