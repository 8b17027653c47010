"""`openfirst bench router` on many-model logs (a `scores` object per record, or the public `llmrouter-all`): nested
out-of-fold predictions of the N-model router and of kNN and MLP baselines on the same embeddings, reported the
way RouterBench does (accuracy-cost curve, AIQ, best single model, oracle, zero router)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from openfirst.router.multi_log import MultiOutcomeLog, is_multi_model, read_multi_log

PUBLIC_MULTI = ("llmrouter-all",)


def is_multi_request(logs: list[str]) -> bool:
    return any(x in PUBLIC_MULTI or (Path(x).is_file() and is_multi_model(x)) for x in logs)


def load_multi(args: argparse.Namespace, complete: bool = True) -> MultiOutcomeLog:
    """The many-model log; only the records every model ran where `complete` (evaluation), else every record
    (training: it learns from partial records and measures itself on the complete ones)."""
    from openfirst.core.errors import ConfigError
    from openfirst.router.public_data import load_llmrouter_all

    if len(args.logs) != 1:
        raise ConfigError("many-model evaluation reads one log at a time", hint="concatenate the files first")
    item = args.logs[0]
    log = load_llmrouter_all(args.data_dir) if item in PUBLIC_MULTI else read_multi_log(
        item, skip_bad_lines=args.skip_bad_lines)
    full = log.complete()
    if len(full) < len(log):
        what = (f"evaluating the {len(full)} that every model ran" if complete else
                f"training on all {len(log)}, measuring on the {len(full)} that every model ran")
        print(f"openfirst: {len(log) - len(full)} records lack a model's score; {what}", file=sys.stderr)
    return full if complete else log


def multi_data(log: MultiOutcomeLog, embedder: Any) -> Any:
    """Embedded records; a missing cost is its model's mean known cost (a model with no cost at all is an error
    naming it)."""
    from openfirst.router.multi_router import MultiData

    with np.errstate(all="ignore"):
        means = np.nanmean(log.costs, axis=0)
    costs = log.costs_or({m: float(c) for m, c in zip(log.models, means) if not np.isnan(c)})
    return MultiData(embedder.encode(log.queries), log.queries, log.scores, costs, log.fold_groups(), log.models)


def cmd_train_multi(args: argparse.Namespace) -> int:
    """`openfirst train` on a many-model log: a MultiModelRouter artifact at the target's operating point."""
    import json

    from openfirst.router.cli_router import make_embedder
    from openfirst.router.embeddings import EmbedderSpec
    from openfirst.router.multi_router import train_multi

    kind, value = ("budget", args.budget) if args.budget is not None else ("quality", args.target_quality or 0.95)
    if args.target_frontier_share is not None:
        from openfirst.core.errors import ConfigError

        raise ConfigError("a many-model router takes --budget USD or --target-quality X, not a frontier share")
    log = load_multi(args, complete=False)
    embedder = make_embedder(args)
    data = multi_data(log, embedder)
    spec = EmbedderSpec(embedder.model_id, int(data.embeddings.shape[1]))
    router, summary = train_multi(data, args.trials, args.inner_folds, args.outer_folds, args.seed, kind, value,
                                  spec.to_config())
    router.save(args.out)
    summary.update({"models": log.models, "records": len(log), "out": str(args.out)})
    print(json.dumps(summary, indent=2, default=str) if args.json else
          f"many-model router over {len(log.models)} models saved to {args.out}: {summary['config']['family']} "
          f"model, lambda {summary['lambda']:.4g}, out of fold {summary['operating_point']['accuracy']:.4f} "
          f"accuracy at {summary['operating_point']['cost']:.6f} USD per query (AIQ {summary['oof_aiq']:.4f})")
    return 0


