"""Decision logs: what the service decided for each routed input, joined later with outcome labels.

The service appends one JSON object per input to a JSONL file (`DecisionLog`). Labels arrive
later, keyed by the same `id`: rows with `local_score` and/or `frontier_score`, or `score` (the
outcome of the model that answered). `evaluate_decisions` joins the two, reports routed accuracy,
frontier share and cost, and drift (the router's frontier share against its target, with a warning
past a tolerance); `joined_outcome_log` turns the joined rows into an outcome log for retraining.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from openfirst.core.errors import ConfigError, LogFormatError
from openfirst.core.rows import iter_raw_rows

# keys of one decision record; scripts read them, keep them stable
RECORD_KEYS = ("id", "time", "endpoint", "task", "query", "query_sha256", "target", "decided_by", "p_success",
               "score", "threshold", "expected_frontier_share", "pin_reasons", "model", "ok", "error", "latency_s",
               "cost_usd", "query_hmac", "query_truncated", "caller", "confidence", "output")
DECIDERS = ("router", "privacy", "default", "fallback", "cascade", "policy", "budget")


def query_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class DecisionLog:
    """Append-only JSONL writer, safe across threads; each record is flushed as it is written.

    Private by default: the file is created with mode 0600; the text of a request pinned by the privacy rules is
    never written, nor its output (the validated answer is written beside the text it came from, for
    `openfirst finetune --from-decisions`, and under the same rule); with `store_text=False` no text is written, and the query is identified by an HMAC-SHA256
    under `hash_key` (an unkeyed SHA-256 of a short query can be brute-forced), or not at all without a key.
    A stored query is cut at `max_query_chars`. Past `max_bytes` the file rotates (`.1` ... `.{backups}`).
    """

    def __init__(self, path: Path | str, store_text: bool = True, *, hash_key: str | None = None,
                 max_query_chars: int = 10_000, max_bytes: int = 100_000_000, backups: int = 5):
        self.path = Path(path)
        self.store_text = store_text
        self.hash_key = hash_key.encode() if hash_key else None
        self.max_query_chars, self.max_bytes, self.backups = max_query_chars, max_bytes, backups
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the decision log's folder {self.path.parent}: {exc}") from None
        if not os.access(self.path.parent, os.W_OK) or (self.path.exists() and not os.access(self.path, os.W_OK)):
            raise ConfigError(f"decision log {self.path} is not writable")
        self._fh: Any = None  # opened on the first write
        self._lock = threading.Lock()

    def _line(self, rec: dict[str, Any]) -> str:
        rec = dict(rec)
        query = rec.get("query")
        output = rec.get("output")
        rec["query"] = rec["query_sha256"] = rec["output"] = None
        if isinstance(query, str):
            pinned = rec.get("decided_by") == "privacy" or bool(rec.get("pin_reasons"))
            if self.store_text and not pinned:
                rec["query"] = query[: self.max_query_chars]
                rec["query_truncated"] = len(query) > self.max_query_chars
                rec["query_sha256"] = query_digest(query)
                rec["output"] = output  # the validated answer, with its text only: never for a pinned request
            elif self.hash_key is not None:
                rec["query_hmac"] = hmac.new(self.hash_key, query.encode("utf-8", "surrogatepass"),
                                             hashlib.sha256).hexdigest()
        return json.dumps({k: rec.get(k) for k in RECORD_KEYS}, ensure_ascii=False) + "\n"

    def write_many(self, records: Iterable[dict[str, Any]]) -> None:
        data = "".join(self._line(rec) for rec in records)
        with self._lock:
            if self._fh is not None and self._fh.tell() + len(data) > self.max_bytes:
                self._rotate()
            if self._fh is None:
                self._fh = self._open()
            self._fh.write(data)
            self._fh.flush()

    def _open(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(self.path, 0o600)  # an existing file made with a wider mode is narrowed too
        fh = os.fdopen(fd, "a", encoding="utf-8", errors="surrogateescape")
        if fh.tell() >= self.max_bytes:
            fh.close()
            self._rotate()
            return self._open()
        return fh

    def _rotate(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for i in range(self.backups, 0, -1):
            older = rotated(self.path, i)
            newer = self.path if i == 1 else rotated(self.path, i - 1)
            if newer.exists():
                os.replace(newer, older)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def rotated(path: Path, i: int) -> Path:
    return path.with_name(f"{path.name}.{i}")


def decision_files(path: Path) -> list[Path]:
    """The log and its rotated files, oldest first."""
    older = sorted((p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
                   key=lambda p: -int(p.suffix[1:]))
    return older + ([path] if path.is_file() else [])


def read_decisions(path: Path | str) -> list[dict[str, Any]]:
    """Every decision in the log and its rotated files, oldest first."""
    path = Path(path)
    files = decision_files(path)
    if not files:
        raise ConfigError(f"decision log {path} does not exist")
    out, problems = [], []
    for lineno, row, error, path in ((n, r, e, f) for f in files for n, r, e in iter_raw_rows(f, "jsonl")):
        if error is None and (not row.get("id") or row.get("target") not in ("local", "frontier")):
            error = "a decision needs an id and a target of 'local' or 'frontier'"
        if error:
            problems.append((str(path), lineno, error))
        else:
            out.append(row)
    if problems:
        shown = "\n".join(f"  {f}:{n}: {why}" for f, n, why in problems[:10])
        raise LogFormatError(f"{len(problems)} bad line(s) in {path}:\n{shown}", problems)
    if not out:
        raise LogFormatError(f"{path}: no decisions", [])
    return out


def labels_by_id(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """id -> {local_score, frontier_score, score}: the known outcome labels (later rows win)."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        rid = row.get("id")
        if rid in (None, ""):
            continue
        known = {}
        for key in ("local_score", "frontier_score", "score"):
            value = row.get(key)
            if value in (None, ""):
                continue
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"label {rid!r}: {key} is not a number ({value!r})") from None
            if not math.isnan(v):
                known[key] = v
        if known:
            out.setdefault(str(rid), {}).update(known)
    return out


