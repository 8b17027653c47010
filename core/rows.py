"""The row reader both halves use: JSONL or CSV/TSV (optionally gzipped), one row at a time with its line number,
bad lines reported, never dropped silently."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any, Iterator

from openfirst.core.errors import ConfigError


def open_text(path: Path) -> io.TextIOBase:
    """UTF-8 text; a byte-order mark (what Excel writes) is skipped, not read into the first column's name."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def row_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    raise ConfigError(f"{path}: unknown log format", hint="use a .jsonl or .csv file (optionally .gz)")


def iter_raw_rows(path: Path, fmt: str | None = None) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Yield (line number, row or None, parse error or None) for JSONL or CSV (`fmt`: from the name if None)."""
    fmt = fmt or row_format(path)
    with open_text(path) as fh:
        if fmt == "jsonl":
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield lineno, None, f"malformed JSON: {exc.msg} at column {exc.colno}"
                    continue
                if not isinstance(row, dict):
                    yield lineno, None, f"expected a JSON object, got {type(row).__name__}"
                    continue
                yield lineno, row, None
        else:
            csv.field_size_limit(1 << 30)
            delimiter = "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ","
            reader = csv.DictReader(fh, delimiter=delimiter)
            for row in reader:
                lineno = reader.line_num
                if None in row:
                    yield lineno, None, "more fields than the header"
                    continue
                if any(v is None for v in row.values()):
                    yield lineno, None, "fewer fields than the header"
                    continue
                yield lineno, row, None
