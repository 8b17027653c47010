"""Outcome logs: the canonical record, column mapping, and line-numbered validation.

One query per line of JSONL or CSV. Fields: `query` (text), `local_score` (bool or
number in [0, 1]), optional `frontier_score`, `local_cost`, `frontier_cost` (USD per
query), `group`, `id`. Bad lines are never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from openfirst.core.errors import ConfigError, LogFormatError
from openfirst.core.rows import iter_raw_rows

CANONICAL_FIELDS = ("query", "local_score", "frontier_score", "local_cost", "frontier_cost", "group", "id")


class ColumnMap(BaseModel):
    """Which source column feeds each canonical field (teams' logs use other names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query: str = "query"
    local_score: str = "local_score"
    frontier_score: str = "frontier_score"
    local_cost: str = "local_cost"
    frontier_cost: str = "frontier_cost"
    group: str = "group"
    id: str = "id"


@dataclass
class OutcomeLog:
    """Validated outcome records, column-wise. Missing optional numbers are NaN."""

    queries: list[str]
    local_score: np.ndarray
    frontier_score: np.ndarray
    local_cost: np.ndarray
    frontier_cost: np.ndarray
    groups: list[str]
    ids: list[str]
    source: str = "<memory>"
    skipped: int = 0
    problems: list[tuple[str, int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def has_frontier(self) -> bool:
        return bool(len(self)) and not np.isnan(self.frontier_score).any()

    def frontier_or_right(self) -> np.ndarray:
        """Frontier scores with missing ones taken as 1.0 (frontier right), as the reports assume."""
        return frontier_or_right(self.frontier_score)

    @property
    def has_local(self) -> bool:
        return bool(len(self)) and not np.isnan(self.local_score).any()

    def subset(self, index: Sequence[int] | np.ndarray) -> "OutcomeLog":
        idx = np.asarray(index, dtype=int)
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return OutcomeLog(
            pick(self.queries), self.local_score[idx], self.frontier_score[idx], self.local_cost[idx],
            self.frontier_cost[idx], pick(self.groups), pick(self.ids), self.source,
        )

    def fold_groups(self) -> np.ndarray:
        """Integer group per record such that identical queries and equal `group` values share one."""
        return fold_groups(self.queries, self.groups)

    def to_records(self) -> Iterator[dict[str, Any]]:
        for i, q in enumerate(self.queries):
            rec: dict[str, Any] = {"id": self.ids[i], "query": q, "local_score": float(self.local_score[i])}
            for name, arr in (("frontier_score", self.frontier_score), ("local_cost", self.local_cost),
                              ("frontier_cost", self.frontier_cost)):
                if not math.isnan(arr[i]):
                    rec[name] = float(arr[i])
            if self.groups[i] != self.ids[i]:
                rec["group"] = self.groups[i]
            yield rec

    def write_jsonl(self, path: Path | str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            for rec in self.to_records():
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


def fold_groups(queries: Sequence[str], groups: Sequence[str]) -> np.ndarray:
    """Integer group per record such that identical queries and equal `group` values share one (folds keep each
    group whole)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for q, g in zip(queries, groups):
        a, b = find("q:" + _digest(q)), find("g:" + g)
        if a != b:
            parent[a] = b
    roots = [find("q:" + _digest(q)) for q in queries]
    _, codes = np.unique(roots, return_inverse=True)
    return codes


def raise_bad_lines(problems: list[tuple[str, int, str]], source: str, hint: str) -> None:
    """LogFormatError listing every bad line (file:line: why), the first 20 shown."""
    shown = "\n".join(f"  {f}:{n}: {why}" for f, n, why in problems[:20])
    more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    raise LogFormatError(f"{len(problems)} bad line(s) in {source}:\n{shown}{more}", problems, hint=hint)


def frontier_or_right(frontier_score: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(frontier_score), 1.0, frontier_score)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def parse_score(value: Any, name: str) -> float:
    """bool / 'true' / 'false' / number in [0, 1] -> float; raises ValueError with a reason."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str):
        s = value.strip().lower()
        if s in ("true", "yes"):
            return 1.0
        if s in ("false", "no"):
            return 0.0
        if s == "":
            raise ValueError(f"{name} is empty")
        try:
            x = float(s)
        except ValueError:
            raise ValueError(f"{name} must be true/false or a number in [0, 1], got {value!r}") from None
    else:
        raise ValueError(f"{name} must be true/false or a number in [0, 1], got {value!r}")
    if not (0.0 <= x <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return x


def parse_cost(value: Any, name: str) -> float:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return math.nan
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number (USD per query), got {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return x


def read_log(
    path: Path | str,
    columns: ColumnMap | None = None,
    *,
    require_local: bool = True,
    require_frontier: bool = False,
    skip_bad_lines: bool = False,
) -> OutcomeLog:
    """Read and validate one outcome log.

    Every problem is reported with file and line number; unless `skip_bad_lines`,
    any problem fails the whole read (LogFormatError listing them all).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    cols = columns or ColumnMap()
    b = _Builder(str(path))
    for lineno, row, error in iter_raw_rows(path):
        if error is None:
            error = b.add(row, cols, lineno, require_local, require_frontier)
        if error:
            b.problems.append((str(path), lineno, error))
    return b.finish(skip_bad_lines)


def log_from_rows(rows: Iterable[dict[str, Any]], source: str = "<memory>", *,
                  require_local: bool = True, require_frontier: bool = False) -> OutcomeLog:
    """Validate canonical rows built in memory (public-data loaders use this)."""
    b = _Builder(source)
    for i, row in enumerate(rows, 1):
        error = b.add(row, ColumnMap(), i, require_local, require_frontier)
        if error:
            b.problems.append((source, i, error))
    return b.finish(False)


class _Builder:
    def __init__(self, source: str):
        self.source = source
        self.cols: dict[str, list] = {k: [] for k in CANONICAL_FIELDS}
        self.problems: list[tuple[str, int, str]] = []

    def add(self, row: dict[str, Any], cols: ColumnMap, lineno: int, need_local: bool,
            need_frontier: bool) -> str | None:
        try:
            query = row.get(cols.query)
            if query is None:
                raise ValueError(f"missing query column {cols.query!r}")
            if not isinstance(query, str):
                raise ValueError(f"query must be text, got {type(query).__name__}")
            if not query.strip():
                raise ValueError("empty query")
            local = _optional_score(row, cols.local_score, "local_score", need_local)
            frontier = _optional_score(row, cols.frontier_score, "frontier_score", need_frontier)
            lcost = parse_cost(row.get(cols.local_cost), "local_cost")
            fcost = parse_cost(row.get(cols.frontier_cost), "frontier_cost")
        except ValueError as exc:
            return str(exc)
        rid = row.get(cols.id)
        rid = str(rid) if rid not in (None, "") else f"{Path(self.source).name}:{lineno}"
        group = row.get(cols.group)
        group = str(group) if group not in (None, "") else rid
        for name, value in zip(CANONICAL_FIELDS, (query, local, frontier, lcost, fcost, group, rid)):
            self.cols[name].append(value)
        return None

    def finish(self, skip_bad_lines: bool) -> OutcomeLog:
        if self.problems and not skip_bad_lines:
            raise_bad_lines(self.problems, self.source, "fix the lines, map columns with --query-column/"
                            "--local-score-column/..., or pass --skip-bad-lines to skip them")
        if not self.cols["query"]:
            raise LogFormatError(f"{self.source}: no records", self.problems)
        c = self.cols
        arr = lambda k: np.asarray(c[k], dtype=np.float64)  # noqa: E731
        return OutcomeLog(
            c["query"], arr("local_score"), arr("frontier_score"), arr("local_cost"), arr("frontier_cost"),
            c["group"], c["id"], self.source, skipped=len(self.problems), problems=list(self.problems),
        )


def _optional_score(row: dict[str, Any], column: str, name: str, required: bool) -> float:
    value = row.get(column)
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if required:
            raise ValueError(f"missing {name} (column {column!r})")
        return math.nan
    return parse_score(value, name)
