"""`openfirst train | route | eval | bench router`."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from openfirst.core.errors import ConfigError, describe_validation_error
from openfirst.router.policy import DEFAULT_FRONTIER_COST, DEFAULT_LOCAL_COST, Target, target_from_flags
from openfirst.router.public_data import DATASETS
from openfirst.router.records import ColumnMap, OutcomeLog

DEFAULT_RESULTS = Path("benchmarks/results")


# -- shared argument groups ------------------------------------------------------------
def add_log_args(p: argparse.ArgumentParser, logs_help: str | None = None, optional: bool = False) -> None:
    p.add_argument("logs", nargs="*" if optional else "+", metavar="LOGS",
                   help=logs_help or f"outcome log(s), JSONL or CSV; or a public data set: {', '.join(DATASETS)}")
    g = p.add_argument_group("outcome log columns")
    for field in ColumnMap.model_fields:
        g.add_argument(f"--{field.replace('_', '-')}-column", dest=f"col_{field}", default=field,
                       metavar="NAME", help=f"column holding {field} (default: {field})")
    g.add_argument("--skip-bad-lines", action="store_true", help="skip bad lines (reported with a count)")
    g.add_argument("--data-dir", type=Path, default=None, help="public data directory (default: ../shared/datasets)")
    g.add_argument("--llmrouter-local", default=None, help="llmrouter data set: the model that counts as local")
    g.add_argument("--llmrouter-frontier", default=None, help="llmrouter data set: the model that counts as frontier")
    c = p.add_argument_group("prices (used where the log has no cost columns)")
    c.add_argument("--local-cost", type=float, default=DEFAULT_LOCAL_COST, help="USD per local query")
    c.add_argument("--frontier-cost", type=float, default=DEFAULT_FRONTIER_COST, help="USD per frontier query")
    p.add_argument("--embedding-model", default=None, help="sentence-transformers name or path")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_target_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--target-frontier-share", type=float, default=None, metavar="X",
                   help="send at most this share of queries to the frontier")
    g.add_argument("--target-quality", type=float, default=None, metavar="X",
                   help="reach at least X of always-frontier accuracy (default 0.95)")
    g.add_argument("--budget", type=float, default=None, metavar="USD", help="mean cost per query at most USD")


def add_tuning_args(p: argparse.ArgumentParser) -> None:
    from openfirst.router.tuning import TuneOptions

    d = TuneOptions()
    g = p.add_argument_group("tuning")
    g.add_argument("--trials", type=int, default=d.trials, help=f"Optuna trials per study (default {d.trials})")
    g.add_argument("--seed", type=int, default=d.seed, help=f"random seed of folds and tuning (default {d.seed})")
    g.add_argument("--outer-folds", type=int, default=d.outer_folds, help=f"outer cross-validation folds (default {d.outer_folds})")
    g.add_argument("--inner-folds", type=int, default=d.inner_folds, help=f"inner (tuning) folds (default {d.inner_folds})")
    g.add_argument("--storage", default=None, help="Optuna storage: a SQLite file or an RDB URL (shared study)")
    g.add_argument("--study-name", default=d.study_name, help="Optuna study name (with --storage, resumes it)")
    g.add_argument("--timeout", type=float, default=None, help="seconds per study")


def tune_options(args: argparse.Namespace):
    from pydantic import ValidationError

    from openfirst.router.tuning import TuneOptions

    try:
        return TuneOptions(trials=args.trials, seed=args.seed, outer_folds=args.outer_folds,
                           inner_folds=args.inner_folds, storage=args.storage, study_name=args.study_name,
                           timeout_s=args.timeout, show_progress=not args.no_progress)
    except ValidationError as exc:
        raise ConfigError(f"invalid tuning options: {describe_validation_error(exc)}") from None


def load_logs(args: argparse.Namespace, require_local: bool = True) -> OutcomeLog:
    from openfirst.router.cli_data import llmrouter_kwargs
    from openfirst.router.public_data import load_log_or_public

    cols = ColumnMap(**{f: getattr(args, f"col_{f}") for f in ColumnMap.model_fields})
    logs = [load_log_or_public(item, args.data_dir, columns=cols, require_local=require_local,
                               skip_bad_lines=args.skip_bad_lines,
                               **(llmrouter_kwargs(args) if item == "llmrouter" else {}))
            for item in args.logs]
    for log in logs:
        if log.skipped:
            print(f"openfirst: skipped {log.skipped} bad line(s) in {log.source}", file=sys.stderr)
    return logs[0] if len(logs) == 1 else concat_logs(logs)


def concat_logs(logs: list[OutcomeLog]) -> OutcomeLog:
    cat = lambda name: np.concatenate([getattr(x, name) for x in logs])  # noqa: E731
    lst = lambda name: [v for x in logs for v in getattr(x, name)]  # noqa: E731
    return OutcomeLog(lst("queries"), cat("local_score"), cat("frontier_score"), cat("local_cost"),
                      cat("frontier_cost"), lst("groups"), lst("ids"), "+".join(x.source for x in logs),
                      skipped=sum(x.skipped for x in logs), problems=[p for x in logs for p in x.problems])


def make_embedder(args: argparse.Namespace, model: str | None = None):
    from openfirst.router.embeddings import DEFAULT_MODEL, Embedder

    return Embedder(model or args.embedding_model or DEFAULT_MODEL, show_progress=not args.no_progress)


def prices(args: argparse.Namespace) -> tuple[float, float]:
    for name in ("local_cost", "frontier_cost"):
        if getattr(args, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0")
    return args.local_cost, args.frontier_cost


# -- commands ------------------------------------------------------------------------------
def register(sub) -> argparse.ArgumentParser:
    """Add train, route and eval; returns the eval parser (the service adds `--decisions` to it)."""
    t = sub.add_parser("train", help="train a router on outcome logs")
    add_log_args(t)
    t.add_argument("--out", type=Path, required=True, help="router artifact directory")
    add_target_args(t)
    add_tuning_args(t)
    t.add_argument("--nested", action="store_true",
                   help="threshold and metrics from nested CV (honest, ~6x slower) instead of refits of the tuned model")
    t.add_argument("--json", action="store_true", help="print the training report as JSON")
    t.add_argument("--strict", action="store_true",
                   help="refuse to save a router that is not better than random or query length out of fold")
    t.set_defaults(handler=cmd_train)

    r = sub.add_parser("route", help="route queries (arguments, or JSONL on stdin)")
    r.add_argument("--router", type=Path, required=True, help="a router artifact from `openfirst train`")
    r.add_argument("texts", nargs="*", metavar="TEXT", help="queries to route (none: JSONL or strings on stdin)")
    point = r.add_mutually_exclusive_group()
    point.add_argument("--threshold", type=float, default=None,
                       help="route at this threshold on the routing score (the `score` printed), not the artifact's")
    point.add_argument("--frontier-share", type=float, default=None,
                       help="route at the threshold that sends this share of --calibration queries to the frontier")
    r.add_argument("--calibration", default=None,
                   help="queries like the expected traffic (a log file or public data set) for --frontier-share")
    r.set_defaults(handler=cmd_route)

    e = sub.add_parser("eval", help="evaluate a trained router on labeled outcome logs, or the service's logged "
                       "decisions (--decisions) joined with outcome labels, with a drift report")
    e.add_argument("--router", type=Path, default=None, help="router artifact (required without --decisions)")
    add_log_args(e, "outcome log(s) (JSONL or CSV, or a public data set); with --decisions: outcome labels keyed "
                 "by id (local_score, frontier_score, or score = outcome of the model that answered)", optional=True)
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    point = e.add_mutually_exclusive_group()
    point.add_argument("--threshold", type=float, default=None,
                       help="evaluate the router at this threshold on its routing score instead of the artifact's")
    point.add_argument("--frontier-share", type=float, default=None,
                       help="evaluate the router at the threshold that sends this share of the logs to the frontier")
    e.set_defaults(handler=cmd_eval)
    return e


def register_bench(bench_sub) -> None:
    b = bench_sub.add_parser("router", help="accuracy against cost from honest (nested) out-of-fold predictions")
    add_log_args(b)
    add_target_args(b)
    add_tuning_args(b)
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    b.add_argument("--out-dir", type=Path, default=DEFAULT_RESULTS, help="where the JSON, Markdown and PNG go")
    b.add_argument("--name", default=None, help="result file stem (default: from LOGS)")
    b.set_defaults(handler=cmd_bench_router)


def cmd_train(args: argparse.Namespace) -> int:
    from openfirst.router.cli_multi import cmd_train_multi, is_multi_request
    from openfirst.router.report import markdown_table, public_json
    from openfirst.router.training import train_router

    if is_multi_request(args.logs):  # a `scores` object per record: a router over N models
        return cmd_train_multi(args)

    target = target_from_flags(args.target_frontier_share, args.target_quality, args.budget)
    log = load_logs(args)
    router, report, cv = train_router(log, make_embedder(args), tune_options(args), target, prices(args),
                                      args.nested)
    table = cv.report(target)
    weak = weak_router_warning(table, len(log.queries))
    if weak:
        print(f"WARNING: {weak}", file=sys.stderr)
        if args.strict:
            raise ConfigError(f"not saved (--strict): {weak}")
    router.save(args.out)
    if args.json:
        print(json.dumps(dict(report, **{k: v for k, v in public_json(table).items() if k != "operating_point"}),
                         indent=2))
    else:
        kind = "nested CV" if args.nested else ("OPTIMISTIC: out-of-fold refits of the tuned ensemble, tuned on the "
                                                "same records; `--nested` for honest numbers")
        print(markdown_table(table, f"routing on {log.source} ({kind})"))
        print(f"router saved to {args.out}")
    return 0


WEAK_MARGIN = 0.02  # APGR a router must gain over the best trivial baseline to count as better


def weak_router_warning(table: dict, records: int) -> str | None:
    """What is wrong when the router is not better than random or query length out of fold; None otherwise."""
    rows = {r["router"]: r for r in table["baselines"]}
    best = max(("random", "query_length"), key=lambda k: rows[k]["apgr"])
    if table["apgr"] > rows[best]["apgr"] + WEAK_MARGIN:
        return None
    return (f"the router is not better than {best.replace('_', ' ')} out of fold (APGR {table['apgr']:.3f} vs "
            f"{rows[best]['apgr']:.3f}, on {records} records): it would route no better than that baseline. "
            "Collect more labeled outcomes (the committed routers trained on 1,300+ records; a few hundred is "
            "rarely enough) or check that local_score really varies with the query")


def check_operating_point(args: argparse.Namespace) -> None:
    """`--frontier-share` in [0, 1] and a finite `--threshold` (route and eval), before anything loads."""
    if args.frontier_share is not None and not 0.0 <= args.frontier_share <= 1.0:
        raise ConfigError("--frontier-share must be between 0 and 1")
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise ConfigError("--threshold must be a finite number")


def cmd_route(args: argparse.Namespace) -> int:
    from openfirst.router.api import Router
    from openfirst.router.multi_router import is_multi_router

    check_operating_point(args)
    if args.frontier_share is not None and args.calibration is None:
        raise ConfigError("--frontier-share needs --calibration (queries like the expected traffic)")
    if is_multi_router(args.router):  # a router over N models: the chosen model, each one's P and cost, why
        from openfirst.router.cli_multi import cmd_route_multi

        return cmd_route_multi(args, _route_items(args))
    router = Router.load(args.router)
    threshold = args.threshold
    if threshold is None and args.frontier_share is not None:
        from openfirst.router.public_data import load_log_or_public

        queries = load_log_or_public(args.calibration, require_local=False).queries
        threshold = router.threshold_for_share(queries, args.frontier_share)
    items = _route_items(args)
    decisions = router.route_many([t for _, t in items], threshold)
    for (rid, _), d in zip(items, decisions):
        out = d.to_dict() if rid is None else {"id": rid, **d.to_dict()}
        print(json.dumps(out))
    return 0


def _route_items(args: argparse.Namespace) -> list[tuple[object, str]]:
    """(id or None, text) per query: the TEXT arguments, or JSONL on stdin."""
    items: list[tuple[object, str]] = [(None, t) for t in args.texts]
    if not items:
        if sys.stdin.isatty():
            raise ConfigError("no queries given", hint="pass TEXT arguments or JSONL on stdin")
        for lineno, line in enumerate(sys.stdin, 1):
            if line.strip():
                items.append(_parse_route_line(line, lineno))
    return items


def _parse_route_line(line: str, lineno: int) -> tuple[object, str]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"stdin line {lineno}: malformed JSON ({exc.msg})") from exc
    if isinstance(obj, str):
        return None, obj
    if isinstance(obj, dict):
        for key in ("query", "text", "prompt"):
            if isinstance(obj.get(key), str):
                return obj.get("id"), obj[key]
    raise ConfigError(f"stdin line {lineno}: expected a JSON string or an object with 'query' or 'text'")


def cmd_eval(args: argparse.Namespace) -> int:
    from openfirst.router.api import Router
    from openfirst.router.policy import fill_costs
    from openfirst.router.report import build_report, markdown_table, public_json

    if args.router is None or not args.logs:
        raise ConfigError("eval needs --router and LOGS (or --decisions)",
                          hint="openfirst eval --router runs/gsm8k routellm-gsm8k")
    check_operating_point(args)
    from openfirst.router.multi_router import is_multi_router

    if is_multi_router(args.router):  # a router over N models on a many-model log: RouterBench's report
        from openfirst.router.cli_multi import cmd_eval_multi

        return cmd_eval_multi(args)
    router = Router.load(args.router)
    log = load_logs(args)
    embedder = make_embedder(args, router.embedder_spec.model)
    score, _ = router.scores(embedder.encode(log.queries), log.queries)
    threshold = router.threshold if args.threshold is None else args.threshold
    if args.threshold is None and args.frontier_share is not None:
        from openfirst.router.policy import threshold_for_share

        threshold = threshold_for_share(score, args.frontier_share)
    lc, fc = fill_costs(len(log), log.local_cost, log.frontier_cost, *prices(args))
    share = float(np.mean(score >= threshold))
    table = build_report(score, log.local_score, log.frontier_or_right(), lc, fc, log.queries,
                         Target(kind="frontier_share", value=share))
    # where the operating point comes from: eval sets no target of its own
    table["operating_point_from"] = ("--threshold" if args.threshold is not None else "--frontier-share"
                                     if args.frontier_share is not None else "the router's saved threshold")
    if args.json:
        print(json.dumps(public_json(table), indent=2))
    else:
        print(markdown_table(table, f"router {args.router} on {log.source}"))
    return 0


def label_rows(args: argparse.Namespace):
    """Rows with an id and outcome scores, from label files (JSONL/CSV) or public data sets."""
    from openfirst.router.public_data import is_public_name, load_public
    from openfirst.core.rows import iter_raw_rows

    for item in args.logs:
        if is_public_name(item):
            log = load_public(item, args.data_dir)
            yield from log.to_records()
            continue
        if not Path(item).is_file():
            raise ConfigError(f"label file {item} does not exist")
        for lineno, row, error in iter_raw_rows(Path(item)):
            if error:
                raise ConfigError(f"{item}:{lineno}: {error}")
            yield row


def cmd_bench_router(args: argparse.Namespace) -> int:
    from openfirst.router.cli_multi import cmd_bench_multi, is_multi_request
    from openfirst.router.report import markdown_table, plot_report, public_json
    from openfirst.router.training import cross_validate

    if is_multi_request(args.logs):  # a `scores` object per record: N models, RouterBench's report
        return cmd_bench_multi(args)

    target = target_from_flags(args.target_frontier_share, args.target_quality, args.budget)
    log = load_logs(args)
    opts = tune_options(args)
    cv = cross_validate(log, make_embedder(args), opts, prices(args))
    table = cv.report(target)
    stem = args.name or "router-" + "+".join(Path(x).stem for x in args.logs)
    out = public_json(table)
    from openfirst.router.metrics import calibration

    out.update({"source": log.source, "seconds": cv.seconds, "tuning": opts.model_dump(),
                "p_success_calibration": calibration(cv.nested.p_success, cv.data.local_score),
                "fold_configs": [r.configs for r in cv.nested.fold_results],
                "command": "openfirst " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("openfirst") else None})
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{stem}.json").write_text(json.dumps(out, indent=2) + "\n")
    md = markdown_table(table, f"{log.source}: nested {opts.outer_folds}-fold CV, {opts.trials} trials per study")
    (args.out_dir / f"{stem}.md").write_text(md)
    plot_report(table, args.out_dir / f"{stem}.png", f"{log.source}: accuracy against frontier share and cost")
    print(json.dumps(out, indent=2) if args.json else md)
    return 0
