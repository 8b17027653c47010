"""Routing across many models, evaluated the way RouterBench (arXiv 2403.12031) does: the accuracy-cost plane.

A router gives, per query and model, a predicted P(success) and an expected cost; a decision picks the model that
maximises P(success) - lambda * cost. Sweeping lambda from 0 (the most likely to succeed) upward (cheaper and
cheaper) traces the router's points (mean cost per query, mean accuracy) on the evaluated records.

AIQ: the area under the router's non-decreasing convex hull, over the cost range of the single models, divided by
that range (a mean accuracy; 1.0 is perfect). Random mixtures of single models (the "zero router") reach every
point on the hull of the single models' points; the oracle picks, per query, the cheapest model that gets it right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Point:
    cost: float  # mean USD per query
    accuracy: float  # mean score

    def to_dict(self) -> dict[str, float]:
        return {"cost": self.cost, "accuracy": self.accuracy}


def choose(p_success: np.ndarray, cost: np.ndarray, lam: float) -> np.ndarray:
    """Per query, the model index maximising p_success - lam * cost (ties: the cheaper, then the first)."""
    utility = p_success - lam * cost
    best = utility.max(axis=1, keepdims=True)
    tied = np.isclose(utility, best, rtol=0.0, atol=1e-12)
    return np.where(tied, cost, np.inf).argmin(axis=1)


def lambdas_for(p_success: np.ndarray, cost: np.ndarray, n: int = 200) -> np.ndarray:
    """A sweep from 0 (accuracy first) past the point where every query takes its cheapest model."""
    dp = np.ptp(p_success, axis=1).max() if p_success.size else 1.0
    gaps = np.diff(np.unique(np.round(cost, 15)))  # past dp / (smallest cost gap) every query takes its cheapest
    dc = gaps[gaps > 0].min() if (gaps > 0).any() else max(float(np.abs(cost).max(initial=0.0)), 1e-12)
    top = max(1e-12, (dp + 1e-9) / dc) * 2.0
    return np.concatenate([[0.0], np.geomspace(top * 1e-6, top, n - 1)])


def router_points(p_success: np.ndarray, cost: np.ndarray, scores: np.ndarray, true_cost: np.ndarray | None = None,
                  lambdas: Sequence[float] | None = None) -> list[Point]:
    """The router's (cost, accuracy) per lambda: decisions on the predictions, measured on the true scores (and the
    true costs, when the predicted costs are estimates)."""
    true_cost = cost if true_cost is None else true_cost
    lams = lambdas_for(p_success, cost) if lambdas is None else np.asarray(lambdas, dtype=float)
    rows = np.arange(len(scores))
    out = []
    for lam in lams:
        pick = choose(p_success, cost, float(lam))
        out.append(Point(float(true_cost[rows, pick].mean()), float(scores[rows, pick].mean())))
    return out


def single_points(scores: np.ndarray, cost: np.ndarray, models: Sequence[str]) -> dict[str, Point]:
    return {m: Point(float(cost[:, j].mean()), float(scores[:, j].mean())) for j, m in enumerate(models)}


def oracle_point(scores: np.ndarray, cost: np.ndarray) -> Point:
    """Per query, the cheapest model with the best score."""
    pick = choose(scores, cost, 0.0)
    rows = np.arange(len(scores))
    return Point(float(cost[rows, pick].mean()), float(scores[rows, pick].mean()))


def hull(points: Sequence[Point]) -> list[Point]:
    """The non-decreasing convex hull (upper-left frontier): points ordered by cost, accuracy never falling, and
    each point on or above the chord of its neighbours."""
    pts = sorted({(p.cost, p.accuracy) for p in points})
    frontier: list[tuple[float, float]] = []
    for c, a in pts:  # keep only points that raise accuracy
        if frontier and a <= frontier[-1][1] + 1e-15:
            continue
        while frontier and c <= frontier[-1][0] + 1e-15:
            frontier.pop()
        frontier.append((c, a))
    upper: list[tuple[float, float]] = []
    for c, a in frontier:  # upper concave hull (Andrew's monotone chain)
        while len(upper) >= 2:
            (c1, a1), (c2, a2) = upper[-2], upper[-1]
            if (c2 - c1) * (a - a1) - (a2 - a1) * (c - c1) >= 0:  # the middle point is not above the chord
                upper.pop()
            else:
                break
        upper.append((c, a))
    return [Point(c, a) for c, a in upper]


def aiq(points: Sequence[Point], c_min: float, c_max: float) -> float:
    """Area under the non-decreasing convex hull over [c_min, c_max], divided by the width: a mean accuracy. Costs
    below the router's cheapest point count as 0 (nothing is reachable there); past its dearest, its best."""
    h = hull(points)
    if not h or c_max <= c_min:
        return float("nan")
    xs = np.array([p.cost for p in h])
    ys = np.array([p.accuracy for p in h])
    grid = np.linspace(c_min, c_max, 2001)
    vals = np.interp(grid, xs, ys, left=np.nan, right=ys[-1])
    vals = np.where(np.isnan(vals), 0.0, vals)  # cheaper than anything the router reaches: no answer
    return float(np.trapezoid(vals, grid) / (c_max - c_min))


def cost_to_match(points: Sequence[Point], target: Point) -> float | None:
    """The router's lowest mean cost with accuracy at least `target`'s, divided by `target`'s cost; None if never."""
    ok = [p.cost for p in points if p.accuracy >= target.accuracy - 1e-12]
    if not ok or target.cost <= 0:
        return None
    return float(min(ok) / target.cost)


def report(p_success: np.ndarray, cost: np.ndarray, scores: np.ndarray, models: Sequence[str],
           baselines: dict[str, np.ndarray] | None = None, true_cost: np.ndarray | None = None) -> dict:
    """The RouterBench-style report: `curve`, `aiq`, `best_single`, `cost_to_match_best_single`, `baselines`
    (`oracle`, `zero`, and each given baseline's predicted P(success) matrix: `knn`, `mlp`, ...), `singles`."""
    true_cost = cost if true_cost is None else true_cost
    singles = single_points(scores, true_cost, models)
    c_min, c_max = min(p.cost for p in singles.values()), max(p.cost for p in singles.values())
    best_name = max(singles, key=lambda m: (singles[m].accuracy, -singles[m].cost))
    best = singles[best_name]
    curve = router_points(p_success, cost, scores, true_cost)
    out = {"curve": [p.to_dict() for p in curve], "aiq": aiq(curve, c_min, c_max),
           "best_single": {"model": best_name, **best.to_dict()},
           "cost_to_match_best_single": cost_to_match(curve, best),
           "singles": {m: p.to_dict() for m, p in singles.items()}, "cost_range": [c_min, c_max]}
    oracle = router_points(scores, true_cost, scores)
    base = {"oracle": {"aiq": aiq(oracle, c_min, c_max), "point": oracle_point(scores, true_cost).to_dict()},
            "zero": {"aiq": aiq(list(singles.values()), c_min, c_max)}}
    for name, p in (baselines or {}).items():
        pts = router_points(p, cost, scores, true_cost)
        base[name] = {"aiq": aiq(pts, c_min, c_max), "cost_to_match_best_single": cost_to_match(pts, best),
                      "curve": [q.to_dict() for q in pts]}
    out["baselines"] = base
    return out
