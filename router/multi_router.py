"""A router over N models: per model, P(success | query) from one multi-output model of the query's features (a
kNN, an MLP, or their blend), and an expected cost;
a decision picks the model maximising P(success) - lambda * cost (CARROT's trade-off), with lambda set for a target
mean cost, a target accuracy, or a budget.

The model (family, its parameters, the feature groups) is chosen by an Optuna search on inner grouped folds,
scored by the RouterBench AIQ of the decisions it leads to; the honest estimate is nested (outer grouped folds, a
search inside each). Inference is numpy only, like the two-model router's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from openfirst.router.errors import ArtifactError
from openfirst.router.routerbench import aiq, choose, lambdas_for, router_points, single_points

CONFIG_FILE, ARRAYS_FILE = "multi_router.json", "multi_router_arrays.npz"


@dataclass
class MultiData:
    embeddings: np.ndarray
    texts: list[str]
    scores: np.ndarray  # (n, models), true scores in [0, 1]
    costs: np.ndarray  # (n, models), USD per query
    groups: np.ndarray  # integer group per record (identical queries share one)
    models: list[str]
    stats: np.ndarray | None = None  # the texts' statistics, computed once (every search trial reads them)

    def __post_init__(self) -> None:
        if self.stats is None:
            from openfirst.router.features import text_stat_matrix

            self.stats = text_stat_matrix(self.texts)

    def take(self, idx: np.ndarray) -> "MultiData":
        return MultiData(self.embeddings[idx], [self.texts[i] for i in idx], self.scores[idx], self.costs[idx],
                         self.groups[idx], self.models, self.stats[idx])

    @property
    def complete(self) -> np.ndarray:
        """Rows every model has a score for (NaN: the model did not run it): what evaluation can use; training
        uses every row."""
        return ~np.isnan(self.scores).any(axis=1)

    def mean_cost(self) -> np.ndarray:
        """Each model's mean known cost per query."""
        return np.nanmean(self.costs, axis=0)


