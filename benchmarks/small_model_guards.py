"""Small-model failure modes and the guards against them, measured on the embedded SmolLM2-135M (in-process
llama.cpp, greedy): the repetition penalty (looping strings cut at max_tokens), and in-context examples (an
example's output copied into the answer). Inputs: the 11 example-task inputs, and 25 MaskBench schemas (seed 0).

Per setting: valid share; outputs cut at max_tokens; example copies (an output holds a run of 5 or more words of
an example's output that is not in its own input); schema words as values (a string value that is a JSON Schema
keyword: "type", "items", "array", "string", ...).

    bash benchmarks/run_small_model_guards.sh      # writes benchmarks/results/small-model-guards.{json,md}
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_WORDS = {"type", "items", "array", "string", "object", "properties", "integer", "number", "boolean", "null",
                "required", "enum", "anyOf", "description", "title", "default", "format", "maxLength", "minimum"}
PENALTIES = (1.0, 1.1, 1.3)


def strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def copies_example(output: dict, example_outputs: list[dict], text: str, n: int = 5) -> bool:
    """An output string holds n consecutive words of an example's output that its own input does not hold."""
    grams = set()
    for ex in example_outputs:
        for s in strings(ex):
            words = s.lower().split()
            grams |= {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}
    low_text = text.lower()
    for s in strings(output):
        words = s.lower().split()
        if any(" ".join(words[i:i + n]) in grams and " ".join(words[i:i + n]) not in low_text
               for i in range(len(words) - n + 1)):
            return True
    return False


def run_tasks(backend, penalty: float, with_examples: bool) -> dict:
    import dataclasses

    from openfirst.compiler.errors import IncompleteOutput
    from openfirst.compiler.program import Program, ProgramOptions, Result
    from local_engines import inputs

    counts = {"docs": 0, "valid": 0, "truncated": 0, "example_copies": 0, "schema_word_values": 0}
    for task, texts in inputs():
        examples = [e.output.model_dump(mode="json") for e in task.examples]
        run_task = task if with_examples else dataclasses.replace(task, examples=[])
        program = Program(run_task, backend, ProgramOptions(max_tokens=300, max_retries=0,
                                                            repetition_penalty=penalty))
        for text, r in zip(texts, program.run_many(texts)):
            counts["docs"] += 1
            if isinstance(r, Result):
                counts["valid"] += 1
                out = r.output.model_dump(mode="json")
                counts["example_copies"] += copies_example(out, examples, text)
                counts["schema_word_values"] += any(s.strip() in SCHEMA_WORDS for s in strings(out))
            elif isinstance(r.error, IncompleteOutput):
                counts["truncated"] += 1
    return counts


def run_maskbench(backend, penalty: float, rows: list[dict]) -> dict:
    from openfirst.compiler.errors import CompilerError, IncompleteOutput
    from openfirst.compiler.program import Program, ProgramOptions, Result
    from openfirst.compiler.schema import SchemaOptions
    from openfirst.compiler.task import compile_json_schema

    counts = {"schemas": 0, "compiled": 0, "valid": 0, "truncated": 0, "schema_word_values": 0}
    for row in rows:
        counts["schemas"] += 1
        try:
            task = compile_json_schema(row["schema"], "Produce a JSON value.",
                                       SchemaOptions(max_string_length=40, max_items=4))
            program = Program(task, backend, ProgramOptions(max_tokens=200, max_retries=0,
                                                            repetition_penalty=penalty))
        except CompilerError:
            continue
        counts["compiled"] += 1
        r = program.run_many(["Produce a JSON value."])[0]
        if isinstance(r, Result):
            counts["valid"] += 1
            counts["schema_word_values"] += any(s.strip() in SCHEMA_WORDS for s in strings(r.output))
        elif isinstance(r.error, IncompleteOutput):
            counts["truncated"] += 1
    return counts


def main() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from local_engines import maskbench_rows

    from openfirst.compiler.backends.llamacpp_local import LlamaCppBackend

    backend = LlamaCppBackend.load()
    rows = maskbench_rows(25)
    t0 = time.perf_counter()
    out = {"command": "bash benchmarks/run_small_model_guards.sh", "tasks": [], "maskbench": []}
    for penalty in PENALTIES:
        for with_examples in (True, False):
            row = {"repetition_penalty": penalty, "examples": with_examples,
                   **run_tasks(backend, penalty, with_examples)}
            out["tasks"].append(row)
            print(json.dumps(row), flush=True)
        row = {"repetition_penalty": penalty, **run_maskbench(backend, penalty, rows)}
        out["maskbench"].append(row)
        print(json.dumps(row), flush=True)
    out["seconds"] = time.perf_counter() - t0
    best = max(PENALTIES, key=lambda p: (sum(r["valid"] for r in out["tasks"] if r["repetition_penalty"] == p)
                                         + sum(r["valid"] for r in out["maskbench"] if r["repetition_penalty"] == p),
                                         -p))
    out["best_repetition_penalty"] = best
    res = ROOT / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "small-model-guards.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# Small-model guards (SmolLM2-135M, llama.cpp in process, greedy)", "",
             f"Command: `{out['command']}`; {out['seconds']:.0f} s. Example tasks: the 11 example inputs, at most "
             "300 tokens; MaskBench: 25 schemas (seed 0), at most 200 tokens.", "",
             "| repetition penalty | examples in the prompt | valid | cut at max_tokens | example copied | "
             "schema word as a value |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['repetition_penalty']} | {'yes' if r['examples'] else 'no'} | {r['valid']}/{r['docs']} | "
              f"{r['truncated']} | {r['example_copies']} | {r['schema_word_values']} |" for r in out["tasks"]]
    lines += ["", "| repetition penalty | MaskBench compiled | valid | cut at max_tokens | schema word as a value |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['repetition_penalty']} | {r['compiled']}/{r['schemas']} | {r['valid']} | {r['truncated']} | "
              f"{r['schema_word_values']} |" for r in out["maskbench"]]
    lines += ["", f"Most valid outputs over both samples: repetition penalty **{best}**. The default of "
              "`ProgramOptions.repetition_penalty` and `openfirst extract --repetition-penalty` is 1.3."]
    (res / "small-model-guards.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
