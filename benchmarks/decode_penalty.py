"""A decode that copies the input: where the repetition penalty applies, measured on labelled extractions.

llama.cpp's own `repeat_penalty` (like vLLM's `repetition_penalty`) punishes every token already in the context,
the prompt's included, so the words of the input that an extraction must copy are pushed down; openfirst's
processor can penalise the generated tokens only (as its transformers path does). On the embedded SmolLM2-135M
(in-process llama.cpp, greedy, the default prompt: outline + leak guard, 2 retries), one run:

- the 11 example inputs with hand-labelled fields (datasets/tasks/gold.jsonl, 27 fields, exact match), valid share;
- SNIPS slot filling as a user runs it: free text (no span grammar), the default prompt, 5 retrieved examples,
  10 validate utterances per intent (70): macro slot F1 (exact values) and utterances all right;
- 25 MaskBench schemas (seed 0): valid share and outputs cut at max_tokens (the loops a penalty is for).

    bash benchmarks/run_decode_penalty.sh      # writes benchmarks/results/decode-penalty.{json,md}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
SETTINGS = {
    "llama.cpp": [("1.3 on prompt and output (llama.cpp's repeat_penalty: the default before)", True, 1.3),
                  ("1.3 on generated tokens only (openfirst's processor)", False, 1.3),
                  ("1.1 on generated tokens only", False, 1.1),
                  ("none (1.0)", False, 1.0)],
    "vllm": [("1.3 on prompt and output (vLLM's repetition_penalty: the default before)", True, 1.3),
             ("1.3 on generated tokens only (openfirst's vLLM logits processor)", False, 1.3),
             ("none (1.0)", False, 1.0)]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--snips-per-intent", type=int, default=10)
    p.add_argument("--engine", choices=list(SETTINGS), default="llama.cpp",
                   help="llama.cpp (decode-penalty.*) or vLLM in process (decode-penalty-vllm.*)")
    args = p.parse_args()
    from local_engines import cpu_facts, maskbench_rows
    from small_model_guards import run_maskbench, run_tasks, task_inputs

    from openfirst.cascade import bench
    from openfirst.cascade.snips import load
    from openfirst.compiler.backends.llamacpp_local import LlamaCppBackend
    from openfirst.router.embeddings import DEFAULT_MODEL, Embedder
    from openfirst.router.public_data import default_data_dir

    if args.engine == "vllm":
        from openfirst.compiler.backends.vllm_offline import VLLMOfflineBackend

        backend = VLLMOfflineBackend.load()
        model = f"SmolLM2-135M-Instruct ({backend.dtype}, vLLM's CPU build in process)"
    else:
        backend = LlamaCppBackend.load()
        model = "SmolLM2-135M-Instruct Q4_1 (llama.cpp in process)"
    stem = "decode-penalty" + ("-vllm" if args.engine == "vllm" else "")
    tasks, schemas = task_inputs(), maskbench_rows(25)
    snips = load(default_data_dir())
    embedder = Embedder(DEFAULT_MODEL, show_progress=False)
    rows = []
    for name, on_prompt, penalty in SETTINGS[args.engine]:
        backend.penalise_prompt = on_prompt
        t0 = time.perf_counter()
        labelled = run_tasks(backend, {"repetition_penalty": penalty}, tasks)
        outputs = labelled.pop("outputs")
        records = bench.run_local(snips, "similar", 5, args.snips_per_intent, backend,
                                  lambda t: embedder.encode(list(t)), progress=False, extractive=False,
                                  prompt={"repetition_penalty": penalty})
        f1 = bench.slot_f1(records)
        row = {"setting": name, "penalty": penalty, "on_prompt": on_prompt, "labelled": labelled,
               "snips": {"utterances": len(records), "macro_slot_f1": round(f1["macro"], 4),
                         "all_right": sum(bool(r["all_right"]) for r in records),
                         "valid": sum(bool(r["valid"]) for r in records)},
               "maskbench": run_maskbench(backend, {"repetition_penalty": penalty}, schemas),
               "seconds": round(time.perf_counter() - t0, 1), "outputs": outputs}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "outputs"}), flush=True)
    command = " ".join(["bash benchmarks/run_decode_penalty.sh", *sys.argv[1:]]).replace(" --out-dir benchmarks/results", "")
    out = {"command": command, "hardware": cpu_facts(), "model": model, "rows": rows}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{stem}.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [f"# Where the repetition penalty applies: labelled extraction on the embedded model ({args.engine})", "",
             f"Command: `{out['command']}`; one run; CPU {out['hardware']['cpu_model']}. Greedy, default prompt "
             "(outline + leak guard), 2 retries. SNIPS: free text, 5 retrieved examples, "
             f"{args.snips_per_intent} validate utterances per intent.", "",
             "| repetition penalty | labelled fields exact | valid (11) | SNIPS macro slot F1 | SNIPS all right | "
             "MaskBench valid | MaskBench cut at max_tokens | seconds |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lab, sn, mb = r["labelled"], r["snips"], r["maskbench"]
        lines.append(f"| {r['setting']} | {lab['fields_exact']}/{lab['fields']} | {lab['valid']}/{lab['docs']} | "
                     f"{sn['macro_slot_f1']:.3f} | {sn['all_right']}/{sn['utterances']} | "
                     f"{mb['valid']}/{mb['compiled']} | {mb['truncated']} | {r['seconds']} |")
    (args.out_dir / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