def grouped_folds(data: MultiData, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import GroupKFold

    k = min(k, len(np.unique(data.groups)))
    order = np.random.default_rng(seed).permutation(len(data.texts))  # GroupKFold is deterministic: shuffle first
    splits = GroupKFold(k).split(order, groups=data.groups[order])
    return [(np.sort(order[tr]), np.sort(order[te])) for tr, te in splits]


def features(config: dict[str, Any], embeddings: np.ndarray, texts: Sequence[str],
             stats: np.ndarray | None = None) -> np.ndarray:
    from openfirst.router.features import build_features

    return build_features(config["features"], embeddings, texts, stats)


def fit_model(config: dict[str, Any], data: MultiData, seed: int) -> dict[str, np.ndarray]:
    """The fitted arrays of a multi-output model of every model's success (score >= 0.5): `knn` (neighbours'
    mean scores), `mlp` (one hidden ReLU layer, a sigmoid output per model) or `blend` (their weighted mean). A
    score a model does not have (NaN: it did not run that query) is left out of the kNN's means and, for the MLP,
    filled with its nearest known neighbours' mean."""
    X = features(config, data.embeddings, data.texts, data.stats)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale < 1e-12] = 1.0
    d = data.embeddings.shape[1] if "embedding" in config["features"] else 0
    mean[:d], scale[:d] = 0.0, 1.0  # embeddings as they are (cosine geometry); text statistics standardised
    Z = (X - mean) / scale
    state: dict[str, np.ndarray] = {"mean": mean, "scale": scale}
    p = config["params"]
    known = ~np.isnan(data.scores)
    if not known.any(axis=0).all():
        from openfirst.core.errors import ConfigError

        raise ConfigError(f"no record scores model(s) {[m for m, k in zip(data.models, known.any(axis=0)) if not k]}")
    scores = np.where(known, data.scores, 0.0)
    if config["family"] in ("knn", "blend"):
        norms = np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
        state.update({"points": (Z / norms).astype(np.float32), "scores": scores.astype(np.float32),
                      "k": np.array([min(int(p["k"]), len(Z))]), "prior": np.nanmean(data.scores, axis=0)})
        if not known.all():
            state["known"] = known.astype(np.float32)
    if config["family"] in ("mlp", "blend"):
        import warnings

        from sklearn.neural_network import MLPClassifier

        y = (_impute(Z, data.scores, known) >= 0.5).astype(int)
        y[:, y.min(axis=0) == y.max(axis=0)] = 0  # a model always right or always wrong: constant after all
        model = MLPClassifier(hidden_layer_sizes=(int(p["hidden"]),), alpha=float(p["alpha"]), max_iter=200,
                              early_stopping=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter is expected and harmless
            model.fit(Z, y)
        state.update({"w0": model.coefs_[0], "b0": model.intercepts_[0], "w1": model.coefs_[1],
                      "b1": model.intercepts_[1]})
    if config["family"] == "blend":
        state["weight"] = np.array([float(p["weight"])])
    return state


def model_proba(family: str, state: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """P(success) per query and model from a fitted multi-output model's arrays (numpy only)."""
    Z = (np.asarray(X, dtype=np.float64) - state["mean"]) / state["scale"]
    if family == "knn":
        return _knn(state, Z)
    if family == "mlp":
        return _mlp(state, Z)
    if family == "blend":
        w = float(state["weight"][0])
        return w * _knn(state, Z) + (1.0 - w) * _mlp(state, Z)
    raise ArtifactError(f"unknown multi-model family {family!r}")


def _knn(state: dict[str, np.ndarray], Z: np.ndarray) -> np.ndarray:
    norms = np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
    sims = (state["points"] @ (Z / norms).astype(np.float32).T).T
    k = int(state["k"][0])
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    # Bayesian smoothing toward each model's rate keeps probabilities off 0 and 1; neighbours a model did not run
    # count for nothing (`known`, absent where every record had every score)
    known = state["known"][idx].sum(axis=1) if "known" in state else float(k)
    return (state["scores"][idx].sum(axis=1) + state["prior"]) / (known + 1.0)


def _impute(Z: np.ndarray, scores: np.ndarray, known: np.ndarray, k: int = 10) -> np.ndarray:
    """Scores with each missing one filled by the mean of its model's known scores among the record's nearest
    records (cosine), or the model's mean where none is near."""
    if known.all():
        return scores
    out = scores.copy()
    unit = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
    for j in range(scores.shape[1]):
        have, lack = np.flatnonzero(known[:, j]), np.flatnonzero(~known[:, j])
        if not len(lack):
            continue
        kk = min(k, len(have))
        sims = unit[lack] @ unit[have].T
        near = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        out[lack, j] = scores[have, j][near].mean(axis=1)
    return out


def _mlp(state: dict[str, np.ndarray], Z: np.ndarray) -> np.ndarray:
    from openfirst.router.inference import sigmoid

    h = np.maximum(Z @ state["w0"] + state["b0"], 0.0)
    return sigmoid(h @ state["w1"] + state["b1"])


def predict(config: dict[str, Any], state: dict[str, np.ndarray], embeddings: np.ndarray, texts: Sequence[str],
            stats: np.ndarray | None = None) -> np.ndarray:
    return model_proba(config["family"], state, features(config, embeddings, texts, stats))


def check_state(family: str, state: dict[str, np.ndarray], models: int) -> None:
    """Refuse missing, non-finite or misshapen arrays (a damaged artifact)."""
    need = {"knn": ("points", "scores", "k", "prior"), "mlp": ("w0", "b0", "w1", "b1")}  # "known": optional
    names = ("mean", "scale", *need.get(family, ()), *(need["knn"] + need["mlp"] + ("weight",)
                                                        if family == "blend" else ()))
    if family not in ("knn", "mlp", "blend"):
        raise ArtifactError(f"unknown multi-model family {family!r}")
    for name in names:
        arr = state.get(name)
        if arr is None or arr.dtype.kind not in "fiu" or arr.size == 0 or not np.isfinite(arr).all():
            raise ArtifactError(f"{family} model: array {name!r} is missing, empty, not numeric or not finite")
    if "scores" in state and state["scores"].shape[1] != models or "w1" in state and state["w1"].shape[1] != models:
        raise ArtifactError(f"{family} model: arrays are not for {models} models")


def cost_range(data: MultiData) -> tuple[float, float]:
    data = data.take(np.flatnonzero(data.complete))
    singles = single_points(data.scores, data.costs, data.models).values()
    return min(p.cost for p in singles), max(p.cost for p in singles)


def fold_aiq(p: np.ndarray, test: MultiData, expected_cost: np.ndarray, c_range: tuple[float, float]) -> float:
    """AIQ of the decisions on predicted P and the expected costs, measured on the true scores and costs."""
    exp = np.broadcast_to(expected_cost, p.shape)
    return aiq(router_points(p, exp, test.scores, test.costs), *c_range)


def suggest(trial) -> dict[str, Any]:
    family = trial.suggest_categorical("family", ["knn", "mlp", "blend"])
    feats = trial.suggest_categorical("features", ["embedding", "embedding+text_stats"]).split("+")
    params: dict[str, Any] = {}
    if family in ("knn", "blend"):
        params["k"] = trial.suggest_int("k", 5, 200, log=True)
    if family in ("mlp", "blend"):
        params["hidden"] = trial.suggest_categorical("hidden", [64, 128, 256])
        params["alpha"] = trial.suggest_float("alpha", 1e-4, 1.0, log=True)
    if family == "blend":
        params["weight"] = trial.suggest_float("weight", 0.2, 0.8)
    return {"family": family, "params": params, "features": feats}


def tune(data: MultiData, trials: int, inner_folds: int, seed: int, timeout_s: float | None = None
         ) -> tuple[dict[str, Any], float]:
    """The head configuration with the best mean inner-fold AIQ (an Optuna TPE search)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    splits = grouped_folds(data, inner_folds, seed)
    c_range = cost_range(data)

    def objective(trial) -> float:
        config = suggest(trial)
        values = []
        for tr, te in splits:
            te = te[data.complete[te]]  # trained on every record, scored on those every model ran
            if len(te):
                train, test = data.take(tr), data.take(te)
                p = predict(config, fit_model(config, train, seed), test.embeddings, test.texts, test.stats)
                values.append(fold_aiq(p, test, train.mean_cost(), c_range))
        return float(np.mean(values)) if values else float("-inf")

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials, timeout=timeout_s)
    return suggest(optuna.trial.FixedTrial(study.best_params)), float(study.best_value)


@dataclass
class NestedMulti:
    p_oof: np.ndarray  # (n, models): out-of-fold P(success)
    expected_cost: np.ndarray  # (n, models): the training folds' mean cost per model
    configs: list[dict[str, Any]]
    inner_aiq: list[float]
    seconds: float
    baselines: dict[str, np.ndarray]


def nested(data: MultiData, trials: int, outer_folds: int, inner_folds: int, seed: int,
           baselines: dict[str, Callable[[MultiData, MultiData], np.ndarray]] | None = None,
           progress: Callable[[str], None] | None = None) -> NestedMulti:
    """Out-of-fold predictions: per outer fold, a search on its training part, the chosen model fitted there and
    predicting the held-out part; the baselines on the same folds."""
    start = time.perf_counter()
    n, m = data.scores.shape
    p_oof, exp = np.zeros((n, m)), np.zeros((n, m))
    base_oof = {name: np.zeros((n, m)) for name in (baselines or {})}
    configs, inner = [], []
    for k, (tr, te) in enumerate(grouped_folds(data, outer_folds, seed)):
        train, test = data.take(tr), data.take(te)
        config, value = tune(train, trials, inner_folds, seed + k)
        configs.append(config)
        inner.append(value)
        p_oof[te] = predict(config, fit_model(config, train, seed), test.embeddings, test.texts, test.stats)
        exp[te] = train.costs.mean(axis=0)
        for name, fit_predict in (baselines or {}).items():
            base_oof[name][te] = fit_predict(train, test)
        if progress is not None:
            progress(f"outer fold {k + 1}/{outer_folds}: {config['family']} {config['params']} inner AIQ {value:.4f}")
    return NestedMulti(p_oof, exp, configs, inner, time.perf_counter() - start, base_oof)


def knn_baseline(k: int = 20) -> Callable[[MultiData, MultiData], np.ndarray]:
    """Plain kNN on the embeddings (cosine): each model's mean score over the k nearest training queries."""
    def fit_predict(train: MultiData, test: MultiData) -> np.ndarray:
        a = train.embeddings / np.maximum(np.linalg.norm(train.embeddings, axis=1, keepdims=True), 1e-12)
        b = test.embeddings / np.maximum(np.linalg.norm(test.embeddings, axis=1, keepdims=True), 1e-12)
        idx = np.argpartition(-(b @ a.T), k - 1, axis=1)[:, :k]
        return train.scores[idx].mean(axis=1)
    return fit_predict


def mlp_baseline(seed: int = 0) -> Callable[[MultiData, MultiData], np.ndarray]:
    """A multi-output MLP on the embeddings (scikit-learn's MLPClassifier, one hidden layer of 100, defaults)."""
    def fit_predict(train: MultiData, test: MultiData) -> np.ndarray:
        import warnings

        from sklearn.neural_network import MLPClassifier

        y = (train.scores >= 0.5).astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = MLPClassifier(hidden_layer_sizes=(100,), max_iter=200, early_stopping=True, random_state=seed)
            model.fit(train.embeddings, y)
        return model.predict_proba(test.embeddings)
    return fit_predict


class MultiModelRouter:
    """A fitted multi-output model of every model's success, each model's expected cost, the embedder it was
    trained with (`embedder`: an instance to use instead of loading it), and the trade-off `lam` of its operating
    point."""

    def __init__(self, models: Sequence[str], config: dict[str, Any], state: dict[str, np.ndarray],
                 expected_cost: Sequence[float], lam: float, embedder_config: dict[str, Any], note: str = "",
                 embedder: Any = None):
        self.models, self.config, self.state = list(models), config, state
        self.expected_cost = np.asarray(expected_cost, dtype=float)
        self.lam, self.embedder_config, self.note, self.embedder = float(lam), embedder_config, note, embedder

    def p_success(self, embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        return predict(self.config, self.state, embeddings, texts)

    def decide(self, p: np.ndarray, lam: float | None = None) -> np.ndarray:
        return choose(p, np.broadcast_to(self.expected_cost, p.shape), self.lam if lam is None else lam)

    def get_embedder(self) -> Any:
        """The embedder it was trained with, loaded on first use and kept."""
        if self.embedder is None:
            from openfirst.router.embeddings import EmbedderSpec

            self.embedder = EmbedderSpec.from_config(self.embedder_config).embedder(show_progress=False)
        return self.embedder

    def route_many(self, texts: Sequence[str], embedder: Any = None) -> list[dict[str, Any]]:
        """Per query: the chosen model, every model's P(success) and expected cost, and why."""
        texts = list(texts)
        p = self.p_success((embedder or self.get_embedder()).encode(texts), texts)
        picks = self.decide(p)
        out = []
        for i, j in enumerate(picks):
            utility = p[i] - self.lam * self.expected_cost
            out.append({"model": self.models[j], "lambda": self.lam,
                        "models": {m: {"p_success": float(p[i, k]), "expected_cost_usd": float(self.expected_cost[k]),
                                       "utility": float(utility[k])} for k, m in enumerate(self.models)},
                        "reason": f"{self.models[j]}: highest P(success) - lambda * cost "
                                  f"({p[i, j]:.3f} - {self.lam:.4g} x {self.expected_cost[j]:.6f})"})
        return out

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.savez(path / ARRAYS_FILE, **self.state)
        meta = {"kind": "multi-model", "models": self.models, "config": self.config,
                "expected_cost_usd": self.expected_cost.tolist(), "lambda": self.lam, "embedder": self.embedder_config,
                "note": self.note}
        (path / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str) -> "MultiModelRouter":
        """numpy only (no scikit-learn, no torch): the arrays, checked."""
        path = Path(path)
        try:
            meta = json.loads((path / CONFIG_FILE).read_text())
            with np.load(path / ARRAYS_FILE, allow_pickle=False) as z:
                state = {k: z[k] for k in z.files}
            check_state(meta["config"]["family"], state, len(meta["models"]))
            return cls(meta["models"], meta["config"], state, meta["expected_cost_usd"], meta["lambda"],
                       meta["embedder"], meta.get("note", ""))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{path}: not a multi-model router ({type(exc).__name__}: {exc})") from None


def is_multi_router(path: Path | str) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def lambda_for_target(p: np.ndarray, expected_cost: np.ndarray, scores: np.ndarray, costs: np.ndarray,
                      kind: str, value: float) -> tuple[float, dict[str, Any]]:
    """The operating point on out-of-fold predictions: `budget` (mean USD per query at most `value`, the most
    accurate such point) or `quality` (at least `value` x the best single model's accuracy, the cheapest such
    point; the most accurate point when none reaches it). Returns (lambda, {cost, accuracy, met, note})."""
    from openfirst.core.errors import ConfigError

    exp = np.broadcast_to(expected_cost, p.shape)
    lams = lambdas_for(p, exp, 400)
    pts = router_points(p, exp, scores, costs, lams)
    if kind == "budget":
        ok = [i for i, q in enumerate(pts) if q.cost <= value + 1e-15]
        i = max(ok, key=lambda k: (pts[k].accuracy, -pts[k].cost)) if ok else int(np.argmin([q.cost for q in pts]))
        met, note = bool(ok), "" if ok else "even the cheapest decisions cost more than the budget"
    elif kind == "quality":
        best = max(single_points(scores, costs, [str(j) for j in range(p.shape[1])]).values(),
                   key=lambda q: q.accuracy)
        goal = value * best.accuracy
        ok = [i for i, q in enumerate(pts) if q.accuracy >= goal - 1e-12]
        i = min(ok, key=lambda k: pts[k].cost) if ok else int(np.argmax([q.accuracy for q in pts]))
        met, note = bool(ok), "" if ok else f"no operating point reaches {value:.0%} of the best single model"
    else:
        raise ConfigError("a many-model router takes --budget USD or --target-quality X (of the best single "
                          "model's accuracy), not a frontier share")
    return float(lams[i]), {"cost": pts[i].cost, "accuracy": pts[i].accuracy, "met": met, "note": note}


def train_multi(data: MultiData, trials: int, inner_folds: int, outer_folds: int, seed: int, kind: str,
                value: float, embedder: dict[str, Any]) -> tuple[MultiModelRouter, dict[str, Any]]:
    """Search the head on all records, set lambda for the target on grouped out-of-fold predictions of the chosen
    head, and fit it on everything. Records missing a model's score (live logs: only the answering model's
    outcome) are trained on; the search and the operating point are measured on the records every model ran."""
    from openfirst.core.errors import ConfigError

    complete = data.complete
    if complete.sum() < 2 * max(outer_folds, inner_folds):
        raise ConfigError(f"{int(complete.sum())} records have every model's score; at least "
                          f"{2 * max(outer_folds, inner_folds)} are needed to measure the router and set its "
                          "operating point", hint="label a sample of queries on every model (replay or shadow)")
    config, inner = tune(data, trials, inner_folds, seed)
    p_oof = np.zeros(data.scores.shape)
    for tr, te in grouped_folds(data, outer_folds, seed):
        train, test = data.take(tr), data.take(te)
        p_oof[te] = predict(config, fit_model(config, train, seed), test.embeddings, test.texts, test.stats)
    mean_cost = data.mean_cost()
    ev = data.take(np.flatnonzero(complete))
    lam, point = lambda_for_target(p_oof[complete], mean_cost, ev.scores, ev.costs, kind, value)
    router = MultiModelRouter(data.models, config, fit_model(config, data, seed), mean_cost, lam,
                              embedder, note=f"target {kind} {value:g}")
    return router, {"config": config, "inner_aiq": inner, "lambda": lam, "operating_point": point,
                    "oof_aiq": fold_aiq(p_oof[complete], ev, mean_cost, cost_range(data)),
                    "records_trained": len(data.texts), "records_evaluated": int(complete.sum())}