def cmd_route_multi(args: argparse.Namespace, items: list[tuple[object, str]]) -> int:
    """`openfirst route` with a many-model router: the chosen model, each model's P(success) and cost, why."""
    import json

    from openfirst.router.multi_router import MultiModelRouter

    if args.threshold is not None or args.frontier_share is not None:
        from openfirst.core.errors import ConfigError

        raise ConfigError("a many-model router has no threshold or frontier share: its operating point is lambda",
                          hint="retrain with --budget USD or --target-quality X")
    router = MultiModelRouter.load(args.router)
    for (rid, _), decision in zip(items, router.route_many([t for _, t in items])):
        print(json.dumps(decision if rid is None else {"id": rid, **decision}))
    return 0


def cmd_eval_multi(args: argparse.Namespace) -> int:
    """`openfirst eval --router DIR LOGS` with a many-model router: its curve on these records at every lambda (and
    its own operating point), the best single model, the oracle, the zero router, and kNN and MLP routers
    cross-validated (grouped) on the same records and embeddings."""
    import json

    from openfirst.core.errors import ConfigError
    from openfirst.router.cli_router import make_embedder
    from openfirst.router.multi_router import MultiModelRouter, grouped_folds, knn_baseline, mlp_baseline
    from openfirst.router.routerbench import choose, report

    router = MultiModelRouter.load(args.router)
    log = load_multi(args)
    if router.models != log.models:
        raise ConfigError(f"the router routes across {router.models}; the log scores {log.models}")
    data = multi_data(log, make_embedder(args, router.embedder_config.get("model")))
    p = router.p_success(data.embeddings, data.texts)
    base = {name: np.zeros_like(p) for name in ("knn", "mlp")}
    for tr, te in grouped_folds(data, 5, 0):
        for name, fit_predict in (("knn", knn_baseline()), ("mlp", mlp_baseline())):
            base[name][te] = fit_predict(data.take(tr), data.take(te))
    exp = np.broadcast_to(router.expected_cost, p.shape)
    out = report(p, exp, data.scores, log.models, baselines=base, true_cost=data.costs)
    picks = choose(p, exp, router.lam)
    rows = np.arange(len(p))
    out["operating_point"] = {"lambda": router.lam, "cost": float(data.costs[rows, picks].mean()),
                              "accuracy": float(data.scores[rows, picks].mean()),
                              "share": {m: float(np.mean(picks == j)) for j, m in enumerate(log.models)}}
    out.update({"source": log.source, "records": len(log), "router": str(args.router)})
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        op = out["operating_point"]
        print(f"{log.source}: {len(log)} records, {len(log.models)} models; AIQ {out['aiq']:.4f} (kNN "
              f"{out['baselines']['knn']['aiq']:.4f}, MLP {out['baselines']['mlp']['aiq']:.4f}, zero "
              f"{out['baselines']['zero']['aiq']:.4f}, oracle {out['baselines']['oracle']['aiq']:.4f}); at its "
              f"operating point: accuracy {op['accuracy']:.4f} for {op['cost']:.6f} USD per query; best single "
              f"model {out['best_single']['model']} {out['best_single']['accuracy']:.4f} for "
              f"{out['best_single']['cost']:.6f}")
    return 0


def cmd_bench_multi(args: argparse.Namespace) -> int:
    from openfirst.core.results import write_bench_results
    from openfirst.router.cli_router import make_embedder
    from openfirst.router.multi_router import knn_baseline, mlp_baseline, nested
    from openfirst.router.routerbench import report

    log = load_multi(args)
    data = multi_data(log, make_embedder(args))
    costs = data.costs
    res = nested(data, args.trials, args.outer_folds, args.inner_folds, args.seed,
                 baselines={"knn": knn_baseline(), "mlp": mlp_baseline(args.seed)},
                 progress=None if args.no_progress else lambda line: print(line, file=sys.stderr))
    out: dict[str, Any] = report(res.p_oof, res.expected_cost, log.scores, log.models, baselines=res.baselines,
                                 true_cost=costs)
    from openfirst.core.machine import cpu_summary

    out["machine"] = cpu_summary()
    out.update({"source": log.source, "records": len(log), "models": log.models, "seconds": res.seconds,
                "tuning": {"trials": args.trials, "outer_folds": args.outer_folds, "inner_folds": args.inner_folds,
                           "seed": args.seed}, "fold_configs": res.configs, "inner_aiq": res.inner_aiq})
    stem = args.name or "router-multi-" + Path(args.logs[0]).stem
    return write_bench_results(out, args.out_dir, stem, markdown, plot, args.json)