def _outcome(rec: dict[str, Any], label: dict[str, float], target: str) -> float | None:
    if f"{target}_score" in label:
        return label[f"{target}_score"]
    return label.get("score") if target == rec["target"] else None


def evaluate_decisions(decisions: Sequence[dict[str, Any]], labels: dict[str, dict[str, float]],
                       target_share: float | None = None, tolerance: float = 0.1, window: int = 1000,
                       prices: tuple[float, float] | None = None) -> dict[str, Any]:
    """Routed accuracy, frontier share, cost and drift of logged decisions joined with labels. `prices`:
    (local, frontier) USD per request, for a cost estimate where the service logged none (e.g. /v1/route)."""
    n = len(decisions)
    targets = np.array([d["target"] for d in decisions])
    by = np.array([d.get("decided_by") or "router" for d in decisions])
    # the router's own choice (score >= threshold), also where privacy or configuration overrode it
    chose = np.array([d["score"] >= d["threshold"] for d in decisions
                      if d.get("score") is not None and d.get("threshold") is not None], dtype=bool)
    share_all = float(np.mean(targets == "frontier"))
    share_routed = float(np.mean(chose)) if chose.size else math.nan
    if target_share is None:
        stored = [d.get("expected_frontier_share") for d in decisions if d.get("expected_frontier_share") is not None]
        target_share = float(stored[-1]) if stored else None
    joined = [(d, labels[str(d["id"])]) for d in decisions if str(d["id"]) in labels]
    answered = [_outcome(d, lab, d["target"]) for d, lab in joined]
    local = [_outcome(d, lab, "local") for d, lab in joined]
    frontier = [_outcome(d, lab, "frontier") for d, lab in joined]
    costs = [float(d["cost_usd"]) for d in decisions if d.get("cost_usd") is not None]
    recent = chose[-window:]
    report: dict[str, Any] = {
        "decisions": n,
        "labeled": len(joined),
        "decided_by": {k: int(np.sum(by == k)) for k in DECIDERS if np.any(by == k)},
        "frontier_share": share_all,
        "routed_frontier_share": share_routed,
        "accuracy": _mean(answered),
        "accuracy_always_local": _mean(local) if None not in local else None,
        "accuracy_always_frontier": _mean(frontier) if None not in frontier else None,
        "errors": int(sum(1 for d in decisions if d.get("ok") is False)),
        "cost_usd_total": float(sum(costs)) if costs else None,
        "cost_usd_per_request": float(np.mean(costs)) if costs else None,
        "cost_usd_per_request_at_prices": (float(np.mean(np.where(targets == "frontier", prices[1], prices[0])))
                                           if prices is not None else None),
        "cascade": _cascade_report(decisions, labels),
        "drift": _drift(share_routed, float(np.mean(recent)) if recent.size else math.nan,
                        len(recent), target_share, tolerance),
    }
    return report


