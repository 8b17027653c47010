"""Accuracy against frontier share for each escalation policy, from per-utterance records, without leakage.

Policies rank utterances by how much they need the frontier; sending the top share c gives accuracy acc(c)
(`router.metrics.routing_curve`: ties broken in expectation, APGR exact). Everything learned is cross-fitted:
for each outer fold, the pre-hoc router is trained on the other folds' local outcomes (its scores on those folds
come from an inner cross-validation), the combination of router score and confidence is fitted on those inner
scores, and only then applied to the held-out fold.

- router: the pre-hoc router's P(local fails), from the query text alone;
- cascade: invalid local answers first, then the least confident;
- cascade routing: inputs the router is sure about (on the training folds, local accuracy <= `SURE_FAIL_ACCURACY`
  above its score) go first, without a local run; the rest are ranked by a logistic combination of router score
  and confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from openfirst.router.metrics import RoutingCurve, routing_curve

SURE_FAIL_ACCURACY = 0.10
MIN_SURE = 5


def auroc(score: Sequence[float], label: Sequence[bool]) -> float:
    """P(score of a positive > score of a negative), ties counted half; nan with one class only."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(label, dtype=int)
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, np.asarray(score, dtype=float)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _router_scores(X: np.ndarray, texts: list[str], y: np.ndarray, train: np.ndarray, test: np.ndarray,
                   seed: int) -> np.ndarray:
    from openfirst.router.scorer import RoutingScorer

    scorer = RoutingScorer(label="local", seed=seed).fit(X[train], [texts[i] for i in train], y[train])
    return scorer.score_and_p(X[test], [texts[i] for i in test])[0]


def _sure_fail_threshold(router: np.ndarray, y: np.ndarray) -> float:
    """The lowest router score above which local accuracy stays <= SURE_FAIL_ACCURACY (inf: no such set)."""
    order = np.argsort(-router, kind="stable")
    acc = np.cumsum(y[order]) / np.arange(1, len(y) + 1)
    ok = np.flatnonzero((acc <= SURE_FAIL_ACCURACY) & (np.arange(1, len(y) + 1) >= MIN_SURE))
    return float(router[order[ok[-1]]]) if ok.size else float("inf")


def _features(router: np.ndarray, conf: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    return np.column_stack([_logit(router), _logit(conf), invalid.astype(float)])


@dataclass
class CrossFitted:
    router: np.ndarray  # P(local fails) from the pre-hoc router, per utterance (held-out)
    combined: np.ndarray  # P(local fails) from router score + confidence (held-out)
    skip: np.ndarray  # bool: cascade routing sends it to the frontier without a local run


def cross_fit(X: np.ndarray, texts: list[str], y: np.ndarray, conf: np.ndarray, invalid: np.ndarray,
              folds: int = 5, seed: int = 0) -> CrossFitted:
    """Nested out-of-fold router scores, combined estimates and pre-hoc skips for every utterance."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    n = len(y)
    router, combined, skip = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    outer = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for train, test in outer.split(X, y):
        inner_router = np.zeros(len(train))
        inner = StratifiedKFold(folds, shuffle=True, random_state=seed + 1)
        for itr, ite in inner.split(X[train], y[train]):
            inner_router[ite] = _router_scores(X, texts, y, train[itr], train[ite], seed)
        router[test] = _router_scores(X, texts, y, train, test, seed)
        head = LogisticRegression(C=1.0, max_iter=1000).fit(
            _features(inner_router, conf[train], invalid[train]), 1 - y[train])
        combined[test] = head.predict_proba(_features(router[test], conf[test], invalid[test]))[:, 1]
        skip[test] = router[test] >= _sure_fail_threshold(inner_router, y[train])
    return CrossFitted(router, combined, skip)


def priorities(fit: CrossFitted, conf: np.ndarray, invalid: np.ndarray) -> dict[str, np.ndarray]:
    cascade = np.where(invalid, 2.0, 1.0 - conf)
    routing = np.where(fit.skip, 3.0 + fit.router, np.where(invalid, 2.0, fit.combined))
    return {"router": fit.router, "cascade": cascade, "cascade_routing": routing}


def local_run_share(policy: str, fit: CrossFitted, priority: np.ndarray, share: float) -> float:
    """Share of utterances the local model runs on at frontier share `share` under `policy`."""
    n = len(priority)
    if policy == "cascade":
        return 1.0
    k = int(round(share * n))
    sent = np.argsort(-priority, kind="stable")[:k]
    if policy == "router":
        return 1.0 - k / n
    return 1.0 - float(fit.skip[sent].sum()) / n  # cascade routing: only the router's sure ones skip it


def curves(prio: dict[str, np.ndarray], y_local: np.ndarray, y_frontier: np.ndarray) -> dict[str, RoutingCurve]:
    return {name: routing_curve(p, y_local, y_frontier) for name, p in prio.items()}