def markdown(out: dict[str, Any]) -> str:
    from openfirst.core.machine import cpu_line

    b = out["baselines"]
    best = out["best_single"]
    match = out["cost_to_match_best_single"]
    lines = [f"# Routing across {len(out['models'])} models: {out['source']} ({out['records']:,} records)", "",
             f"Nested grouped CV ({out['tuning']['outer_folds']} outer folds, {out['tuning']['trials']} Optuna "
             f"trials per search on {out['tuning']['inner_folds']} inner folds), out-of-fold decisions argmax "
             "P(success) - lambda * cost, lambda swept; AIQ as RouterBench defines it (area under the "
             "non-decreasing convex hull over the single models' cost range, divided by it).", "",
             "| router | AIQ | cost to match the best single model |", "|---|---|---|",
             f"| **openfirst** | **{out['aiq']:.4f}** | {_ratio(match)} |",
             f"| kNN (k=20, embeddings) | {b['knn']['aiq']:.4f} | {_ratio(b['knn']['cost_to_match_best_single'])} |",
             f"| MLP (embeddings) | {b['mlp']['aiq']:.4f} | {_ratio(b['mlp']['cost_to_match_best_single'])} |",
             f"| zero router (random mixtures of single models) | {b['zero']['aiq']:.4f} | - |",
             f"| oracle | {b['oracle']['aiq']:.4f} | - |", "",
             f"Best single model: {best['model']} (accuracy {best['accuracy']:.4f} at {best['cost']:.6f} USD per "
             "query). Cost to match: the router's lowest mean cost reaching that accuracy, over that model's cost.", "",
             "| model | accuracy | USD per query |", "|---|---|---|"]
    lines += [f"| {m} | {p['accuracy']:.4f} | {p['cost']:.6f} |"
              for m, p in sorted(out["singles"].items(), key=lambda kv: kv[1]["cost"])]
    lines += ["", "Search per outer fold: " + "; ".join(f"{c['family']} {c['params']} on {'+'.join(c['features'])}"
                                                        for c in out["fold_configs"]),
              "", f"Command: `{out.get('command')}`; {out['seconds']:.0f} s on {cpu_line(out['machine'])}."]
    return "\n".join(lines) + "\n"


def _ratio(x: float | None) -> str:
    return "never reached" if x is None else f"{x:.3f}"


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from openfirst.router.routerbench import Point, hull

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for name, curve, style in (("openfirst", out["curve"], "-"), ("kNN", out["baselines"]["knn"]["curve"], "--"),
                               ("MLP", out["baselines"]["mlp"]["curve"], ":")):
        h = hull([Point(p["cost"], p["accuracy"]) for p in curve])
        ax.plot([p.cost for p in h], [p.accuracy for p in h], style, label=f"{name} (hull)")
    singles = out["singles"]
    ax.scatter([p["cost"] for p in singles.values()], [p["accuracy"] for p in singles.values()], c="k", s=14,
               label="single models")
    for m, p in singles.items():
        ax.annotate(m, (p["cost"], p["accuracy"]), fontsize=6, xytext=(3, 2), textcoords="offset points")
    o = out["baselines"]["oracle"]["point"]
    ax.scatter([o["cost"]], [o["accuracy"]], marker="*", s=80, c="tab:red", label="oracle")
    ax.set_xlabel("mean cost per query (USD)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{out['source']}: accuracy against cost, out of fold")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
