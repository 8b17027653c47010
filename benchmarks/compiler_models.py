"""Constrained generation end to end on CPU.

1. SmolLM2-135M-Instruct (embedded) on the example tasks in datasets/tasks/: valid-output
   rate and throughput (completion tokens/s) with and without the grammar constraint.
2. A tiny random-weight model on sampled MaskBench schemas: every output must be
   schema-valid or a typed error, never an invalid value.

Usage: python benchmarks/compiler_models.py [--schemas 200] [--skip-smollm2] [--out-dir benchmarks/results]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from openfirst.compiler.backends.transformers_local import TransformersBackend  # noqa: E402
from openfirst.compiler.errors import CompilerError  # noqa: E402
from openfirst.compiler.program import UNGUARDED, Failure, Program, ProgramOptions, Result  # noqa: E402
from openfirst.compiler.schema import SchemaOptions  # noqa: E402
from openfirst.compiler.task import compile_json_schema, load_task  # noqa: E402
from openfirst.compiler.validation import make_validator  # noqa: E402

TASKS = [("datasets/tasks/support_ticket.py:SupportTicket", "datasets/tasks/support_tickets.jsonl"),
         ("datasets/tasks/invoice.py:Invoice", "datasets/tasks/invoices.jsonl"),
         ("datasets/tasks/meeting_notes.py:MeetingNotes", "datasets/tasks/meetings.jsonl")]


def smollm2_tasks(max_tokens: int) -> list[dict]:
    backend = TransformersBackend.load("smollm2")
    rows = []
    for spec, inputs in TASKS:
        task = load_task(spec)
        texts = [json.loads(line)["text"] for line in open(inputs, encoding="utf-8") if line.strip()]
        for constrained in (True, False):
            program = Program(task, backend, ProgramOptions(max_tokens=max_tokens, max_retries=0, **UNGUARDED,
                                                            constrained=constrained, repetition_penalty=1.3))
            t0 = time.perf_counter()
            results = program.run_many(texts)
            dt = time.perf_counter() - t0
            tokens = sum(r.usage["completion_tokens"] for r in results)
            errors = [type(r.error).__name__ for r in results if isinstance(r, Failure)]
            rows.append({"task": task.name, "constrained": constrained, "inputs": len(texts),
                         "valid": sum(isinstance(r, Result) for r in results), "errors": errors,
                         "completion_tokens": tokens, "seconds": dt, "tokens_per_s": tokens / dt})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def tiny_random(n_schemas: int, maskbench: Path, seed: int = 0) -> dict:
    from openfirst.compiler.tiny_model import build_tiny_model

    backend = TransformersBackend.load(str(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")))
    with gzip.open(maskbench, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    sample = random.Random(seed).sample(rows, n_schemas)
    counts = {"schemas": n_schemas, "outputs": 0, "valid": 0, "typed_errors": 0, "invalid_returned": 0,
              "refused_at_compile": 0}
    error_types: dict[str, int] = {}
    for row in sample:
        try:
            task = compile_json_schema(row["schema"], "Produce a JSON value.",
                                       SchemaOptions(max_string_length=32, max_items=4))
            program = Program(task, backend, ProgramOptions(max_tokens=200, max_retries=0, temperature=1.0, **UNGUARDED))
        except CompilerError as exc:
            counts["refused_at_compile"] += 1
            error_types[type(exc).__name__] = error_types.get(type(exc).__name__, 0) + 1
            continue
        valid = make_validator(row["schema"])
        for r in program.run_many(["Produce the value."] * 2):
            counts["outputs"] += 1
            if isinstance(r, Result):
                ok = valid(r.output)
                counts["valid" if ok else "invalid_returned"] += 1
            else:
                counts["typed_errors"] += 1
                error_types[type(r.error).__name__] = error_types.get(type(r.error).__name__, 0) + 1
    counts["error_types"] = error_types
    counts["valid_or_typed_error_share"] = (counts["valid"] + counts["typed_errors"]) / max(counts["outputs"], 1)
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schemas", type=int, default=200)
    ap.add_argument("--maskbench", type=Path, default=Path("../shared/datasets/jsonschemabench/maskbench.jsonl.gz"))
    ap.add_argument("--max-tokens", type=int, default=400)
    ap.add_argument("--skip-smollm2", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)
    out = {"command": "python " + " ".join(sys.argv)}
    out["tiny_random"] = tiny_random(args.schemas, args.maskbench)
    print(json.dumps(out["tiny_random"]), flush=True)
    if not args.skip_smollm2:
        out["smollm2"] = smollm2_tasks(args.max_tokens)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "compiler-models.json").write_text(json.dumps(out, indent=2) + "\n")
    t = out["tiny_random"]
    md = ["### Tiny random-weight model on sampled MaskBench schemas", "",
          f"{t['schemas']} schemas, {t['outputs']} generations: {t['valid']} schema-valid, {t['typed_errors']} typed "
          f"errors {t['error_types']}, **{t['invalid_returned']} invalid outputs returned**; "
          f"{t['refused_at_compile']} refused at compile time.", ""]
    if "smollm2" in out:
        md += ["### SmolLM2-135M-Instruct on the example tasks (CPU)", "",
               "| task | constrained | valid / inputs | errors | completion tokens/s |", "|---|---|---|---|---|"]
        md += [f"| {r['task']} | {r['constrained']} | {r['valid']} / {r['inputs']} | {', '.join(r['errors']) or '–'} "
               f"| {r['tokens_per_s']:.1f} |" for r in out["smollm2"]]
    (args.out_dir / "compiler-models.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
