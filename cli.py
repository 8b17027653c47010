"""The `openfirst` console script: a thin argparse front; library errors become CLI errors here."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from openfirst.cascade import cli as cli_cascade
    from openfirst.compiler import cli as cli_compiler
    from openfirst.compiler import doctor
    from openfirst.finetune import cli as cli_finetune
    from openfirst.service import cli as cli_service
    from openfirst.router import cli_data, cli_router

    from openfirst import __version__

    parser = argparse.ArgumentParser(prog="openfirst", description="Run LLM work on open models; route the rest.")
    parser.add_argument("--version", action="version", version=f"openfirst {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    eval_parser = cli_router.register(sub)
    cli_service.extend_eval(eval_parser)
    bench = sub.add_parser("bench", help="benchmarks: results go under benchmarks/results/")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    cli_router.register_bench(bench_sub)
    cli_compiler.register_bench(bench_sub)
    cli_cascade.register_bench(bench_sub)
    cli_finetune.register_bench(bench_sub)
    cli_compiler.register(sub)
    doctor.register(sub)
    cli_finetune.register(sub)
    cli_data.register(sub)
    cli_service.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    from openfirst.core.errors import OpenFirstError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except OpenFirstError as exc:
        print(f"openfirst: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a bad option value that reached a settings model: one line, no traceback
        from openfirst.core.errors import describe_validation_error

        print(f"openfirst: error: invalid value: {describe_validation_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("openfirst: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
