"""The cascade: run the local model first, escalate to the frontier when its answer fails validation or a field's
confidence is below a threshold; optionally a pre-hoc router sends inputs straight to the frontier when it is
sure the local model would fail (cascade routing). Pinned (private) inputs never escalate.

Every outcome says which stage decided (`decided_by`: router, cascade, privacy, fallback), why (`reason`), and
carries the local answer's confidence when the local model ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from openfirst.compiler.confidence import Confidence
from openfirst.compiler.program import Failure, Program, Result

DecidedBy = Literal["router", "cascade", "privacy", "fallback"]


class CascadeOptions(BaseModel):
    """`threshold`: escalate a local answer whose confidence is below it (0 turns the confidence check off).
    `scope`: the output's confidence, or the least confident field's. `router_skip`: with a router, inputs whose
    predicted P(local fails) is at least this go straight to the frontier (None: the router is not consulted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(0.0, ge=0.0, le=1.0)
    scope: Literal["output", "field"] = "output"
    escalate_invalid: bool = True
    router_skip: float | None = Field(None, ge=0.0, le=1.0)


@dataclass
class CascadeOutcome:
    result: Result | Failure
    decided_by: DecidedBy
    reason: str  # confident | low_confidence | invalid | no_confidence | router_sure | pinned
    escalated: bool
    confidence: Confidence | None = None  # the local answer's, when the local model ran
    local: Result | Failure | None = None


def score_of(conf: Confidence | None, scope: str) -> float | None:
    if conf is None:
        return None
    if scope == "field":
        return min(conf.fields.values(), default=conf.overall)
    return conf.overall


class Cascade:
    """`local` and `frontier` run the same task; `router_fail_p(texts)` -> P(local fails) per text (optional)."""

    def __init__(self, local: Program, frontier: Program | None, options: CascadeOptions = CascadeOptions(),
                 router_fail_p: Callable[[Sequence[str]], np.ndarray] | None = None):
        self.local, self.frontier, self.options = local, frontier, options
        self.router_fail_p = router_fail_p

    def run_many(self, texts: Sequence[str], pinned: Sequence[bool] | None = None) -> list[CascadeOutcome]:
        n = len(texts)
        pinned = list(pinned) if pinned is not None else [False] * n
        out: list[CascadeOutcome | None] = [None] * n
        skip = [False] * n
        if self.router_fail_p is not None and self.options.router_skip is not None and self.frontier is not None:
            free = [i for i in range(n) if not pinned[i]]
            if free:
                p = self.router_fail_p([texts[i] for i in free])
                for i, pi in zip(free, p):
                    skip[i] = bool(pi >= self.options.router_skip)
        run_local = [i for i in range(n) if not skip[i]]
        local = dict(zip(run_local, self.local.run_many([texts[i] for i in run_local]))) if run_local else {}
        escalate: dict[int, tuple[DecidedBy, str]] = {i: ("router", "router_sure") for i in range(n) if skip[i]}
        for i, r in local.items():
            conf = r.confidence if isinstance(r, Result) else None
            if pinned[i]:
                out[i] = CascadeOutcome(r, "privacy", "pinned", False, conf, r)
                continue
            reason = self._verdict(r)
            if reason in ("confident", "no_confidence") or self.frontier is None:
                out[i] = CascadeOutcome(r, "cascade", reason, False, conf, r)
            else:
                escalate[i] = ("cascade", reason)
        if escalate:
            order = sorted(escalate)
            answers = self.frontier.run_many([texts[i] for i in order])
            for i, f in zip(order, answers):
                who, reason = escalate[i]
                mine = local.get(i)
                if isinstance(f, Failure) and isinstance(mine, Result):  # the frontier failed: the local answer
                    out[i] = CascadeOutcome(mine, "fallback", reason, False, mine.confidence, mine)
                else:
                    conf = mine.confidence if isinstance(mine, Result) else None
                    out[i] = CascadeOutcome(f, who, reason, True, conf, mine)
        return out  # type: ignore[return-value]

    def _verdict(self, r: Result | Failure) -> str:
        if isinstance(r, Failure):
            return "invalid" if self.options.escalate_invalid else "confident"
        score = score_of(r.confidence, self.options.scope)
        if score is None:
            return "no_confidence"
        return "low_confidence" if score < self.options.threshold else "confident"


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
