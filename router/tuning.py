"""Optuna search over scorer families and hyper-parameters, with honest nested CV.

The objective is APGR (area under the PGR-vs-frontier-share curve) averaged over
grouped, stratified K folds. Queries with equal text or group never straddle folds.

`nested_cv` tunes a fresh study inside each outer training fold and predicts the
outer test fold with the winner, so the reported out-of-fold numbers come from
folds the search never saw.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from openfirst.core.errors import ConfigError
from openfirst.router.inference import FAMILIES
from openfirst.router.metrics import routing_curve
from openfirst.router.records import frontier_or_right

if TYPE_CHECKING:  # scikit-learn loads with the scorers, when training starts, not with the CLI's parser
    from openfirst.router.scorer import EnsembleScorer, RoutingScorer

FEATURE_SETS = {"emb": ("embedding",), "emb+stats": ("embedding", "text_stats"), "stats": ("text_stats",)}


class TuneOptions(BaseModel):
    """Search settings (bounded; unknown keys are refused)."""

    model_config = ConfigDict(extra="forbid")

    trials: int = Field(40, ge=1, le=100_000, description="Optuna trials per study")
    outer_folds: int = Field(5, ge=2, le=20)
    inner_folds: int = Field(3, ge=2, le=10)
    seed: int = 0
    storage: str | None = Field(None, description="SQLite file path or any SQLAlchemy RDB URL")
    study_name: str = Field("openfirst", min_length=1, max_length=200)
    families: tuple[str, ...] = FAMILIES
    label_modes: tuple[str, ...] = ("local", "gain")
    timeout_s: float | None = Field(None, gt=0)
    ensemble_size: int = Field(5, ge=1, le=50, description="average the scores of this many best trials")
    show_progress: bool = True

    def storage_url(self) -> str | None:
        if self.storage is None or "://" in self.storage:
            return self.storage
        return f"sqlite:///{self.storage}"


@dataclass
class Data:
    """Training matrix for the search: embeddings, texts, labels, fold groups."""

    embeddings: np.ndarray
    texts: list[str]
    local_score: np.ndarray
    frontier_score: np.ndarray  # NaN-free: missing frontier scores are taken as 1.0 (frontier right)
    groups: np.ndarray
    has_frontier: bool

    def take(self, idx: np.ndarray) -> "Data":
        return Data(self.embeddings[idx], [self.texts[i] for i in idx], self.local_score[idx],
                    self.frontier_score[idx], self.groups[idx], self.has_frontier)


def make_data(embeddings: np.ndarray, texts: Sequence[str], local_score: np.ndarray,
              frontier_score: np.ndarray, groups: np.ndarray) -> Data:
    has_frontier = not np.isnan(frontier_score).any()
    fs = frontier_or_right(frontier_score)
    return Data(np.asarray(embeddings), list(texts), np.asarray(local_score, float), fs, np.asarray(groups),
                has_frontier)


def folds(data: Data, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped, stratified folds; fewer when the data cannot fill k."""
    from sklearn.model_selection import StratifiedGroupKFold

    from openfirst.router.scorer import binarize

    y = binarize(data.local_score)
    n_groups = len(np.unique(data.groups))
    minority = int(np.bincount(y, minlength=2).min())
    k_eff = min(k, n_groups, max(minority, 2))
    if n_groups < 2 or minority < 1:
        raise ConfigError(
            f"cannot cross-validate: {n_groups} distinct query group(s), {minority} record(s) of the rarer outcome",
            hint="the log needs successes and failures of the local model across at least 2 query groups",
        )
    splitter = StratifiedGroupKFold(k_eff, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y, data.groups))


def suggest(trial, has_frontier: bool, families: Sequence[str], label_modes: Sequence[str]) -> dict[str, Any]:
    modes = [m for m in label_modes if has_frontier or m == "local"]
    label = trial.suggest_categorical("label", modes)
    feats = trial.suggest_categorical("features", list(FEATURE_SETS))
    family = trial.suggest_categorical("family", list(families))
    if family == "logreg":
        params = {"C": trial.suggest_float("logreg_C", 1e-5, 10.0, log=True)}
    elif family == "knn":
        params = {"k": trial.suggest_int("knn_k", 5, 300, log=True)}
    elif family == "mlp":
        params = {"hidden": trial.suggest_categorical("mlp_hidden", [16, 32, 64]),
                  "alpha": trial.suggest_float("mlp_alpha", 1e-2, 300.0, log=True),
                  "pca": trial.suggest_categorical("mlp_pca", [16, 32, 64])}
    else:
        raise ConfigError(f"unknown family {family!r}; known: {FAMILIES}")
    return {"label": label, "family": family, "params": params, "features": list(FEATURE_SETS[feats])}


def config_from_params(p: dict[str, Any]) -> dict[str, Any]:
    """Rebuild a scorer config from an Optuna trial's params (for a study's best trial)."""
    family = p["family"]
    params = {"logreg": lambda: {"C": p["logreg_C"]}, "knn": lambda: {"k": p["knn_k"]},
              "mlp": lambda: {"hidden": p["mlp_hidden"], "alpha": p["mlp_alpha"], "pca": p["mlp_pca"]}}[family]()
    return {"label": p["label"], "family": family, "params": params, "features": list(FEATURE_SETS[p["features"]])}


