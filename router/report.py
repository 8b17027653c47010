"""Accuracy-against-cost report: the router's OOF curve beside baselines, as JSON, Markdown and PNG."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from openfirst.router.metrics import RoutingCurve, oracle_priority, routing_curve, summarize
from openfirst.router.policy import Target, choose_operating_point


def _point(curve: RoutingCurve, share: float) -> dict[str, float]:
    acc, cost = curve.at_share(share)
    return {"frontier_share": share, "accuracy": acc, "cost_per_query": cost}


def build_report(score: np.ndarray, local_score: np.ndarray, frontier_score: np.ndarray, local_cost: np.ndarray,
                 frontier_cost: np.ndarray, texts: list[str], target: Target, name: str = "openfirst"
                 ) -> dict[str, Any]:
    """Curves and metrics for the router and its baselines on the same queries."""
    curve_of = lambda pr: routing_curve(pr, local_score, frontier_score, local_cost, frontier_cost)  # noqa: E731
    curves = {
        name: curve_of(score),
        "random": curve_of(np.zeros(len(score))),  # all tied: the expectation of random routing
        "query_length": curve_of(np.array([len(t) for t in texts], dtype=float)),
        "oracle": curve_of(oracle_priority(local_score, frontier_score)),
    }
    op = choose_operating_point(score, local_score, frontier_score, local_cost, frontier_cost, target)
    always_frontier_cost = float(np.mean(frontier_cost))
    rows = []
    for label, c in curves.items():
        row = {"router": label, **summarize(c)}
        if label == name:
            row.update({"frontier_share": op.frontier_share, "accuracy": op.expected_accuracy,
                        "cost_per_query": op.expected_cost})
        else:
            row.update(_point(c, op.frontier_share))
        rows.append(row)
    n = len(score)
    rows.append({"router": "always_local", "apgr": math.nan, "cpt50": math.nan, "cpt80": math.nan,
                 **_point(curves["random"], 0.0)})
    rows.append({"router": "always_frontier", "apgr": math.nan, "cpt50": math.nan, "cpt80": math.nan,
                 **_point(curves["random"], 1.0)})
    for row in rows:
        row["cost_saving_vs_frontier"] = _saving(row["cost_per_query"], always_frontier_cost)
    main = summarize(curves[name])
    return {
        "records": n,
        "apgr": main["apgr"], "cpt50": main["cpt50"], "cpt80": main["cpt80"],
        "acc_local": main["acc_local"], "acc_frontier": main["acc_frontier"],
        "operating_point": op.model_dump(),
        "cost_saving_vs_frontier": _saving(op.expected_cost, always_frontier_cost),
        "baselines": rows,
        "_curves": curves,
    }


def _saving(cost: float, frontier_cost: float) -> float:
    """Share of the always-frontier cost saved (rounded so float noise never prints as -0.0%)."""
    return round(1.0 - cost / frontier_cost, 9) + 0.0 if frontier_cost else 0.0


def _fmt(x: Any, pct: bool = False) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        return f"{100 * x:.2f}" if pct else f"{x:.4f}"
    return str(x)


def markdown_table(report: dict[str, Any], title: str = "") -> str:
    op = report["operating_point"]
    at = (f"Operating point from {report['operating_point_from']}" if "operating_point_from" in report else
          f"Operating point for target {op['target']['kind']} = {op['target']['value']}")
    head = (f"### {title}\n\n" if title else "") + (
        f"{report['records']} queries; local accuracy {report['acc_local']:.4f}, frontier {report['acc_frontier']:.4f}. "
        f"{at}: "
        f"frontier share {op['frontier_share']:.3f}, accuracy {op['expected_accuracy']:.4f}, "
        f"cost {op['expected_cost']:.5f} USD/query, saving {report['cost_saving_vs_frontier']:.1%} vs always-frontier."
        "\n\n| router | APGR | CPT(50%) % | CPT(80%) % | share at op. | accuracy at op. | USD/query | saving vs frontier |\n"
        "|---|---|---|---|---|---|---|---|\n")
    lines = [
        f"| {r['router']} | {_fmt(r['apgr'])} | {_fmt(r['cpt50'], True)} | {_fmt(r['cpt80'], True)} | "
        f"{r['frontier_share']:.3f} | {r['accuracy']:.4f} | {r['cost_per_query']:.5f} | {r['cost_saving_vs_frontier']:.1%} |"
        for r in report["baselines"]
    ]
    return head + "\n".join(lines) + "\n"


def plot_report(report: dict[str, Any], path: Path | str, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, RoutingCurve] = report["_curves"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, c in curves.items():
        style = {"random": ":", "oracle": "--", "query_length": "-."}.get(label, "-")
        ax1.plot(c.share * 100, c.accuracy, style, label=f"{label} (APGR {c.apgr():.3f})")
        ax2.plot(c.cost, c.accuracy, style, label=label)
    op = report["operating_point"]
    ax1.plot([op["frontier_share"] * 100], [op["expected_accuracy"]], "o", color="black", label="operating point")
    ax2.plot([op["expected_cost"]], [op["expected_accuracy"]], "o", color="black")
    for ax in (ax1, ax2):
        ax.axhline(report["acc_local"], color="grey", lw=0.6)
        ax.axhline(report["acc_frontier"], color="grey", lw=0.6)
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    ax1.set_xlabel("frontier calls (% of queries)")
    ax2.set_xlabel("cost (USD per query)")
    ax1.legend(fontsize=8, loc="lower right")
    fig.suptitle(title or "accuracy against frontier share and cost")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def public_json(report: dict[str, Any]) -> dict[str, Any]:
    """The report without private objects, NaN as null (valid JSON)."""

    def clean(x):
        if isinstance(x, float) and math.isnan(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if not k.startswith("_")}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return clean(report)
