"""Every local engine on the same compiled tasks and inputs, in one run: which one is the embedded default, and
openfirst's path against outlines' own path per engine.

Engines: llama.cpp in process (llama-cpp-python on the GGUF; openfirst's grammar as an outlines logits processor
handed to llama.cpp's API, or through outlines' `LlamaCpp` wrapper), transformers in process through outlines
(openfirst's grammar as the processor), outlines' own JSON output type (llguidance backend) on both, the retired
hand-written transformers loop (the anchor: "today's path" before outlines), llama.cpp's server, vLLM offline
(`vllm.LLM`, its CPU build here) and vLLM's OpenAI-compatible server; constrained (the task's schema) and
unconstrained (prompt only, output still validated), at batch 1 (the 11 example inputs one at a time) and batch 16
(16 support tickets at once: one engine batch, 16 concurrent requests to a server, or 16 in a row where the engine
has no batch API). Same model everywhere: the embedded SmolLM2-135M-Instruct (float32 for transformers and vLLM,
the Q4_1 GGUF for llama.cpp), greedy, repetition penalty 1.3, at most 300 new tokens. Every returned output is
checked again against the task's JSON Schema (`invalid_returned` must be 0).

MaskBench: a fixed sample of 200 schemas (seed 0) from JSONSchemaBench's MaskBench. Grammar level (no model):
schemas compiled and valid test instances rejected, for openfirst's grammar and for llguidance compiling the raw
schema the way outlines' JSON type does. Generation on in-process llama.cpp, at most 128 tokens, both paths:
outputs returned and invalid outputs returned (an output outlines returns that parses as JSON but breaks the
schema counts as returned invalid).

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


ALL = [(True, 1), (True, 16), (False, 1), (False, 16)]
CONSTRAINED = [(True, 1), (True, 16)]


def run(backend, tasks, constrained: bool, batch: int, use_async: bool) -> dict:
    """Docs, tokens, wall time, per-doc latencies, validity and returned-but-invalid outputs for one setting."""
    from openfirst.compiler.program import UNGUARDED, Program, ProgramOptions, Result
    from openfirst.compiler.validation import make_validator

    # the prompt every engine row was measured with (the guards' own effect: small-model-guards.md)
    opts = ProgramOptions(max_tokens=300, max_retries=0, constrained=constrained, repetition_penalty=1.3,
                          **UNGUARDED)
    results, latencies, checked = [], [], []
    start = time.perf_counter()
    if batch == 1:
        for task, texts in tasks:
            program = Program(task, backend, opts)
            for text in texts:
                t0 = time.perf_counter()
                out = asyncio.run(program.arun_many([text])) if use_async else program.run_many([text])
                latencies.append(time.perf_counter() - t0)
                results += out
                checked += [(task, r) for r in out]
    else:
        task, texts = tasks[0]
        batch_texts = [texts[i % len(texts)] for i in range(batch)]
        program = Program(task, backend, opts)
        t0 = time.perf_counter()
        results = asyncio.run(program.arun_many(batch_texts)) if use_async else program.run_many(batch_texts)
        latencies = [r.latency_s for r in results] if use_async else [time.perf_counter() - t0] * batch
        checked = [(task, r) for r in results]
    wall = time.perf_counter() - start
    out_tokens = sum(r.usage.get("completion_tokens", 0) for r in results)
    in_tokens = sum(r.usage.get("prompt_tokens", 0) for r in results)
    invalid = sum(1 for task, r in checked if isinstance(r, Result)
                  and not make_validator(task.json_schema)(r.output.model_dump(mode="json")))
    return {"docs": len(results), "valid": sum(isinstance(r, Result) for r in results), "invalid_returned": invalid,
            "seconds": wall, "docs_per_s": len(results) / wall, "output_tok_per_s": out_tokens / wall,
            "prompt_tok_per_s": in_tokens / wall,
            "latency_p50_s": float(np.percentile(latencies, 50)), "latency_p99_s": float(np.percentile(latencies, 99)),
            "errors": sorted({type(r.error).__name__ for r in results if not isinstance(r, Result)})}


def measure(name: str, via: str, backend, tasks, use_async: bool, rows: list, settings=ALL) -> None:
    for constrained, batch in settings:
        row = {"engine": name, "via": via, "constrained": constrained, "batch": batch,
               **run(backend, tasks, constrained, batch, use_async)}
        rows.append(row)
        print(json.dumps(row), flush=True)


def cpu_facts() -> dict:
    """The CPU every number of the run came from, and the instruction sets the llama.cpp build was compiled with."""
    from openfirst.compiler.doctor import llamacpp_build
    from openfirst.core.machine import this_cpu

    cpu = this_cpu()
    return {"cpu_model": cpu.model, "cpu_cores": cpu.cores, "cpu_features": cpu.engine_features,
            "cpu_fast_bfloat16": cpu.fast_bfloat16, "llama_cpp_build": llamacpp_build()}


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
    return {**cpu_facts(), "memory_bandwidth_gb_s": bandwidth / 1e9, "matmul_gflop_s": flops / 1e9,
            "decode_tok_s_limit_fp32": bandwidth / (PARAMS * 4), "decode_tok_s_limit_q4": bandwidth / (PARAMS * 0.56),
            "prefill_tok_s_limit": flops / (2 * PARAMS)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--engines", nargs="+", default=["llama.cpp", "llama.cpp-isolated", "transformers",
                                                     "retired-loop", "llama.cpp-server", "vllm", "vllm-bfloat16",
                                                     "vllm-isolated", "vllm-server", "maskbench"])
    p.add_argument("--maskbench-schemas", type=int, default=200)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from outlines_native import OutlinesJsonBackend, llamacpp_kwargs, transformers_kwargs

    tasks = inputs()
    rows: list[dict] = []
    hw = hardware()
    print(json.dumps(hw), flush=True)
    maskbench = None
    if "llama.cpp" in args.engines or "maskbench" in args.engines:
        from openfirst.compiler.backends.llamacpp_local import LlamaCppBackend

        llama = LlamaCppBackend.load()
        count = lambda text: len(llama.llm.tokenize(text.encode(), add_bos=False))  # noqa: E731
        native = OutlinesJsonBackend(llama.model, "llama.cpp (outlines JSON type)", llama.model_name, count,
                                     batch=False, engine_kwargs=llamacpp_kwargs)
        if "llama.cpp" in args.engines:
            measure("llama.cpp in process", "llama.cpp API + openfirst grammar (outlines processor)", llama, tasks,
                    False, rows)
            wrapped = LlamaCppBackend(llama.llm, llama.model_name, via_outlines=True)
            measure("llama.cpp in process", "outlines LlamaCpp + openfirst grammar", wrapped, tasks, False, rows,
                    CONSTRAINED)
            measure("llama.cpp in process", "outlines LlamaCpp + outlines JSON type", native, tasks, False, rows,
                    CONSTRAINED)
            free = OutlinesJsonBackend(llama.model, "llama.cpp (outlines JSON type)", llama.model_name, count,
                                       batch=False, bounded_whitespace=False, engine_kwargs=llamacpp_kwargs)
            measure("llama.cpp in process", "outlines LlamaCpp + outlines JSON type, default whitespace", free, tasks,
                    False, rows, [(True, 1)])
        if "maskbench" in args.engines:
            maskbench = run_maskbench(llama, native, args.maskbench_schemas)
    if "transformers" in args.engines:
        from openfirst.compiler.backends.transformers_local import TransformersBackend

        hf = TransformersBackend.load("smollm2")
        measure("transformers in process", "outlines Transformers + openfirst grammar", hf, tasks, False, rows)
        count = lambda text: len(hf.tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
        native = OutlinesJsonBackend(hf.outlines_model, "transformers (outlines JSON type)", hf.model_name, count,
                                     batch=True, engine_kwargs=transformers_kwargs)
        measure("transformers in process", "outlines Transformers + outlines JSON type", native, tasks, False, rows,
                CONSTRAINED)
    if "retired-loop" in args.engines:
        from retired_decode_loop import RetiredLoopBackend

        measure("transformers in process", "retired hand-written loop (anchor)", RetiredLoopBackend.load("smollm2"),
                tasks, False, rows, CONSTRAINED)
    if "llama.cpp-server" in args.engines:
        from openfirst.compiler.backends.llamacpp_server import LlamaCppServer
        from openfirst.compiler.backends.openai_compat import OpenAICompatibleBackend

        with LlamaCppServer(n_ctx=4096) as server:
            backend = OpenAICompatibleBackend(server.alias, base_url=server.base_url, flavor="llama.cpp",
                                              max_concurrency=16)
            measure("llama.cpp server", "HTTP, response_format schema", backend, tasks, True, rows)
    if "llama.cpp-isolated" in args.engines:
        from openfirst.compiler.backends.isolated import EngineSpec, IsolatedBackend

        backend = IsolatedBackend(EngineSpec("llama.cpp"))
        measure("llama.cpp in process", "isolated: llama.cpp in a supervised child process (serve's default)",
                backend, tasks, False, rows, CONSTRAINED)
        backend.close()
    for dtype in ("float32", "bfloat16"):
        if ("vllm" if dtype == "float32" else "vllm-bfloat16") not in args.engines:
            continue
        from openfirst.compiler.backends.vllm_offline import VLLMOfflineBackend, VLLMOptions

        t0 = time.perf_counter()
        backend = VLLMOfflineBackend.load(VLLMOptions.for_this_machine(dtype=dtype))
        hw[f"vllm_engine_start_s_{dtype}"] = time.perf_counter() - t0
        measure("vLLM offline", f"vLLM structured outputs (llguidance), {dtype}", backend, tasks, False, rows,
                ALL if dtype == "float32" else CONSTRAINED)
        backend.close()
    if "vllm-isolated" in args.engines:
        from openfirst.compiler.backends.isolated import EngineSpec, IsolatedBackend

        backend = IsolatedBackend(EngineSpec("vllm"))
        measure("vLLM offline", f"isolated: vLLM in a supervised child process, {backend.health().get('dtype')}",
                backend, tasks, False, rows, CONSTRAINED)
        backend.close()
    if "vllm-server" in args.engines:
        from openfirst.compiler.backends.openai_compat import OpenAICompatibleBackend
        from openfirst.compiler.backends.vllm_server import VLLMServer

        t0 = time.perf_counter()
        with VLLMServer() as server:
            hw["vllm_server_start_s"] = time.perf_counter() - t0
            backend = OpenAICompatibleBackend(server.alias, base_url=server.base_url, flavor="vllm", max_concurrency=16)
            measure("vLLM server", "HTTP, vLLM structured outputs", backend, tasks, True, rows)
    write(args.out_dir, rows, hw, maskbench)


def maskbench_rows(n: int, seed: int = 0) -> list[dict]:
    import gzip
    import random

    path = ROOT.parent / "shared" / "datasets" / "jsonschemabench" / "maskbench.jsonl.gz"
    with gzip.open(path, "rt") as fh:
        rows = [json.loads(line) for line in fh]
    return random.Random(seed).sample(rows, n)


def run_maskbench(llama, native, n: int) -> dict:
    """Grammar level on both paths (MaskBench's own counters), then generation on in-process llama.cpp."""
    from tqdm.auto import tqdm

    from openfirst.compiler.bench import MaskBench
    from openfirst.compiler.errors import CompilerError
    from openfirst.compiler.program import UNGUARDED, Program, ProgramOptions, Result
    from openfirst.compiler.schema import SchemaOptions
    from openfirst.compiler.task import compile_json_schema
    from openfirst.compiler.tokenizer import smollm2_tokenizer
    from openfirst.compiler.validation import make_validator
    from outlines_native import outlines_schema

    rows = maskbench_rows(n)
    bench = MaskBench(smollm2_tokenizer())
    bench.run(rows)
    grammar = bench.summary()
    gen = {"openfirst": {"compiled": 0, "returned": 0, "invalid_returned": 0, "typed_errors": 0},
           "outlines": {"compiled": 0, "returned": 0, "invalid_returned": 0, "unparseable": 0}}
    opts = ProgramOptions(max_tokens=128, max_retries=0, **UNGUARDED)
    t0 = time.perf_counter()
    for row in tqdm(rows, desc="maskbench generation", unit="schema"):
        validator = make_validator(row["schema"])
        try:
            task = compile_json_schema(row["schema"], "Produce a JSON value.",
                                       SchemaOptions(max_string_length=40, max_items=4))
            program = Program(task, llama, opts)
        except CompilerError:
            task = None
        if task is not None:
            gen["openfirst"]["compiled"] += 1
            r = program.run_many(["Produce a JSON value."])[0]
            if isinstance(r, Result):
                gen["openfirst"]["returned"] += 1
                gen["openfirst"]["invalid_returned"] += not validator(r.output)
            else:
                gen["openfirst"]["typed_errors"] += 1
        try:
            generator = native.generator_for(row["schema"])
        except CompilerError:
            continue
        gen["outlines"]["compiled"] += 1
        messages = task.messages("Produce a JSON value.") if task is not None else [  # the same prompt
            {"role": "system", "content": "Produce a JSON value matching this JSON Schema:\n"
             + json.dumps(outlines_schema(row["schema"], False))[:4000]},
            {"role": "user", "content": "Produce a JSON value."}]
        answer = native.generate([messages], generator, 128)[0]
        if answer.error is not None:  # the engine refused the prompt (longer than its context)
            gen["outlines"]["refused"] = gen["outlines"].get("refused", 0) + 1
            continue
        text = answer.text
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            gen["outlines"]["unparseable"] += 1
            continue
        gen["outlines"]["returned"] += 1
        gen["outlines"]["invalid_returned"] += not validator(value)
    return {"schemas": n, "seed": 0, "grammar": {
        "openfirst": {k: grammar[k] for k in ("compiled", "valid_instances", "valid_rejected", "invalid_accepted")},
        "outlines_llguidance_raw": {k: grammar["raw_llguidance"].get(k) for k in grammar["raw_llguidance"]
                                    if not isinstance(grammar["raw_llguidance"].get(k), dict)}},
        "generation_llamacpp": gen, "generation_seconds": time.perf_counter() - t0}


def best(rows: list[dict], engine: str, via_prefix: str, constrained: bool, batch: int | None = None) -> float:
    xs = [r["output_tok_per_s"] for r in rows if r["engine"] == engine and r["via"].startswith(via_prefix)
          and r["constrained"] == constrained and (batch is None or r["batch"] == batch)]
    return max(xs) if xs else float("nan")


def summarise(rows: list[dict]) -> dict:
    fastest_constrained = max((r for r in rows if r["constrained"]), key=lambda r: r["output_tok_per_s"])
    best_unconstrained = max((r["output_tok_per_s"] for r in rows if not r["constrained"]), default=float("nan"))
    llama_b1 = best(rows, "llama.cpp in process", "llama.cpp API", True, 1)
    retired_b1 = best(rows, "transformers in process", "retired", True, 1)
    outlines_hf_b1 = best(rows, "transformers in process", "outlines Transformers + openfirst", True, 1)
    return {"default_engine": fastest_constrained["engine"], "default_via": fastest_constrained["via"],
            "default_constrained_tok_s": fastest_constrained["output_tok_per_s"],
            "best_unconstrained_tok_s": best_unconstrained,
            "ratio_default_constrained_to_best_unconstrained":
                fastest_constrained["output_tok_per_s"] / best_unconstrained,
            "ratio_default_to_transformers_constrained":
                fastest_constrained["output_tok_per_s"] / best(rows, "transformers in process", "outlines", True),
            "llamacpp_in_process_b1_tok_s": llama_b1,
            "ratio_llamacpp_in_process_to_retired_loop_b1": llama_b1 / retired_b1,
            "ratio_llamacpp_in_process_to_transformers_outlines_b1": llama_b1 / outlines_hf_b1,
            "ratio_outlines_transformers_to_retired_loop_b1": outlines_hf_b1 / retired_b1,
            "invalid_returned_total": sum(r["invalid_returned"] for r in rows)}


def write(out_dir: Path, rows: list[dict], hw: dict, maskbench: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarise(rows)
    out = {"command": "bash benchmarks/run_local_engines.sh", "hardware": hw, "summary": summary, "rows": rows,
           "maskbench": maskbench, "python": sys.version.split()[0]}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "local-engines.json").write_text(json.dumps(out, indent=2) + "\n")
    build = hw.get("llama_cpp_build") or {}
    lines = ["# Local engines on the example tasks (SmolLM2-135M-Instruct, 2 shared CPU cores)", "",
             f"CPU: **{hw['cpu_model']}**, {hw['cpu_cores']} cores, instruction sets {' '.join(hw['cpu_features'])}"
             f" (AMX bfloat16: {'yes' if hw['cpu_fast_bfloat16'] else 'no'}); llama.cpp built with "
             f"{' '.join(build.get('instruction_sets', [])) or '-'}.", "",
             f"Command: `{out['command']}`. Batch 1: the 11 example inputs one at a time; batch 16: 16 support "
             "tickets at once (one engine batch, 16 concurrent requests to a server, 16 in a row for in-process "
             "llama.cpp). Greedy, repetition penalty 1.3, at most 300 new tokens; every output validated, and every "
             "returned output checked again against the schema (invalid returned).", "",
             "| engine | via | constrained | batch | docs/s | output tok/s | prompt tok/s | p50 s/doc | p99 s/doc "
             "| valid | invalid returned |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['engine']} | {r['via']} | {'yes' if r['constrained'] else 'no'} | {r['batch']} | "
              f"{r['docs_per_s']:.2f} | {r['output_tok_per_s']:.1f} | {r['prompt_tok_per_s']:.0f} | "
              f"{r['latency_p50_s']:.2f} | {r['latency_p99_s']:.2f} | {r['valid']}/{r['docs']} | "
              f"{r['invalid_returned']} |" for r in rows]
    lines += ["", f"Fastest constrained: **{summary['default_engine']}** ({summary['default_via']}), "
              f"{summary['default_constrained_tok_s']:.1f} output tok/s = "
              f"{summary['ratio_default_constrained_to_best_unconstrained']:.2f}x the best unconstrained engine and "
              f"{summary['ratio_default_to_transformers_constrained']:.1f}x transformers in process through outlines "
              "(constrained), all in this run.", "",
              f"In-process llama.cpp, constrained, batch 1: {summary['llamacpp_in_process_b1_tok_s']:.1f} tok/s = "
              f"**{summary['ratio_llamacpp_in_process_to_retired_loop_b1']:.1f}x** the retired hand-written "
              f"transformers loop and {summary['ratio_llamacpp_in_process_to_transformers_outlines_b1']:.1f}x "
              "transformers through outlines; transformers through outlines = "
              f"{summary['ratio_outlines_transformers_to_retired_loop_b1']:.2f}x the retired loop. Invalid outputs "
              f"returned, all rows: {summary['invalid_returned_total']}.", "",
              "Physical limit, measured now: memory bandwidth "
              f"{hw['memory_bandwidth_gb_s']:.1f} GB/s -> batch-1 decode at most {hw['decode_tok_s_limit_fp32']:.0f} "
              f"tok/s in float32 (540 MB of weights read per token), {hw['decode_tok_s_limit_q4']:.0f} tok/s at Q4; "
              f"matmul {hw['matmul_gflop_s']:.0f} GFLOP/s -> prefill at most {hw['prefill_tok_s_limit']:.0f} tok/s "
              f"(2 x 135M FLOPs per token). Batching raises decode past the batch-1 bound: one weight read serves "
              f"every sequence in the batch. vLLM engine start: {hw.get('vllm_engine_start_s_float32', float('nan')):.0f} s "
              f"offline, {hw.get('vllm_server_start_s', float('nan')):.0f} s as a server."]
    if maskbench:
        g, m = maskbench["grammar"], maskbench["generation_llamacpp"]
        of, raw = g["openfirst"], g["outlines_llguidance_raw"]
        lines += ["", f"## MaskBench sample: {maskbench['schemas']} schemas (seed {maskbench['seed']})", "",
                  "| path | schemas compiled | valid instances rejected | invalid instances accepted | "
                  "generated and returned (llama.cpp, <= 128 tokens) | invalid returned |", "|---|---|---|---|---|---|",
                  f"| openfirst grammar + validation | {of['compiled']} | {of['valid_rejected']}/{of['valid_instances']} "
                  f"| {of['invalid_accepted']} | {m['openfirst']['returned']}/{m['openfirst']['compiled']} "
                  f"({m['openfirst']['typed_errors']} typed errors) | {m['openfirst']['invalid_returned']} |",
                  f"| outlines JSON type (llguidance, raw schema) | {m['outlines']['compiled']} (llguidance alone: "
                  f"{raw.get('compiled')}) | {raw.get('valid_rejected')}/{raw.get('valid_instances')} | "
                  f"{raw.get('invalid_accepted')} | {m['outlines']['returned']}/{m['outlines']['compiled']} "
                  f"({m['outlines']['unparseable']} not JSON, {m['outlines'].get('refused', 0)} refused by the engine) | "
                  f"{m['outlines']['invalid_returned']} |"]
    (out_dir / "local-engines.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.5))
    labels = [f"{r['engine']} · {r['via'][:38]}\n{'constr.' if r['constrained'] else 'free'} b{r['batch']}"
              for r in rows]
    ax.barh(range(len(rows)), [r["output_tok_per_s"] for r in rows],
            color=["tab:blue" if r["constrained"] else "tab:gray" for r in rows])
    ax.set_yticks(range(len(rows)), labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("output tokens/s (2 CPU cores)")
    ax.set_title(f"Local engines, SmolLM2-135M, example tasks (blue: constrained)\n{hw['cpu_model']}, "
                 f"{hw['cpu_cores']} cores, AMX bfloat16: {'yes' if hw['cpu_fast_bfloat16'] else 'no'}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "local-engines.png", dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