def make_scorer(config: dict[str, Any], seed: int, calibrate: bool = True) -> RoutingScorer:
    from openfirst.router.scorer import RoutingScorer

    return RoutingScorer(config["label"], config["family"], config["params"], config["features"], seed=seed,
                         calibrate=calibrate)


def fit_scorer(config: dict[str, Any], data: Data, seed: int, calibrate: bool = True) -> RoutingScorer:
    scorer = make_scorer(config, seed, calibrate)
    return scorer.fit(data.embeddings, data.texts, data.local_score,
                      data.frontier_score if config["label"] == "gain" else None, data.groups)


def fit_ensemble(configs: Sequence[dict[str, Any]], data: Data, seed: int) -> EnsembleScorer:
    from openfirst.router.scorer import EnsembleScorer

    return EnsembleScorer([make_scorer(c, seed) for c in configs]).fit(
        data.embeddings, data.texts, data.local_score, data.frontier_score, data.groups)


def cv_apgr(config: dict[str, Any], data: Data, splits, seed: int, report: Callable[[int, float], None] | None = None
            ) -> float:
    """Mean APGR over the given splits; `report(step, running_mean)` may raise to prune."""
    values = []
    for step, (tr, te) in enumerate(splits):
        scorer = fit_scorer(config, data.take(tr), seed, calibrate=False)
        test = data.take(te)
        score, _ = scorer.score_and_p(test.embeddings, test.texts)
        apgr = routing_curve(score, test.local_score, test.frontier_score).apgr()
        values.append(0.5 if math.isnan(apgr) else apgr)
        if report:
            report(step, float(np.mean(values)))
    return float(np.mean(values))


@dataclass
class StudyResult:
    configs: list[dict[str, Any]]  # best first, distinct
    values: list[float]
    n_trials: int


def tune(data: Data, opts: TuneOptions, study_name: str, progress=None) -> StudyResult:
    """Run one Optuna study (TPE with seed, median pruning) on `data`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    splits = folds(data, opts.inner_folds, opts.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=opts.seed, multivariate=True, group=True)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=8, n_warmup_steps=0)
    study = optuna.create_study(study_name=study_name, storage=opts.storage_url(), sampler=sampler, pruner=pruner,
                                direction="maximize", load_if_exists=True)

    def objective(trial) -> float:
        config = suggest(trial, data.has_frontier, opts.families, opts.label_modes)

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        return cv_apgr(config, data, splits, opts.seed, report)

    callbacks = [lambda study, trial: progress.update(1)] if progress is not None else []
    study.optimize(objective, n_trials=opts.trials, timeout=opts.timeout_s, callbacks=callbacks)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ConfigError(f"study {study_name!r} finished no trial", hint="raise --trials or the timeout")
    # the best trial of each structure (label mode, family, features), best structures first:
    # a diverse ensemble is robust to the selection noise of a single winner
    configs, values, seen = [], [], set()
    for t in sorted(done, key=lambda t: -t.value):
        config = config_from_params(t.params)
        key = (config["label"], config["family"], tuple(config["features"]))
        if key not in seen:
            seen.add(key)
            configs.append(config)
            values.append(float(t.value))
        if len(configs) == opts.ensemble_size:
            break
    return StudyResult(configs, values, len(study.trials))


@dataclass
class NestedResult:
    """Out-of-fold routing scores and P(success) from folds each search never saw."""

    score: np.ndarray
    p_success: np.ndarray
    fold_of: np.ndarray
    fold_results: list[StudyResult] = field(default_factory=list)


def oof_of_configs(configs: Sequence[dict[str, Any]], data: Data, opts: TuneOptions) -> NestedResult:
    """Out-of-fold predictions of one fixed ensemble (tuned beforehand on all the data).

    Cheaper than `nested_cv`, but optimistic: the configurations were selected on these
    same queries. `openfirst train` uses it unless `--nested`; benchmarks use `nested_cv`.
    """
    n = len(data.texts)
    score, p, fold_of = np.zeros(n), np.zeros(n), np.full(n, -1)
    for k, (tr, te) in enumerate(folds(data, opts.outer_folds, opts.seed)):
        test = data.take(te)
        score[te], p[te] = fit_ensemble(configs, data.take(tr), opts.seed).score_and_p(test.embeddings, test.texts)
        fold_of[te] = k
    return NestedResult(score, p, fold_of, [])


def nested_cv(data: Data, opts: TuneOptions, progress=None) -> NestedResult:
    n = len(data.texts)
    score, p = np.zeros(n), np.zeros(n)
    fold_of = np.full(n, -1)
    results = []
    for k, (tr, te) in enumerate(folds(data, opts.outer_folds, opts.seed)):
        res = tune(data.take(tr), opts, f"{opts.study_name}-outer{k}", progress)
        scorer = fit_ensemble(res.configs, data.take(tr), opts.seed)
        test = data.take(te)
        score[te], p[te] = scorer.score_and_p(test.embeddings, test.texts)
        fold_of[te] = k
        results.append(res)
    return NestedResult(score, p, fold_of, results)
