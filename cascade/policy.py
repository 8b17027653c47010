"""The cascade's operating point: the confidence threshold below which a local answer escalates to the frontier,
chosen for a frontier share, a budget or a quality target on a labelled sample. The cascade itself is a stage of
the routed-execution pipeline (`openfirst.pipeline.Pipeline`)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def threshold_for_share(confidences: Sequence[float], share: float) -> float:
    """The confidence threshold that escalates `share` of these answers (the least confident; ties go too): the
    router's rule (`router.policy.threshold_for_share`) on the negated confidences."""
    from openfirst.router.policy import NEVER
    from openfirst.router.policy import threshold_for_share as top_share

    t = top_share(-np.asarray(confidences, dtype=float), share)  # escalate iff -confidence >= t
    return 0.0 if t == NEVER else float(min(1.0, np.nextafter(-t, np.inf)))


def threshold_for_budget(confidences: Sequence[float], budget_usd: float, frontier_usd: float) -> float:
    """The threshold whose escalations keep the mean frontier spend per input at most `budget_usd`, when one
    escalation costs about `frontier_usd` (the local run is paid either way)."""
    if budget_usd < 0 or frontier_usd <= 0:
        raise ValueError("budget_usd must be >= 0 and frontier_usd > 0")
    c = np.sort(np.asarray(confidences, dtype=float))
    k = min(c.size, int(math.floor(budget_usd / frontier_usd * c.size + 1e-9)))
    while k > 0 and k < c.size and c[k - 1] == c[k]:  # ties go together: stay within the budget
        k -= 1
    return 0.0 if k == 0 else float(np.nextafter(c[k - 1], np.inf))


def threshold_for_quality(confidences: Sequence[float], local_correct: Sequence[bool], target: float,
                          frontier_correct: Sequence[bool] | None = None) -> float:
    """The smallest threshold whose escalations reach accuracy `target` on this labeled sample (the frontier is
    taken as right unless `frontier_correct` says otherwise); 1.0 if none does (everything escalates)."""
    c = np.asarray(confidences, dtype=float)
    yl = np.asarray(local_correct, dtype=float)
    yf = np.ones_like(yl) if frontier_correct is None else np.asarray(frontier_correct, dtype=float)
    order = np.argsort(c, kind="stable")
    acc = (yl.sum() + np.concatenate([[0.0], np.cumsum((yf - yl)[order])])) / len(c)
    for k in range(len(c) + 1):
        if acc[k] >= target - 1e-12 and (k == len(c) or k == 0 or c[order[k - 1]] < c[order[k]]):
            return 0.0 if k == 0 else float(np.nextafter(c[order[k - 1]], np.inf))
    return 1.0
