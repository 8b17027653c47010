"""Operating point: the threshold on the routing score chosen for one target.

Chosen on out-of-fold scores: a frontier-call share (at most X), a quality target
(at least X of always-frontier accuracy, at the smallest share), or a budget (mean
USD per query at most X, best accuracy within it).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from openfirst.core.errors import ConfigError

DEFAULT_LOCAL_COST = 0.0005  # USD per query: an 8B-class model on a self-hosted GPU (illustrative default)
DEFAULT_FRONTIER_COST = 0.01  # USD per query: a GPT-4-class API call of ~1k tokens in, 200 out (illustrative)
NEVER = 1e9  # threshold that routes nothing to the frontier (JSON has no infinity)


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["frontier_share", "quality", "budget"]
    value: float = Field(ge=0)

    def model_post_init(self, _ctx) -> None:
        if self.kind in ("frontier_share", "quality") and self.value > 1:
            raise ConfigError(f"--target-{self.kind.replace('_', '-')} must be in [0, 1], got {self.value}")


class OperatingPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: Target
    threshold: float
    frontier_share: float
    expected_accuracy: float
    expected_cost: float
    met: bool
    note: str = ""


def fill_costs(n: int, local_cost: np.ndarray | None, frontier_cost: np.ndarray | None,
               default_local: float = DEFAULT_LOCAL_COST, default_frontier: float = DEFAULT_FRONTIER_COST
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per-query costs, with missing values (NaN) replaced by the defaults."""
    lc = np.full(n, default_local) if local_cost is None else np.where(np.isnan(local_cost), default_local, local_cost)
    fc = (np.full(n, default_frontier) if frontier_cost is None
          else np.where(np.isnan(frontier_cost), default_frontier, frontier_cost))
    return lc.astype(float), fc.astype(float)


def thresholds_for_counts(score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The threshold that sends the `counts[i]` highest scores to the frontier (frontier iff score >= threshold):
    the counts[i]-th highest score, or NEVER for a count of 0. Queries tied with that score go too."""
    s = np.sort(np.asarray(score, float))[::-1]
    k = np.asarray(counts, dtype=int)
    if s.size == 0 or (k < 0).any() or (k > s.size).any():
        raise ConfigError(f"counts must lie in [0, {s.size}] for {s.size} scores")
    return np.where(k == 0, NEVER, s[np.maximum(k - 1, 0)])


def threshold_for_share(score: np.ndarray, share: float) -> float:
    """The threshold that sends the top `share` of these routing scores to the frontier (frontier iff
    score >= threshold), as RouteLLM calibrates on a sample of the traffic.

    Rounding rule (the only one in openfirst): k = share * n rounded to the nearest integer, halves up; the
    threshold is the k-th highest score (NEVER when k = 0). Queries tied with the k-th score go to the frontier
    too, so the realised share is at least k / n. Example: scores 0..9, share 0.25 -> k = 3 -> threshold 7
    (30% of these scores are >= 7).
    """
    share = float(share)
    if not 0 <= share <= 1:  # also refuses NaN
        raise ConfigError(f"frontier share must be in [0, 1], got {share}")
    n = np.asarray(score).size
    if n == 0:
        raise ConfigError("no queries to calibrate the threshold on")
    k = min(n, int(np.floor(share * n + 0.5 + 1e-9)))
    return float(thresholds_for_counts(score, np.array([k]))[0])


def threshold_curve(score: np.ndarray, local_score, frontier_score, local_cost, frontier_cost):
    """The routing curve and, per point, the threshold that realises it (the curve's points sit at tie-block
    boundaries, so each share k / n is exactly reachable)."""
    from openfirst.router.metrics import routing_curve

    curve = routing_curve(score, local_score, frontier_score, local_cost, frontier_cost)
    return curve, thresholds_for_counts(score, np.rint(curve.share * np.asarray(score).size).astype(int))


def choose_operating_point(score, local_score, frontier_score, local_cost, frontier_cost, target: Target
                           ) -> OperatingPoint:
    curve, thr = threshold_curve(score, local_score, frontier_score, local_cost, frontier_cost)
    share, acc, cost = curve.share, curve.accuracy, curve.cost
    met, note = True, ""
    if target.kind == "frontier_share":
        j = int(np.flatnonzero(share <= target.value + 1e-12)[-1])
    elif target.kind == "quality":
        goal = target.value * curve.acc_frontier
        ok = np.flatnonzero(acc >= goal - 1e-12)
        if ok.size:
            j = int(ok[0])
        else:
            j, met = int(np.argmax(acc)), False
            note = f"no threshold reaches {target.value:.0%} of frontier accuracy; using the most accurate one"
    else:
        ok = np.flatnonzero(cost <= target.value + 1e-12)
        if ok.size:
            j = int(ok[np.argmax(acc[ok])])
        else:
            j, met = 0, False
            note = f"even all-local costs {cost[0]:.6f} USD/query, above the budget; routing everything local"
    return OperatingPoint(target=target, threshold=float(thr[j]), frontier_share=float(share[j]),
                          expected_accuracy=float(acc[j]), expected_cost=float(cost[j]), met=met, note=note)


def target_from_flags(frontier_share: float | None, quality: float | None, budget: float | None) -> Target:
    given = [(k, v) for k, v in (("frontier_share", frontier_share), ("quality", quality), ("budget", budget))
             if v is not None]
    if len(given) > 1:
        raise ConfigError("give at most one of --target-frontier-share, --target-quality, --budget")
    kind, value = given[0] if given else ("quality", 0.95)
    return Target(kind=kind, value=value)
