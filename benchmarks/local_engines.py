"""Every local engine on the same compiled tasks and inputs, in one run: which one is the embedded default.

Engines: transformers in process (openfirst's grammar as a logits mask), llama.cpp's server (llama-cpp-python, one
request at a time), vLLM offline (`vllm.LLM`, its CPU build here) and vLLM's OpenAI-compatible server; each
constrained (the task's schema) and unconstrained (prompt only, output still validated), at batch 1 (the 11
example inputs one at a time) and batch 16 (16 support tickets at once: one engine batch, or 16 concurrent
requests to a server). Same model everywhere: the embedded SmolLM2-135M-Instruct (float32 for transformers and
vLLM, the Q4_1 GGUF for llama.cpp), greedy, repetition penalty 1.3, at most 300 new tokens.

The physical limit is estimated in the same run: decoding one token at batch 1 reads every weight once, so
tokens/s <= memory bandwidth / weight bytes (bandwidth measured with a large array copy); prefill is bounded by
2 x parameters FLOPs per prompt token against the cores' measured matmul FLOP/s.

    bash benchmarks/run_local_engines.sh      # writes benchmarks/results/local-engines.{json,md,png}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TASKS = [("support_ticket.py:SupportTicket", "support_tickets.jsonl"), ("invoice.py:Invoice", "invoices.jsonl"),
         ("meeting_notes.py:MeetingNotes", "meetings.jsonl")]
PARAMS = 134_515_008  # SmolLM2-135M


def inputs():
    from openfirst.compiler.task import load_task

    out = []
    for spec, data in TASKS:
        rows = [json.loads(x) for x in (ROOT / "datasets" / "tasks" / data).read_text().splitlines() if x.strip()]
        out.append((load_task(f"{ROOT}/datasets/tasks/{spec}"), [r["text"] for r in rows]))
    return out


def run(backend, tasks, constrained: bool, batch: int, use_async: bool) -> dict:
    """Docs, tokens, wall time, per-doc latencies and validity for one engine setting."""
    from openfirst.compiler.program import Program, ProgramOptions, Result

    opts = ProgramOptions(max_tokens=300, max_retries=0, constrained=constrained, repetition_penalty=1.3)
    results, latencies = [], []
    start = time.perf_counter()
    if batch == 1:
        for task, texts in tasks:
            program = Program(task, backend, opts)
            for text in texts:
                t0 = time.perf_counter()
                results += asyncio.run(program.arun_many([text])) if use_async else program.run_many([text])
                latencies.append(time.perf_counter() - t0)
    else:
        task, texts = tasks[0]
        batch_texts = [texts[i % len(texts)] for i in range(batch)]
        program = Program(task, backend, opts)
        t0 = time.perf_counter()
        results = asyncio.run(program.arun_many(batch_texts)) if use_async else program.run_many(batch_texts)
        latencies = [r.latency_s for r in results] if use_async else [time.perf_counter() - t0] * batch
    wall = time.perf_counter() - start
    out_tokens = sum(r.usage.get("completion_tokens", 0) for r in results)
    in_tokens = sum(r.usage.get("prompt_tokens", 0) for r in results)
    return {"docs": len(results), "valid": sum(isinstance(r, Result) for r in results), "seconds": wall,
            "docs_per_s": len(results) / wall, "output_tok_per_s": out_tokens / wall, "prompt_tok_per_s": in_tokens / wall,
            "latency_p50_s": float(np.percentile(latencies, 50)), "latency_p99_s": float(np.percentile(latencies, 99)),
            "errors": sorted({type(r.error).__name__ for r in results if not isinstance(r, Result)})}


def measure(name: str, backend, tasks, use_async: bool, rows: list) -> None:
    for constrained in (True, False):
        for batch in (1, 16):
            row = {"engine": name, "constrained": constrained, "batch": batch,
                   **run(backend, tasks, constrained, batch, use_async)}
            rows.append(row)
            print(json.dumps(row), flush=True)


def hardware() -> dict:
    """Memory bandwidth (a 512 MB array copy) and matmul FLOP/s (float32), measured now."""
    a = np.ones(64 * 1024 * 1024, dtype=np.float64)
    b = np.empty_like(a)
    np.copyto(b, a)
    t0 = time.perf_counter()
    for _ in range(5):
        np.copyto(b, a)
    bandwidth = 5 * 2 * a.nbytes / (time.perf_counter() - t0)  # read + write
    m = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    m @ m
    t0 = time.perf_counter()
    for _ in range(10):
        m @ m
    flops = 10 * 2 * 1024 ** 3 / (time.perf_counter() - t0)
    return {"memory_bandwidth_gb_s": bandwidth / 1e9, "matmul_gflop_s": flops / 1e9,
            "decode_tok_s_limit_fp32": bandwidth / (PARAMS * 4), "decode_tok_s_limit_q4": bandwidth / (PARAMS * 0.56),
            "prefill_tok_s_limit": flops / (2 * PARAMS)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--engines", nargs="+", default=["transformers", "llama.cpp", "vllm", "vllm-server"])
    args = p.parse_args()
    tasks = inputs()
    rows: list[dict] = []
    hw = hardware()
    print(json.dumps(hw), flush=True)
    if "transformers" in args.engines:
        from openfirst.compiler.backends.transformers_local import TransformersBackend

        measure("transformers (in process)", TransformersBackend.load("smollm2"), tasks, False, rows)
    if "llama.cpp" in args.engines:
        from openfirst.compiler.backends.llamacpp_server import LlamaCppServer
        from openfirst.compiler.backends.openai_compat import OpenAICompatibleBackend

        with LlamaCppServer(n_ctx=4096) as server:
            backend = OpenAICompatibleBackend(server.alias, base_url=server.base_url, flavor="llama.cpp",
                                              max_concurrency=16)
            measure("llama.cpp server", backend, tasks, True, rows)
    if "vllm" in args.engines:
        from openfirst.compiler.backends.vllm_offline import VLLMOfflineBackend

        t0 = time.perf_counter()
        backend = VLLMOfflineBackend.load()
        hw["vllm_engine_start_s"] = time.perf_counter() - t0
        measure("vLLM offline", backend, tasks, False, rows)
        del backend
    if "vllm-server" in args.engines:
        from openfirst.compiler.backends.openai_compat import OpenAICompatibleBackend
        from openfirst.compiler.backends.vllm_server import VLLMServer

        t0 = time.perf_counter()
        with VLLMServer() as server:
            hw["vllm_server_start_s"] = time.perf_counter() - t0
            backend = OpenAICompatibleBackend(server.alias, base_url=server.base_url, flavor="vllm", max_concurrency=16)
            measure("vLLM server", backend, tasks, True, rows)
    write(args.out_dir, rows, hw)


def write(out_dir: Path, rows: list[dict], hw: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def best(engine_filter, constrained):
        xs = [r["output_tok_per_s"] for r in rows if engine_filter(r) and r["constrained"] == constrained]
        return max(xs) if xs else float("nan")

    fastest_constrained = max((r for r in rows if r["constrained"]), key=lambda r: r["output_tok_per_s"])
    best_unconstrained = best(lambda r: True, False)
    transformers = best(lambda r: r["engine"].startswith("transformers"), True)
    summary = {"default_engine": fastest_constrained["engine"],
               "default_constrained_tok_s": fastest_constrained["output_tok_per_s"],
               "best_unconstrained_tok_s": best_unconstrained,
               "ratio_default_constrained_to_best_unconstrained": fastest_constrained["output_tok_per_s"] / best_unconstrained,
               "ratio_default_to_transformers_constrained": fastest_constrained["output_tok_per_s"] / transformers}
    out = {"command": "bash benchmarks/run_local_engines.sh", "hardware": hw, "summary": summary, "rows": rows,
           "python": sys.version.split()[0]}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "local-engines.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# Local engines on the example tasks (SmolLM2-135M-Instruct, 2 shared CPU cores)", "",
             f"Command: `{out['command']}`. Batch 1: the 11 example inputs one at a time; batch 16: 16 support "
             "tickets at once. Greedy, repetition penalty 1.3, at most 300 new tokens; every output validated.", "",
             "| engine | constrained | batch | docs/s | output tok/s | prompt tok/s | p50 s/doc | p99 s/doc | valid |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['engine']} | {'yes' if r['constrained'] else 'no'} | {r['batch']} | {r['docs_per_s']:.2f} | "
              f"{r['output_tok_per_s']:.1f} | {r['prompt_tok_per_s']:.0f} | {r['latency_p50_s']:.2f} | "
              f"{r['latency_p99_s']:.2f} | {r['valid']}/{r['docs']} |" for r in rows]
    lines += ["", f"Fastest constrained: **{summary['default_engine']}**, {summary['default_constrained_tok_s']:.1f} "
              f"output tok/s = {summary['ratio_default_constrained_to_best_unconstrained']:.2f}x the best unconstrained "
              f"engine and {summary['ratio_default_to_transformers_constrained']:.1f}x transformers in process "
              "(constrained), all in this run.", "",
              "Physical limit, measured now: memory bandwidth "
              f"{hw['memory_bandwidth_gb_s']:.1f} GB/s -> batch-1 decode at most {hw['decode_tok_s_limit_fp32']:.0f} "
              f"tok/s in float32 (540 MB of weights read per token), {hw['decode_tok_s_limit_q4']:.0f} tok/s at Q4; "
              f"matmul {hw['matmul_gflop_s']:.0f} GFLOP/s -> prefill at most {hw['prefill_tok_s_limit']:.0f} tok/s "
              f"(2 x 135M FLOPs per token). Batching raises decode past the batch-1 bound: one weight read serves "
              f"every sequence in the batch. vLLM engine start: {hw.get('vllm_engine_start_s', float('nan')):.0f} s "
              f"offline, {hw.get('vllm_server_start_s', float('nan')):.0f} s as a server."]
    (out_dir / "local-engines.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    labels = [f"{r['engine']}\n{'constr.' if r['constrained'] else 'free'} b{r['batch']}" for r in rows]
    ax.barh(range(len(rows)), [r["output_tok_per_s"] for r in rows],
            color=["tab:blue" if r["constrained"] else "tab:gray" for r in rows])
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set_xlabel("output tokens/s (2 CPU cores)")
    ax.set_title("Local engines, SmolLM2-135M, example tasks")
    fig.tight_layout()
    fig.savefig(out_dir / "local-engines.png", dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
