"""`openfirst serve --config openfirst.toml [--host --port]` and `openfirst eval --decisions LOG LABELS ...`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from openfirst.core.errors import ConfigError


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(sub) -> None:
    k = sub.add_parser("keys", help="API keys for `openfirst serve`")
    ksub = k.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    c = ksub.add_parser("create", help="print a new key once, and the [[auth.keys]] entry (its hash) to add")
    c.add_argument("--name", required=True, help="who holds the key (shown in logs)")
    c.add_argument("--tasks", nargs="+", default=None, metavar="TASK", help="tasks it may use (default: all)")
    c.add_argument("--endpoints", nargs="+", default=None, metavar="ENDPOINT",
                   help="endpoints it may use: extract route chat tasks models metrics health "
                        "(default: extract chat tasks models)")
    c.add_argument("--no-frontier", action="store_true", help="its requests never reach the frontier")
    c.add_argument("--rate-per-minute", type=int, default=600, help="requests per minute (default 600)")
    c.add_argument("--budget", type=float, default=None, metavar="USD", help="frontier USD per UTC day")
    c.add_argument("--over-budget", choices=["local", "reject"], default="local",
                   help="past the budget: stay local (default) or answer 429")
    c.set_defaults(handler=cmd_keys_create)

    s = sub.add_parser("serve", help="serve compiled tasks over HTTP, routed per request (FastAPI + uvicorn)")
    s.add_argument("--config", type=Path, default=Path("openfirst.toml"), help="TOML config (default: openfirst.toml)")
    s.add_argument("--host", default=None, help="default: serve.host in the config (127.0.0.1)")
    s.add_argument("--port", type=int, default=None, help="default: serve.port in the config (8000)")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="log level (default info)")
    s.add_argument("--check", action="store_true", help="load and validate everything, then exit without serving")
    s.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from openfirst.service.app import create_app
    from openfirst.service.config import ServiceConfig
    from openfirst.service.service import Service

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "openai"):  # their INFO and DEBUG lines carry full URLs with credentials
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    config = ServiceConfig.from_file(args.config)
    host = args.host or config.serve.host
    if not config.auth.keys:
        if host not in LOOPBACK:
            raise ConfigError(f"no API keys configured: refusing to serve without authentication on {host}",
                              hint="add [[auth.keys]] entries (openfirst keys create --name NAME), or serve on 127.0.0.1")
        logging.getLogger("openfirst.service").warning(
            "no API keys configured: serving WITHOUT authentication, on loopback (%s) only", host)
    service = Service.from_config(config)
    logging.getLogger("openfirst.service").info("serving %s", json.dumps(service.describe()))
    if args.check:
        print(json.dumps(service.describe(), indent=2))
        service.close()
        return 0
    try:
        uvicorn.run(create_app(service), host=host, port=args.port or config.serve.port,
                    log_level=args.log_level, timeout_graceful_shutdown=config.serve.shutdown_grace_s)
    finally:
        service.close()
    return 0


def extend_eval(e: argparse.ArgumentParser) -> None:
    """Add `--decisions` (the service's decision log joined with outcome labels) to the router's `eval`."""
    router_eval = e.get_default("handler")
    d = e.add_argument_group("service decisions")
    d.add_argument("--decisions", type=str, default=None, metavar="JSONL|URL",
                   help="decision log written by `openfirst serve` (log.decisions), or the replicas' database "
                        "([state] database_url)")
    d.add_argument("--target-frontier-share", type=float, default=None, metavar="X",
                   help="drift reference (default: the router's expected share, as logged)")
    d.add_argument("--tolerance", type=float, default=0.1, help="drift warning past |share - target| > X")
    d.add_argument("--window", type=int, default=1000, help="recent decisions checked for drift too")
    d.add_argument("--joined-out", type=Path, default=None, metavar="JSONL",
                   help="write the labeled decisions as an outcome log for `openfirst train`")
    e.set_defaults(handler=lambda args: cmd_eval_decisions(args) if args.decisions is not None else router_eval(args))


def cmd_eval_decisions(args: argparse.Namespace) -> int:
    """Join the service's decision log with outcome labels: routed accuracy, frontier share, cost, drift."""
    from openfirst.router.cli_router import label_rows, prices
    from openfirst.service.decision_eval import (evaluate_decisions, joined_outcome_rows, labels_by_id,
                                                 markdown_summary)
    from openfirst.core.redact import redact_url
    from openfirst.service.decision_log import read_decisions

    if not 0 <= args.tolerance <= 1:
        raise ConfigError("--tolerance must be in [0, 1]")
    if args.window < 1:
        raise ConfigError("--window must be >= 1")
    target = args.target_frontier_share
    if target is None and args.router is not None:
        from openfirst.router.api import Router

        target = Router.load(args.router).expected_frontier_share
    decisions = read_decisions(args.decisions)
    labels = labels_by_id(label_rows(args))
    report = evaluate_decisions(decisions, labels, target, args.tolerance, args.window, prices(args))
    if args.joined_out is not None:
        rows = joined_outcome_rows(decisions, labels)
        args.joined_out.parent.mkdir(parents=True, exist_ok=True)
        args.joined_out.write_text("".join(json.dumps(r) + "\n" for r in rows))
        report["joined_out"] = {"path": str(args.joined_out), "records": len(rows)}
    if report["drift"]["warning"]:
        print(f"openfirst: warning: {report['drift']['warning']}", file=sys.stderr)
    title = f"decisions in {redact_url(args.decisions)}"
    print(json.dumps(report, indent=2) if args.json else markdown_summary(report, title))
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Print a new key (shown this once) and the TOML entry with its hash."""
    from pydantic import ValidationError

    from openfirst.core.errors import describe_validation_error
    from openfirst.service.auth import KeySettings, key_hash, new_key

    key = new_key()
    fields = {"name": args.name, "sha256": key_hash(key), "tasks": args.tasks, "frontier": not args.no_frontier,
              "rate_per_minute": args.rate_per_minute, "frontier_budget_usd_per_day": args.budget,
              "over_budget": args.over_budget}
    if args.endpoints is not None:
        fields["endpoints"] = args.endpoints
    try:
        entry = KeySettings(**fields)
    except ValidationError as exc:
        raise ConfigError(f"invalid key settings: {describe_validation_error(exc)}") from None
    lines = ["[[auth.keys]]"] + [f"{k} = {json.dumps(v)}" for k, v in entry.model_dump().items() if v is not None]
    print(f"API key for {args.name} (shown once, store it now): {key}", file=sys.stderr)
    print("\n".join(lines))
    return 0
