"""What users get from vLLM's CPU build in float32 and in bfloat16 on this CPU: accuracy, not only speed.

`VLLMOptions.for_this_machine` picks bfloat16 on CPUs with AMX bfloat16 tiles, because it decoded faster there
(benchmarks/results/local-engines.md). This benchmark checks what the switch costs in answers, both dtypes on the
same inputs in one run: the 11 example inputs with hand-labelled fields (datasets/tasks/gold.jsonl, 27 fields;
exact match; the default ProgramOptions, i.e. what `openfirst extract --backend vllm` runs) and 50 MaskBench
schemas (seed 0, the live test's sample: outputs valid and returned, invalid returned), plus the seconds each took.

    bash benchmarks/run_vllm_cpu_dtype.sh      # writes benchmarks/results/vllm-cpu-dtype.{json,md}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))


def maskbench(backend) -> dict:
    from openfirst.compiler.backends.vllm_offline import sampling_kwargs, vllm_sampling_params
    from openfirst.compiler.errors import CompilerError
    from openfirst.compiler.validation import make_validator
    from tests.compiler.backends.test_vllm_live import maskbench_tasks

    tasks, constraints = [], []
    for task in maskbench_tasks():
        try:
            constraints.append(backend.constraint_for(task))
            tasks.append(task)
        except CompilerError:
            continue
    t0 = time.perf_counter()
    outputs = backend.llm.chat([t.messages("Produce one example value.", []) for t in tasks],
                               [vllm_sampling_params(sampling_kwargs(c, 256)) for c in constraints], use_tqdm=False)
    seconds = time.perf_counter() - t0
    valid = invalid = truncated = 0
    for task, out in zip(tasks, outputs):
        best = out.outputs[0]
        if best.finish_reason == "length":
            truncated += 1
            continue
        try:
            data = task.parse(best.text)
        except CompilerError:
            continue
        valid += 1
        invalid += not make_validator(task.json_schema)(data)
    return {"schemas": len(tasks), "valid": valid, "truncated": truncated, "invalid_returned": invalid,
            "seconds": seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    from local_engines import cpu_facts
    from small_model_guards import run_tasks, task_inputs

    from openfirst.compiler.backends.vllm_offline import VLLMOfflineBackend, VLLMOptions, cpu_dtype

    tasks = task_inputs()
    rows = []
    for dtype in ("float32", "bfloat16"):
        t0 = time.perf_counter()
        backend = VLLMOfflineBackend.load(VLLMOptions.for_this_machine(dtype=dtype))
        start_s = time.perf_counter() - t0
        labelled = run_tasks(backend, {}, tasks)
        labelled.pop("outputs")
        row = {"dtype": dtype, "engine_start_s": start_s, "labelled": labelled, "maskbench": maskbench(backend)}
        backend.close()
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"command": "bash benchmarks/run_vllm_cpu_dtype.sh", "hardware": cpu_facts(), "default_here": cpu_dtype(),
           "rows": rows}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "vllm-cpu-dtype.json").write_text(json.dumps(out, indent=2) + "\n")
    hw = out["hardware"]
    lines = ["# vLLM's CPU build: float32 against bfloat16, answers and time (SmolLM2-135M-Instruct)", "",
             f"CPU: **{hw['cpu_model']}**, {hw['cpu_cores']} cores, AMX bfloat16: "
             f"{'yes' if hw['cpu_fast_bfloat16'] else 'no'}; the default here: **{out['default_here']}**. "
             f"Command: `{out['command']}`; one run, both dtypes on the same inputs.", "",
             "| dtype | labelled fields exact | valid (11 inputs) | seconds (11 inputs) | MaskBench valid | truncated | "
             "invalid returned | MaskBench s (one batch) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lab, mb = r["labelled"], r["maskbench"]
        lines.append(f"| {r['dtype']} | {lab['fields_exact']}/{lab['fields']} | {lab['valid']}/{lab['docs']} | "
                     f"{lab['seconds']:.1f} | {mb['valid']}/{mb['schemas']} | {mb['truncated']} | "
                     f"{mb['invalid_returned']} | {mb['seconds']:.1f} |")
    (args.out_dir / "vllm-cpu-dtype.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
