"""`openfirst serve --config openfirst.toml [--host --port]`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(sub) -> None:
    s = sub.add_parser("serve", help="serve compiled tasks over HTTP, routed per request (FastAPI + uvicorn)")
    s.add_argument("--config", type=Path, default=Path("openfirst.toml"), help="TOML config (default: openfirst.toml)")
    s.add_argument("--host", default=None, help="default: serve.host in the config (127.0.0.1)")
    s.add_argument("--port", type=int, default=None, help="default: serve.port in the config (8000)")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.add_argument("--check", action="store_true", help="load and validate everything, then exit without serving")
    s.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import json

    import uvicorn

    from compiler.service.app import create_app
    from compiler.service.config import ServiceConfig
    from compiler.service.engine import Service

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServiceConfig.from_file(args.config)
    service = Service.from_config(config)
    logging.getLogger("openfirst.service").info("serving %s", json.dumps(service.describe()))
    if args.check:
        print(json.dumps(service.describe(), indent=2))
        return 0
    try:
        uvicorn.run(create_app(service), host=args.host or config.serve.host, port=args.port or config.serve.port,
                    log_level=args.log_level, timeout_graceful_shutdown=10)
    finally:
        service.close()
    return 0
