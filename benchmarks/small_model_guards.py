"""Small-model failure modes and the guards against them, measured on the embedded SmolLM2-135M (in-process
llama.cpp, greedy), one guard at a time and all together, in one run:

- repetition penalty (1.0 / 1.1 / 1.3): strings that loop until max_tokens;
- `schema_in_prompt="outline"`: the prompt describes the output as a keyword-free template instead of the raw
  JSON Schema (whose keywords small models answer with);
- `examples_in_prompt="marked"`: few-shot examples in the system prompt, marked as showing the format only,
  instead of chat turns (which small models repeat);
- `leak_guard=True`: an output whose free-text value is a schema word or copies an example is rejected and
  retried with the reason as feedback (`compiler.guards.find_leaks`), a typed `LeakedValue` when retries run out.

Inputs: the 11 example-task inputs (datasets/tasks) with hand-labelled closed fields (datasets/tasks/gold.jsonl:
ticket category (and t1's priority), invoice vendor, number, dates, currency, total, meeting action-item owners),
and 25 MaskBench schemas (seed 0, "Produce a JSON value."). Every setting uses the program's default of 2 retries.
The defaults (`ProgramOptions`) are the row "penalty 1.3 + outline + leak guard". Because 27 labelled fields are
few, the outline's effect on accuracy is also measured on 140 SNIPS utterances (macro slot F1).

Per setting: valid share; exact match of the labelled fields (over all 11 inputs: a failure matches nothing);
outputs cut at max_tokens; leaks rejected; among returned outputs, example copies (a string holding a run of 5 or
more words of the example's output that its own input lacks) and schema words as values (a string value that is
a JSON Schema keyword or a property/model name of the schema, absent from the input).

    bash benchmarks/run_small_model_guards.sh      # writes benchmarks/results/small-model-guards.{json,md,png}
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_WORDS = {"type", "items", "array", "string", "object", "properties", "integer", "number", "boolean", "null",
                "required", "enum", "anyof", "description", "title", "default", "format", "maxlength", "minimum"}
BASE = dict(repetition_penalty=1.3, schema_in_prompt="json-schema", examples_in_prompt="turns", leak_guard=False)
DEFAULT = dict(repetition_penalty=1.3, schema_in_prompt="outline", examples_in_prompt="turns", leak_guard=True)
SETTINGS = [
    ("penalty 1.0, no guard", {**BASE, "repetition_penalty": 1.0}),
    ("penalty 1.1", {**BASE, "repetition_penalty": 1.1}),
    ("penalty 1.3 (the default before the guards)", BASE),
    ("penalty 1.3 + outline", {**BASE, "schema_in_prompt": "outline"}),
    ("penalty 1.3 + marked examples", {**BASE, "examples_in_prompt": "marked"}),
    ("penalty 1.3 + leak guard", {**BASE, "leak_guard": True}),
    ("penalty 1.3 + outline + leak guard (default)", DEFAULT),
    ("all: + marked examples", {**DEFAULT, "examples_in_prompt": "marked"}),
]
SNIPS_PER_INTENT = 20  # SNIPS validate utterances per intent for the prompt comparison (140 in all)


def strings(value) -> list[str]:
    from openfirst.compiler.guards import strings_at

    return [s for _, s in strings_at(value)]


def copies_example(output, example_outputs: list, text: str, n: int = 5) -> bool:
    """An output string holds n consecutive words of an example's output that its own input does not hold.
    Kept apart from the leak guard's own test (whitespace words here, not its tokenizer) so the benchmark does not
    grade the guard with the guard."""
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


def schema_word_value(output, names: set[str], text: str) -> bool:
    low = text.lower()
    return any(s.strip().lower() in (SCHEMA_WORDS | names) and s.strip().lower() not in low for s in strings(output))


def field_matches(output: dict, gold: dict) -> int:
    """How many labelled fields the output matches exactly (strings case-insensitively, numbers to a cent,
    `a/*/b` as the set of b over the list a)."""
    hits = 0
    for key, want in gold.items():
        if "/*/" in key:
            outer, inner = key.split("/*/")
            got = {str(x.get(inner, "")).strip().lower() for x in output.get(outer) or [] if isinstance(x, dict)}
            hits += got == {w.lower() for w in want}
            continue
        got = output.get(key)
        if isinstance(want, str):
            hits += isinstance(got, str) and got.strip().lower() == want.lower()
        elif isinstance(want, (int, float)) and not isinstance(want, bool):
            hits += isinstance(got, (int, float)) and abs(got - want) < 0.005
        else:
            hits += got == want
    return hits


def task_inputs():
    """(task, [(id, text, gold fields)]) for the three example tasks."""
    from openfirst.compiler.task import load_task

    gold = {r["id"]: r["fields"] for r in map(json.loads, (ROOT / "datasets/tasks/gold.jsonl").read_text().splitlines())
            if r}
    out = []
    for spec, data in [("support_ticket.py:SupportTicket", "support_tickets.jsonl"), ("invoice.py:Invoice",
                       "invoices.jsonl"), ("meeting_notes.py:MeetingNotes", "meetings.jsonl")]:
        rows = [json.loads(x) for x in (ROOT / "datasets/tasks" / data).read_text().splitlines() if x.strip()]
        out.append((load_task(f"{ROOT}/datasets/tasks/{spec}"), [(r["id"], r["text"], gold[r["id"]]) for r in rows]))
    return out


def run_tasks(backend, settings: dict, tasks) -> dict:
    from openfirst.compiler.errors import IncompleteOutput, LeakedValue
    from openfirst.compiler.guards import schema_names
    from openfirst.compiler.program import Program, ProgramOptions, Result

    c = {"docs": 0, "valid": 0, "fields": 0, "fields_exact": 0, "truncated": 0, "leaks_rejected": 0,
         "example_copies": 0, "schema_word_values": 0, "attempts": 0, "seconds": 0.0, "outputs": []}
    t0 = time.perf_counter()
    for task, rows in tasks:
        examples = task.example_outputs()
        names = schema_names(task.json_schema)[0]
        program = Program(task, backend, ProgramOptions(max_tokens=300, **settings))
        for (rid, text, gold), r in zip(rows, program.run_many([t for _, t, _ in rows])):
            c["docs"] += 1
            c["fields"] += len(gold)
            c["attempts"] += r.attempts
            if isinstance(r, Result):
                c["valid"] += 1
                out = json.loads(r.text)
                c["fields_exact"] += field_matches(out, gold)
                c["example_copies"] += copies_example(out, examples, text)
                c["schema_word_values"] += schema_word_value(out, names, text)
                c["outputs"].append({"id": rid, "output": out})
            else:
                c["truncated"] += isinstance(r.error, IncompleteOutput)
                c["leaks_rejected"] += isinstance(r.error, LeakedValue)
                c["outputs"].append({"id": rid, "error": f"{type(r.error).__name__}: {r.error.message[:200]}"})
    c["seconds"] = round(time.perf_counter() - t0, 1)
    return c


def run_maskbench(backend, settings: dict, rows: list[dict]) -> dict:
    from openfirst.compiler.errors import CompilerError, IncompleteOutput, LeakedValue
    from openfirst.compiler.guards import schema_names
    from openfirst.compiler.program import Program, ProgramOptions, Result
    from openfirst.compiler.schema import SchemaOptions
    from openfirst.compiler.task import compile_json_schema

    c = {"schemas": 0, "compiled": 0, "valid": 0, "truncated": 0, "leaks_rejected": 0, "schema_word_values": 0}
    prompt = "Produce a JSON value."
    for row in rows:
        c["schemas"] += 1
        try:
            task = compile_json_schema(row["schema"], prompt, SchemaOptions(max_string_length=40, max_items=4))
            program = Program(task, backend, ProgramOptions(max_tokens=200, **settings))
        except CompilerError:
            continue
        c["compiled"] += 1
        r = program.run_many([prompt])[0]
        if isinstance(r, Result):
            c["valid"] += 1
            c["schema_word_values"] += schema_word_value(r.output, schema_names(row["schema"])[0], prompt)
        else:
            c["truncated"] += isinstance(r.error, IncompleteOutput)
            c["leaks_rejected"] += isinstance(r.error, LeakedValue)
    return c


def run_snips(backend, prompts: dict[str, dict]) -> list[dict]:
    """Macro slot F1 (and utterances all right) on SNIPS validate utterances under each prompt: whether the
    outline costs accuracy on a larger labelled sample than the example tasks."""
    from openfirst.cascade import bench
    from openfirst.cascade.snips import load
    from openfirst.router.embeddings import DEFAULT_MODEL, Embedder
    from openfirst.router.public_data import default_data_dir

    data = load(default_data_dir())
    embedder = Embedder(DEFAULT_MODEL, show_progress=False)
    rows = []
    for name, prompt in prompts.items():
        t0 = time.perf_counter()
        records = bench.run_local(data, "similar", 5, SNIPS_PER_INTENT, backend, lambda t: embedder.encode(list(t)),
                                  progress=False, prompt=prompt)
        f1 = bench.slot_f1(records)
        rows.append({"schema_in_prompt": name, "utterances": len(records), "macro_slot_f1": round(f1["macro"], 4),
                     "all_right": sum(bool(r["all_right"]) for r in records),
                     "per_intent": {i: round(v["macro_f1"], 4) for i, v in f1["per_intent"].items()},
                     "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["setting"] for r in out["settings"]]
    fig, ax = plt.subplots(figsize=(9, 5))
    y = range(len(names))
    t = [r["tasks"] for r in out["settings"]]
    ax.barh([i + 0.2 for i in y], [r["valid"] / r["docs"] for r in t], 0.2, label="valid (example tasks)")
    ax.barh(list(y), [r["fields_exact"] / r["fields"] for r in t], 0.2, label="labelled fields exact")
    m = [r["maskbench"] for r in out["settings"]]
    ax.barh([i - 0.2 for i in y], [r["valid"] / max(r["compiled"], 1) for r in m], 0.2, label="valid (MaskBench 25)")
    ax.set_yticks(list(y), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share")
    ax.set_title("Small-model guards, SmolLM2-135M on llama.cpp (greedy)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from local_engines import maskbench_rows

    from openfirst.compiler.backends.llamacpp_local import LlamaCppBackend

    backend = LlamaCppBackend.load()
    rows, tasks = maskbench_rows(25), task_inputs()
    t0 = time.perf_counter()
    out = {"command": "bash benchmarks/run_small_model_guards.sh", "model": "SmolLM2-135M-Instruct Q4_1 (llama.cpp)",
           "settings": []}
    for name, settings in SETTINGS:
        row = {"setting": name, **settings, "tasks": run_tasks(backend, settings, tasks),
               "maskbench": run_maskbench(backend, settings, rows)}
        out["settings"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "tasks"} | {
            "tasks": {k: v for k, v in row["tasks"].items() if k != "outputs"}}), flush=True)
    out["snips"] = run_snips(backend, {p: {"schema_in_prompt": p, "examples_in_prompt": "turns", "leak_guard": False}
                                       for p in ("json-schema", "outline")})
    out["seconds"] = round(time.perf_counter() - t0)
    res = ROOT / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "small-model-guards.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# Small-model guards (SmolLM2-135M, llama.cpp in process, greedy)", "",
             f"Command: `{out['command']}`; {out['seconds']} s. Example tasks: the 11 inputs of datasets/tasks, at most "
             "300 tokens, 2 retries; exact match over the hand-labelled fields of datasets/tasks/gold.jsonl (a failed "
             "input matches none). MaskBench: 25 schemas (seed 0), at most 200 tokens. Copies and schema words are "
             "counted among returned outputs.", "",
             "| setting | valid | labelled fields exact | cut at max_tokens | leaks rejected | example copied | "
             "schema word as a value | attempts | MaskBench valid | MaskBench leaks rejected | MaskBench schema "
             "word as a value |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["settings"]:
        t, m = r["tasks"], r["maskbench"]
        lines.append(f"| {r['setting']} | {t['valid']}/{t['docs']} | {t['fields_exact']}/{t['fields']} | "
                     f"{t['truncated']} | {t['leaks_rejected']} | {t['example_copies']} | {t['schema_word_values']} | "
                     f"{t['attempts']} | {m['valid']}/{m['compiled']} | {m['leaks_rejected']} | "
                     f"{m['schema_word_values']} |")
    lines += ["", f"SNIPS, {SNIPS_PER_INTENT} validate utterances per intent (5 nearest training examples, the span "
              "grammar of `openfirst bench extraction snips`, where values can only be the utterance's words):", "",
              "| prompt describes the output as | utterances | macro slot F1 | utterances all right | seconds |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['schema_in_prompt']} | {r['utterances']} | {r['macro_slot_f1']:.3f} | {r['all_right']} | "
              f"{r['seconds']} |" for r in out["snips"]]
    (res / "small-model-guards.md").write_text("\n".join(lines) + "\n")
    plot(out, res / "small-model-guards.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
