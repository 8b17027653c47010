"""Training pipeline: outcome log -> embeddings -> nested-CV tuning -> operating point -> Router."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from router.api import Router
from router.embeddings import Embedder
from router.errors import ConfigError
from router.metrics import routing_curve, summarize
from router.policy import OperatingPoint, Target, choose_operating_point, fill_costs
from router.records import OutcomeLog
from router.tuning import Data, NestedResult, TuneOptions, fit_ensemble, make_data, nested_cv, tune


@dataclass
class CrossValidated:
    """Honest out-of-fold routing scores for one log, and what made them."""

    log: OutcomeLog
    data: Data
    nested: NestedResult
    local_cost: np.ndarray
    frontier_cost: np.ndarray
    seconds: float

    def curve(self):
        return routing_curve(self.nested.score, self.data.local_score, self.data.frontier_score, self.local_cost,
                             self.frontier_cost)

    def report(self, target: Target) -> dict[str, Any]:
        from router.report import build_report

        return build_report(self.nested.score, self.data.local_score, self.data.frontier_score, self.local_cost,
                            self.frontier_cost, self.data.texts, target)


def check_trainable(log: OutcomeLog) -> None:
    if not log.has_local:
        raise ConfigError(f"{log.source}: every record needs local_score to train a router")
    if len(log) < 20:
        raise ConfigError(f"{log.source}: {len(log)} records are too few to train and cross-validate a router",
                          hint="log at least a few hundred queries with their outcomes")


def cross_validate(log: OutcomeLog, embedder: Embedder, opts: TuneOptions, prices: tuple[float, float]
                   ) -> CrossValidated:
    check_trainable(log)
    start = time.perf_counter()
    emb = embedder.encode(log.queries)
    data = make_data(emb, log.queries, log.local_score, log.frontier_score, log.fold_groups())
    lc, fc = fill_costs(len(log), log.local_cost, log.frontier_cost, *prices)
    with tqdm(total=opts.trials * opts.outer_folds, desc="nested CV trials", unit="trial",
              disable=not opts.show_progress) as bar:
        nested = nested_cv(data, opts, bar)
    return CrossValidated(log, data, nested, lc, fc, time.perf_counter() - start)


def train_router(log: OutcomeLog, embedder: Embedder, opts: TuneOptions, target: Target,
                 prices: tuple[float, float]) -> tuple[Router, dict[str, Any], CrossValidated]:
    """Tune and fit on the whole log; threshold and expected metrics from honest OOF scores."""
    cv = cross_validate(log, embedder, opts, prices)
    start = time.perf_counter()
    with tqdm(total=opts.trials, desc="final study", unit="trial", disable=not opts.show_progress) as bar:
        final = tune(cv.data, opts, f"{opts.study_name}-final", bar)
    scorer = fit_ensemble(final.configs, cv.data, opts.seed)
    # OOF scores come from per-fold winners; rescale them onto the final scorer's score
    # scale by matching quantiles, so the share/quality target transfers to the final model.
    full_score, _ = scorer.score_and_p(cv.data.embeddings, cv.data.texts)
    op_oof = choose_operating_point(cv.nested.score, cv.data.local_score, cv.data.frontier_score,
                                    cv.local_cost, cv.frontier_cost, target)
    threshold = _transfer_threshold(op_oof, cv.nested.score, full_score)
    curve = cv.curve()
    report = {
        "records": len(log),
        "skipped_bad_lines": log.skipped,
        "source": log.source,
        "has_frontier_score": log.has_frontier,
        "cv": {"outer_folds": opts.outer_folds, "inner_folds": opts.inner_folds, "trials": opts.trials,
               "seed": opts.seed, "fold_configs": [r.configs for r in cv.nested.fold_results],
               "fold_inner_apgr": [r.value for r in cv.nested.fold_results]},
        "metrics": summarize(curve),
        "operating_point": op_oof.model_dump(),
        "final_configs": final.configs,
        "final_inner_apgr": final.values,
        "seconds": {"cross_validation": cv.seconds, "final": time.perf_counter() - start},
    }
    config = {
        "embedder": {"model": embedder.model_id, "dimension": int(cv.data.embeddings.shape[1]), "normalized": True},
        "operating_point": op_oof.model_dump(),
        "training": report,
    }
    return Router(scorer, threshold, config, embedder), report, cv


def _transfer_threshold(op: OperatingPoint, oof_score: np.ndarray, full_score: np.ndarray) -> float:
    """The final model's threshold routing the same share of training queries as the OOF operating point."""
    if op.frontier_share <= 0:
        return float(max(full_score.max(), 0) + 1.0)
    return float(np.quantile(full_score, 1.0 - op.frontier_share, method="higher"))
