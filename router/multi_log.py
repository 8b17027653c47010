"""Outcome logs with many models: per query, a score for each model that ran it (and optionally its cost).

JSONL: `{"id", "query", "group"?, "scores": {model: score in [0, 1] or true/false}, "costs"?: {model: USD}}`; a
model may be missing from a record (it did not run that query). CSV: a column per model for scores and for costs,
named with `score_columns` / `cost_columns` (model -> column). Every problem is reported with its file and line;
two-model logs (`local_score`, `frontier_score`) keep their own reader (`records.read_log`) and convert here with
`MultiOutcomeLog.from_two_models`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from openfirst.core.errors import ConfigError, LogFormatError
from openfirst.core.rows import iter_raw_rows
from openfirst.router.records import OutcomeLog, fold_groups, parse_cost, parse_score, raise_bad_lines


@dataclass
class MultiOutcomeLog:
    """Validated records, column-wise: `scores[i, j]` is model j's score on query i (NaN: not run); `costs[i, j]`
    its cost in USD (NaN: not given)."""

    queries: list[str]
    ids: list[str]
    groups: list[str]
    models: list[str]
    scores: np.ndarray
    costs: np.ndarray
    source: str = "<memory>"
    problems: list[tuple[str, int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.queries)

    def subset(self, index: Sequence[int] | np.ndarray) -> "MultiOutcomeLog":
        idx = np.asarray(index, dtype=int)
        return MultiOutcomeLog([self.queries[i] for i in idx], [self.ids[i] for i in idx],
                               [self.groups[i] for i in idx], list(self.models), self.scores[idx], self.costs[idx],
                               self.source)

    def fold_groups(self) -> np.ndarray:
        """Integer group per record: identical queries and equal `group` values share one."""
        return fold_groups(self.queries, self.groups)

    def complete(self) -> "MultiOutcomeLog":
        """The records every model ran (what a like-for-like comparison of routers needs)."""
        return self.subset(np.flatnonzero(~np.isnan(self.scores).any(axis=1)))

    def costs_or(self, per_query_usd: Mapping[str, float]) -> np.ndarray:
        """Costs with the missing ones filled from a per-model price per query (ConfigError names a model with
        neither)."""
        out = self.costs.copy()
        for j, m in enumerate(self.models):
            missing = np.isnan(out[:, j])
            if missing.any():
                if m not in per_query_usd:
                    raise ConfigError(f"model {m!r} has records without a cost and no price",
                                      hint="give costs in the log, or a price per query for every model")
                out[missing, j] = per_query_usd[m]
        return out

    @classmethod
    def from_two_models(cls, log: OutcomeLog, local: str = "local", frontier: str = "frontier"
                        ) -> "MultiOutcomeLog":
        return cls(list(log.queries), list(log.ids), list(log.groups), [local, frontier],
                   np.column_stack([log.local_score, log.frontier_score]),
                   np.column_stack([log.local_cost, log.frontier_cost]), log.source)

    def write_jsonl(self, path: Path | str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            for i, q in enumerate(self.queries):
                rec: dict[str, Any] = {"id": self.ids[i], "query": q}
                if self.groups[i] != self.ids[i]:
                    rec["group"] = self.groups[i]
                rec["scores"] = {m: float(s) for m, s in zip(self.models, self.scores[i]) if not math.isnan(s)}
                costs = {m: float(c) for m, c in zip(self.models, self.costs[i]) if not math.isnan(c)}
                if costs:
                    rec["costs"] = costs
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


def is_multi_model(path: Path | str) -> bool:
    """Whether a log's first good record has a `scores` object (JSONL), i.e. is a many-model log."""
    for _, row, error in iter_raw_rows(Path(path)):
        if error is None:
            return isinstance(row.get("scores"), dict)
    return False


def read_multi_log(path: Path | str, *, score_columns: Mapping[str, str] | None = None,
                   cost_columns: Mapping[str, str] | None = None, query_column: str = "query",
                   id_column: str = "id", group_column: str = "group",
                   skip_bad_lines: bool = False) -> MultiOutcomeLog:
    """Read and validate a many-model log; any bad line fails the read (all listed) unless `skip_bad_lines`."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    rows = ((lineno, row, error) for lineno, row, error in iter_raw_rows(path))
    return _build(rows, str(path), score_columns, cost_columns, query_column, id_column, group_column,
                  skip_bad_lines)


def multi_log_from_rows(rows: Iterable[dict[str, Any]], source: str = "<memory>") -> MultiOutcomeLog:
    """Validate canonical many-model rows built in memory (public-data loaders)."""
    return _build(((i, r, None) for i, r in enumerate(rows, 1)), source, None, None, "query", "id", "group", False)


def _build(rows, source, score_columns, cost_columns, query_column, id_column, group_column, skip_bad_lines):
    good: list[tuple[str, str, str, dict[str, float], dict[str, float]]] = []
    problems: list[tuple[str, int, str]] = []
    for lineno, row, error in rows:
        if error is None:
            try:
                good.append(_record(row, lineno, source, score_columns, cost_columns, query_column, id_column,
                                    group_column))
                continue
            except ValueError as exc:
                error = str(exc)
        problems.append((source, lineno, error))
    if problems and not skip_bad_lines:
        raise_bad_lines(problems, source, "fix the lines, map CSV columns per model, or pass --skip-bad-lines")
    models = sorted({m for *_, s, c in good for m in (*s, *c)})
    if not good:
        raise LogFormatError(f"{source}: no records", problems)
    if len(models) < 2:
        raise LogFormatError(f"{source}: scores for {len(models)} model(s); routing needs at least two", problems)
    col = {m: j for j, m in enumerate(models)}
    scores = np.full((len(good), len(models)), np.nan)
    costs = np.full((len(good), len(models)), np.nan)
    for i, (*_, s, c) in enumerate(good):
        for m, v in s.items():
            scores[i, col[m]] = v
        for m, v in c.items():
            costs[i, col[m]] = v
    return MultiOutcomeLog([g[0] for g in good], [g[1] for g in good], [g[2] for g in good], models, scores, costs,
                           source, problems)


def _record(row, lineno, source, score_columns, cost_columns, query_column, id_column, group_column):
    query = row.get(query_column)
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"missing or empty query (column {query_column!r})")
    if score_columns:  # CSV: a column per model
        scores = {m: parse_score(row.get(c), f"score of {m}") for m, c in score_columns.items()
                  if row.get(c) not in (None, "")}
        costs = {m: parse_cost(row.get(c), f"cost of {m}") for m, c in (cost_columns or {}).items()}
    else:
        raw_scores, raw_costs = row.get("scores"), row.get("costs", {})
        if not isinstance(raw_scores, dict) or not raw_scores:
            raise ValueError("`scores` must be an object of model name -> score")
        if not isinstance(raw_costs, dict):
            raise ValueError("`costs` must be an object of model name -> USD")
        scores = {str(m): parse_score(v, f"score of {m}") for m, v in raw_scores.items() if v is not None}
        costs = {str(m): parse_cost(v, f"cost of {m}") for m, v in raw_costs.items()}
    if not scores:
        raise ValueError("no model has a score")
    costs = {m: v for m, v in costs.items() if not math.isnan(v)}
    rid = row.get(id_column)
    rid = str(rid) if rid not in (None, "") else f"{Path(source).name}:{lineno}"
    group = row.get(group_column)
    return query, rid, str(group) if group not in (None, "") else rid, scores, costs
