"""Routing curves and RouteLLM's metrics: PGR, APGR, CPT.

A router ranks queries by how much they need the frontier model. Sending the top
share c of queries to the frontier gives accuracy acc(c); ties in the ranking are
broken at random, whose expectation is the straight line between tie-block ends,
so the exact curve is piecewise linear and the area is exact.

PGR(c) = (acc(c) - acc_local) / (acc_frontier - acc_local); APGR = area under PGR
over c in [0, 1]; CPT(x) = smallest c with PGR(c) >= x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RoutingCurve:
    """Piecewise-linear routing curve at tie-block boundaries (shares from 0 to 1)."""

    share: np.ndarray  # frontier-call share c
    accuracy: np.ndarray
    cost: np.ndarray  # mean cost per query
    acc_local: float
    acc_frontier: float

    @property
    def pgr(self) -> np.ndarray:
        gap = self.acc_frontier - self.acc_local
        if abs(gap) < 1e-12:
            return np.full_like(self.accuracy, np.nan)
        return (self.accuracy - self.acc_local) / gap

    def apgr(self) -> float:
        return float(np.trapezoid(self.pgr, self.share))

    def cpt(self, x: float) -> float:
        """Smallest frontier share reaching PGR >= x (linear inside a segment); nan if never."""
        pgr = self.pgr
        hit = np.flatnonzero(pgr >= x - 1e-12)
        if hit.size == 0:
            return float("nan")
        i = int(hit[0])
        if i == 0:
            return float(self.share[0])
        x0, x1, y0, y1 = self.share[i - 1], self.share[i], pgr[i - 1], pgr[i]
        return float(x0 + (x - y0) * (x1 - x0) / (y1 - y0))

    def at_share(self, c: float) -> tuple[float, float]:
        """(accuracy, cost) at frontier share c, interpolated."""
        return float(np.interp(c, self.share, self.accuracy)), float(np.interp(c, self.share, self.cost))


def routing_curve(
    priority: np.ndarray,
    local_score: np.ndarray,
    frontier_score: np.ndarray,
    local_cost: np.ndarray | None = None,
    frontier_cost: np.ndarray | None = None,
) -> RoutingCurve:
    """Curve for routing the highest-`priority` queries to the frontier first."""
    priority = np.asarray(priority, dtype=float)
    yl = np.asarray(local_score, dtype=float)
    yf = np.asarray(frontier_score, dtype=float)
    n = len(priority)
    if n == 0 or len(yl) != n or len(yf) != n:
        raise ValueError("priority, local_score and frontier_score must be non-empty and of equal length")
    cl = np.zeros(n) if local_cost is None else np.asarray(local_cost, dtype=float)
    cf = np.zeros(n) if frontier_cost is None else np.asarray(frontier_cost, dtype=float)
    order = np.argsort(-priority, kind="stable")
    p_sorted = priority[order]
    gain = np.concatenate([[0.0], np.cumsum((yf - yl)[order])])
    dcost = np.concatenate([[0.0], np.cumsum((cf - cl)[order])])
    # keep only boundaries between tie blocks (and both ends)
    ends = np.flatnonzero(np.diff(p_sorted) != 0) + 1
    k = np.concatenate([[0], ends, [n]])
    acc = (yl.sum() + gain[k]) / n
    cost = (cl.sum() + dcost[k]) / n
    return RoutingCurve(k / n, acc, cost, float(yl.mean()), float(yf.mean()))


def summarize(curve: RoutingCurve) -> dict[str, float]:
    return {
        "apgr": curve.apgr(),
        "cpt50": curve.cpt(0.5),
        "cpt80": curve.cpt(0.8),
        "acc_local": curve.acc_local,
        "acc_frontier": curve.acc_frontier,
        "acc_oracle_max": float(curve.accuracy.max()),
    }


def oracle_priority(local_score: np.ndarray, frontier_score: np.ndarray) -> np.ndarray:
    """The oracle sends queries where the frontier gains most first."""
    return np.asarray(frontier_score, float) - np.asarray(local_score, float)

def calibration(p: np.ndarray, outcome: np.ndarray, bins: int = 10) -> dict[str, float]:
    """Brier score and expected calibration error of P(local succeeds) against binary outcomes."""
    p = np.asarray(p, float)
    y = (np.asarray(outcome, float) >= 0.5).astype(float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    ece = sum(abs(p[idx == b].mean() - y[idx == b].mean()) * (idx == b).mean() for b in range(bins) if (idx == b).any())
    return {"brier": float(np.mean((p - y) ** 2)), "ece": float(ece), "base_rate_brier": float(y.mean() * (1 - y.mean()))}
