"""Offline evaluation of a decision log: joined with outcome labels that arrive later, keyed by the same `id`
(rows with `local_score` and/or `frontier_score`, or `score`: the outcome of the model that answered; with many
models, `scores`: model -> score).
`evaluate_decisions` reports routed accuracy, frontier share and cost, and drift (the router's frontier share
against its target, with a warning past a tolerance); `joined_outcome_rows` turns the joined rows into an outcome
log for retraining (`openfirst eval --decisions`, `openfirst train`)."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from openfirst.core.errors import ConfigError

from openfirst.pipeline.route import DECIDERS


def labels_by_id(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """id -> {local_score, frontier_score, <model>_score, score}: the known outcome labels (later rows win)."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        rid = row.get("id")
        if rid in (None, ""):
            continue
        known = {}
        per_model = row.get("scores") if isinstance(row.get("scores"), dict) else {}
        for key, value in [*((k, row.get(k)) for k in ("local_score", "frontier_score", "score")),
                           *((f"{m}_score", v) for m, v in per_model.items())]:
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
    target_share = _stored_share(decisions) if target_share is None else target_share
    joined = [(d, labels[str(d["id"])]) for d in decisions if str(d["id"]) in labels]
    answered = [_outcome(d, lab, d["target"]) for d, lab in joined]
    local = [_outcome(d, lab, "local") for d, lab in joined]
    frontier = [_outcome(d, lab, "frontier") for d, lab in joined]
    costs = [float(d["cost_usd"]) for d in decisions if d.get("cost_usd") is not None]
    recent = chose[-window:]
    return {
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
        "by_model": _by_model(targets, joined),
        "cascade": _cascade_report(decisions, labels),
        "drift": _drift(share_routed, float(np.mean(recent)) if recent.size else math.nan,
                        len(recent), target_share, tolerance),
    }


def _by_model(targets: np.ndarray, joined: list[tuple[dict[str, Any], dict[str, float]]]) -> dict[str, Any]:
    """Per target model: its share of the decisions and the accuracy of its labelled answers."""
    return {str(m): {"share": float(np.mean(targets == m)),
                     "accuracy": _mean([_outcome(d, lab, m) for d, lab in joined if d["target"] == m])}
            for m in sorted(set(targets.tolist()))}


def _stored_share(decisions: Sequence[dict[str, Any]]) -> float | None:
    """The frontier share the service expected when it logged these decisions (the latest one stored)."""
    stored = [d.get("expected_frontier_share") for d in decisions if d.get("expected_frontier_share") is not None]
    return float(stored[-1]) if stored else None


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
    """Outcome-log rows for `openfirst train`: decisions with their query text and known outcomes. Two models:
    (id, query, local_score, frontier_score?), rows with a local outcome. A many-model router's decisions (with
    `predictions`): (id, query, scores: every model with a known outcome, costs: the logged cost of the answering
    model, the router's expected cost of the others), a many-model log."""
    if any(d.get("predictions") for d in decisions):
        return _many_model_rows(decisions, labels)
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


def _many_model_rows(decisions: Sequence[dict[str, Any]], labels: dict[str, dict[str, float]]
                     ) -> list[dict[str, Any]]:
    models = sorted({m for d in decisions for m in (d.get("predictions") or {})} | {d["target"] for d in decisions})
    rows = []
    for d in decisions:
        lab = labels.get(str(d["id"]))
        if not lab or not isinstance(d.get("query"), str):
            continue
        scores = {m: v for m in models if (v := _outcome(d, lab, m)) is not None}
        if not scores:
            continue
        # costs: what the answering model billed where logged, else the router's expected cost per model
        costs = {m: p["cost_usd"] for m, p in (d.get("predictions") or {}).items() if m in scores}
        if d.get("cost_usd") is not None and d["target"] in scores:
            costs[d["target"]] = float(d["cost_usd"])
        rows.append({"id": d["id"], "query": d["query"], "scores": scores, **({"costs": costs} if costs else {})})
    return rows


def markdown_summary(report: dict[str, Any], title: str) -> str:
    fmt = lambda v: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else (  # noqa: E731
        f"{v:.4f}" if isinstance(v, float) else str(v))
    drift = report["drift"]
    rows = [("decisions", report["decisions"]), ("labeled", report["labeled"]),
            ("decided by", ", ".join(f"{k} {v}" for k, v in report["decided_by"].items())),
            ("share by model", ", ".join(f"{m} {v['share']:.1%}" for m, v in report["by_model"].items())),
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
