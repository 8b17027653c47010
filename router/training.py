"""Training pipeline: outcome log -> embeddings -> nested-CV tuning -> operating point -> Router."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from openfirst.router.api import Router
from openfirst.router.embeddings import Embedder
from openfirst.core.errors import ConfigError
from openfirst.router.metrics import routing_curve, summarize
from openfirst.router.policy import Target, choose_operating_point, fill_costs, threshold_for_share
from openfirst.router.records import OutcomeLog
from openfirst.router.tuning import (Data, NestedResult, TuneOptions, fit_ensemble, make_data, nested_cv, oof_of_configs,
                           tune)


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
        from openfirst.router.report import build_report

        return build_report(self.nested.score, self.data.local_score, self.data.frontier_score, self.local_cost,
                            self.frontier_cost, self.data.texts, target)


def check_trainable(log: OutcomeLog) -> None:
    if not log.has_local:
        raise ConfigError(f"{log.source}: every record needs local_score to train a router")
    if len(log) < 20:
        raise ConfigError(f"{log.source}: {len(log)} records are too few to train and cross-validate a router",
                          hint="log at least a few hundred queries with their outcomes")


def prepare(log: OutcomeLog, embedder: Embedder, prices: tuple[float, float]
            ) -> tuple[Data, np.ndarray, np.ndarray]:
    check_trainable(log)
    emb = embedder.encode(log.queries)
    data = make_data(emb, log.queries, log.local_score, log.frontier_score, log.fold_groups())
    lc, fc = fill_costs(len(log), log.local_cost, log.frontier_cost, *prices)
    return data, lc, fc


def _bar(total: int, desc: str, opts: TuneOptions):
    return tqdm(total=total, desc=desc, unit="trial", disable=not opts.show_progress)


def cross_validate(log: OutcomeLog, embedder: Embedder, opts: TuneOptions, prices: tuple[float, float]
                   ) -> CrossValidated:
    """Nested CV: honest out-of-fold scores (a study per outer fold)."""
    data, lc, fc = prepare(log, embedder, prices)
    start = time.perf_counter()
    with _bar(opts.trials * opts.outer_folds, "nested CV trials", opts) as bar:
        nested = nested_cv(data, opts, bar)
    return CrossValidated(log, data, nested, lc, fc, time.perf_counter() - start)


def train_router(log: OutcomeLog, embedder: Embedder, opts: TuneOptions, target: Target,
                 prices: tuple[float, float], nested: bool = False
                 ) -> tuple[Router, dict[str, Any], CrossValidated]:
    """Tune on the whole log and fit the shipped ensemble.

    The threshold comes from out-of-fold scores: of the tuned ensemble refitted per
    fold (default), or with `nested=True` from nested CV, which the search never saw.
    """
    t0 = time.perf_counter()
    if nested:
        cv = cross_validate(log, embedder, opts, prices)
        data = cv.data
    else:
        data, lc, fc = prepare(log, embedder, prices)
    t1 = time.perf_counter()
    with _bar(opts.trials, "study", opts) as bar:
        final = tune(data, opts, f"{opts.study_name}-final", bar)
    if not nested:
        cv = CrossValidated(log, data, oof_of_configs(final.configs, data, opts), lc, fc, 0.0)
    scorer = fit_ensemble(final.configs, data, opts.seed)
    full_score, _ = scorer.score_and_p(data.embeddings, data.texts)
    op_oof = choose_operating_point(cv.nested.score, data.local_score, data.frontier_score,
                                    cv.local_cost, cv.frontier_cost, target)
    # the shipped model's threshold routes the same share of the training queries as the OOF operating point
    threshold = threshold_for_share(full_score, op_oof.frontier_share)
    report = {
        "records": len(log),
        "skipped_bad_lines": log.skipped,
        "source": log.source,
        "has_frontier_score": log.has_frontier,
        "cv": {"kind": "nested" if nested else "tuned on all data, then out-of-fold refits (optimistic)",
               "outer_folds": opts.outer_folds, "inner_folds": opts.inner_folds, "trials": opts.trials,
               "seed": opts.seed, "ensemble_size": opts.ensemble_size,
               "fold_configs": [r.configs for r in cv.nested.fold_results]},
        "metrics": summarize(cv.curve()),
        "operating_point": op_oof.model_dump(),
        "final_configs": final.configs,
        "final_inner_apgr": final.values,
        "seconds": {"embedding_and_nested_cv": t1 - t0, "study_and_fit": time.perf_counter() - t1},
    }
    config = {
        "embedder": {"model": embedder.model_id, "dimension": int(data.embeddings.shape[1]), "normalized": True},
        "operating_point": op_oof.model_dump(),
        "training": report,
    }
    return Router(scorer, threshold, config, embedder), report, cv