def _cascade_report(decisions: Sequence[dict[str, Any]], labels: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The cascade's share of decisions, the accuracy of what it escalated and of the local answers it kept, and
    how well the logged confidence separated right from wrong local answers (labeled ones)."""
    escalated = [d for d in decisions if d.get("decided_by") == "cascade"]
    kept = [d for d in decisions if d.get("target") == "local" and d.get("confidence") is not None
            and d.get("decided_by") != "privacy"]
    acc = lambda rows: _mean([_outcome(d, labels[str(d["id"])], d["target"])  # noqa: E731
                              for d in rows if str(d["id"]) in labels])
    pairs = [(d["confidence"], _outcome(d, labels[str(d["id"])], "local")) for d in decisions
             if d.get("confidence") is not None and str(d["id"]) in labels]
    pairs = [(c, y) for c, y in pairs if y is not None]
    auroc = None
    if pairs:
        from openfirst.cascade.evaluation import auroc as auroc_of

        separation = auroc_of([c for c, _ in pairs], [y >= 0.5 for _, y in pairs])
        auroc = None if math.isnan(separation) else separation
    return {"escalated": len(escalated), "share": len(escalated) / len(decisions) if decisions else 0.0,
            "accuracy_escalated": acc(escalated), "accuracy_kept_local": acc(kept), "confidence_auroc": auroc}


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def _drift(share: float, recent_share: float, recent_n: int, target: float | None, tolerance: float
           ) -> dict[str, Any]:
    out: dict[str, Any] = {"target_frontier_share": target, "tolerance": tolerance, "recent_window": recent_n,
                           "recent_frontier_share": recent_share, "warning": None}
    if target is None or math.isnan(share):
        out["note"] = "no target share known (pass --target-frontier-share or --router)"
        return out
    gaps = {"overall": share - target, "recent": recent_share - target}
    out["gap"] = gaps["overall"]
    out["recent_gap"] = gaps["recent"]
    worst = max(gaps, key=lambda k: abs(gaps[k]) if not math.isnan(gaps[k]) else -1)
    out["warning"] = drift_warning(share if worst == "overall" else recent_share, target, tolerance, worst)
    return out


def drift_warning(share: float, target: float, tolerance: float, scope: str) -> str | None:
    """The warning when the router's frontier share over `scope` is further than `tolerance` from its target."""
    gap = share - target
    if math.isnan(gap) or abs(gap) <= tolerance:
        return None
    return (f"drift: the router's frontier share ({scope}) {share:.1%} is {abs(gap):.1%} "
            f"{'above' if gap > 0 else 'below'} the target {target:.1%} (tolerance {tolerance:.1%}): traffic has "
            "drifted from the training data; join the decision log with outcome labels (openfirst eval "
            "--decisions) and retrain")


def joined_outcome_rows(decisions: Sequence[dict[str, Any]], labels: dict[str, dict[str, float]]
                        ) -> list[dict[str, Any]]:
    """Outcome-log rows (id, query, local_score, frontier_score) for `openfirst train`: decisions with their
    query text and a known local outcome."""
    rows = []
    for d in decisions:
        lab = labels.get(str(d["id"]))
        if not lab or not isinstance(d.get("query"), str):
            continue
        local = _outcome(d, lab, "local")
        if local is None:
            continue
        row = {"id": d["id"], "query": d["query"], "local_score": local}
        frontier = _outcome(d, lab, "frontier")
        if frontier is not None:
            row["frontier_score"] = frontier
        rows.append(row)
    return rows


def markdown_summary(report: dict[str, Any], title: str) -> str:
    fmt = lambda v: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else (  # noqa: E731
        f"{v:.4f}" if isinstance(v, float) else str(v))
    drift = report["drift"]
    rows = [("decisions", report["decisions"]), ("labeled", report["labeled"]),
            ("decided by", ", ".join(f"{k} {v}" for k, v in report["decided_by"].items())),
            ("frontier share (all)", report["frontier_share"]),
            ("frontier share (router's choice)", report["routed_frontier_share"]),
            ("target frontier share", drift["target_frontier_share"]),
            ("recent frontier share", drift["recent_frontier_share"]),
            ("routed accuracy", report["accuracy"]), ("always local", report["accuracy_always_local"]),
            ("always frontier", report["accuracy_always_frontier"]), ("errors", report["errors"]),
            ("cascade: escalated", report["cascade"]["escalated"]),
            ("cascade: accuracy escalated / kept local",
             f"{fmt(report['cascade']['accuracy_escalated'])} / {fmt(report['cascade']['accuracy_kept_local'])}"),
            ("cascade: confidence AUROC", report["cascade"]["confidence_auroc"]),
            ("cost per request (USD, logged)", report["cost_usd_per_request"]),
            ("cost per request (USD, at prices)", report["cost_usd_per_request_at_prices"])]
    lines = [f"### {title}", "", "| | |", "|---|---|"] + [f"| {k} | {fmt(v)} |" for k, v in rows]
    if drift["warning"]:
        lines += ["", f"**WARNING** {drift['warning']}"]
    return "\n".join(lines) + "\n"
