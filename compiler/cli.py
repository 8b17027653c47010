"""`openfirst extract | compile | bench compiler`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_MASKBENCH = Path("../shared/datasets/jsonschemabench/maskbench.jsonl.gz")


def register(sub) -> None:
    e = sub.add_parser("extract", help="extract structured output from one text (argument or stdin) or a JSONL file "
                                       "(resumable)")
    e.add_argument("text", nargs="?", default=None,
                   help="one text to extract from ('-': read it from stdin); the output JSON goes to stdout")
    what = e.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", help="module:Class or path/to/file.py:Class (a Pydantic model)")
    what.add_argument("--schema", help="fields written inline: 'name, age int, tags list[str]' (str, int, float, bool)")
    e.add_argument("--instructions", default=None,
                   help="what to extract (overrides the task's docstring; needed by nothing: a default is used)")
    e.add_argument("--input", type=Path, default=None, help='JSONL or CSV, one {"id": ..., "text": ...} per record')
    e.add_argument("--output", type=Path, default=None,
                   help="JSONL results, one line per input (resumable); default: stdout (not resumable)")
    e.add_argument("--backend", choices=["auto", "vllm", "llama.cpp", "transformers"], default="auto",
                   help="local engine: vllm (its CPU build here, GPU build in production; fastest for batches, "
                        "benchmarks/results/local-engines.md), llama.cpp in process (GGUF; fastest one request at a "
                        "time, starts in a second) or transformers in process; auto (default): llama.cpp for one "
                        "text, vllm for --input files")
    e.add_argument("--model", default="smollm2",
                   help="smollm2 (embedded default), a Hugging Face id, a local model folder, a .gguf file for "
                        "llama.cpp, or a tuned model's folder (openfirst finetune --out: served on every engine, "
                        "for the task it was tuned on)")
    e.add_argument("--text-field", default="text", help="the input field holding the text (default text)")
    e.add_argument("--max-tokens", type=int, default=512, help="most output tokens per attempt (default 512)")
    e.add_argument("--max-retries", type=int, default=2, help="retries with the validation error as feedback (default 2)")
    e.add_argument("--batch-size", type=int, default=None,
                   help="records per engine call (default: 32 for vllm, which batches; 1 for llama.cpp and "
                        "transformers, so progress and latency are per record)")
    e.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)")
    e.add_argument("--repetition-penalty", type=float, default=1.3,
                   help="> 1 discourages repeated tokens (default 1.3: at 1.0 small models loop until max_tokens); "
                        "applied to the generated tokens only (the input's words stay free to copy) on llama.cpp, "
                        "transformers and in-process vLLM")
    e.add_argument("--engine", choices=["llguidance", "xgrammar"], default="llguidance", help="grammar engine for in-process models (default llguidance)")
    # defaults None: ProgramOptions' own defaults apply (tests/compiler/test_cli.py checks these help texts)
    e.add_argument("--schema-in-prompt", choices=["outline", "json-schema", "none"], default=None,
                   help="how the prompt describes the output: a keyword-free outline, the raw JSON Schema, or none "
                        "(the instructions only: for a model tuned on the task) (default outline; "
                        "benchmarks/results/small-model-guards.md)")
    e.add_argument("--examples-in-prompt", choices=["marked", "turns"], default=None,
                   help="few-shot examples as chat turns, or marked in the system prompt as format only "
                        "(default turns)")
    e.add_argument("--leak-guard", action=argparse.BooleanOptionalAction, default=None,
                   help="reject and retry outputs whose values are schema words or copy an example instead of the "
                        "text (default on)")
    e.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                   help="run the engine in a supervised child process, so a native crash costs the records in "
                        "flight one rerun instead of the run (default: on for --input files, off for one text)")
    e.add_argument("--retry-errors", action="store_true",
                   help="run again the ids whose earlier output line is an error (the error line is replaced)")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(handler=cmd_extract)

    c = sub.add_parser("compile", help="print a task's feature report and grammar statistics")
    c.add_argument("--task", required=True, help="module:Class or path/to/file.py:Class")
    c.add_argument("--model", default="smollm2", help="whose tokenizer to compile for")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.set_defaults(handler=cmd_compile)


def register_bench(bench_sub) -> None:
    b = bench_sub.add_parser("compiler", help="MaskBench-style correctness and speed on real JSON Schemas")
    b.add_argument("--schemas", type=Path, default=DEFAULT_MASKBENCH, help="MaskBench JSONL(.gz) of schemas and test instances")
    b.add_argument("--limit", type=int, default=None, help="only the first N schemas")
    b.add_argument("--timeout", type=float, default=10.0, help="compile time limit per schema (s)")
    b.add_argument("--xgrammar-every", type=int, default=0, metavar="N",
                   help="also measure raw XGrammar on every Nth schema, in a worker process (0: off)")
    b.add_argument("--json", action="store_true", help="print the results as JSON")
    b.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where the JSON and Markdown go")
    b.add_argument("--name", default="compiler-maskbench", help="result file stem")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(handler=cmd_bench_compiler)


def _options(args):
    from pydantic import ValidationError

    from openfirst.compiler.errors import TaskSpecError
    from openfirst.compiler.program import ProgramOptions
    from openfirst.core.errors import describe_validation_error

    try:
        return ProgramOptions(max_tokens=args.max_tokens, max_retries=args.max_retries, temperature=args.temperature,
                              repetition_penalty=args.repetition_penalty, engine=args.engine,
                              **{k: v for k in ("schema_in_prompt", "examples_in_prompt", "leak_guard")
                                 if (v := getattr(args, k)) is not None})
    except ValidationError as exc:
        raise TaskSpecError(f"invalid option {describe_validation_error(exc)}") from None


def cmd_extract(args: argparse.Namespace) -> int:
    from openfirst.compiler.errors import TaskSpecError
    from openfirst.compiler.extract import default_batch_size
    from openfirst.compiler.program import Program

    if (args.text is None) == (args.input is None):
        raise TaskSpecError("give one text (or '-' for stdin) or --input FILE, not both or neither",
                            hint='openfirst extract --schema "name, age int" "Ada, 36"')
    if args.input is not None and not args.input.exists():
        raise TaskSpecError(f"input file {args.input} does not exist")
    if args.backend == "auto":
        args.backend = "llama.cpp" if args.text is not None else "vllm"
    if args.batch_size is None:
        args.batch_size = default_batch_size(args.backend)
    if args.batch_size < 1:
        raise TaskSpecError("--batch-size must be at least 1")
    task = _task(args)
    options = _options(args)
    from openfirst.finetune.serving import tuned_task

    task, options = tuned_task(args.model, task, options, frozenset(
        {"schema_in_prompt"} if args.schema_in_prompt is not None else ()))
    text = sys.stdin.read() if args.text == "-" else args.text
    if text is not None and not text.strip():
        raise TaskSpecError("the text to extract from is empty")
    backend = _backend(args)
    try:
        return _run(args, Program(task, backend, options), text)
    finally:
        backend.close()


def _run(args: argparse.Namespace, program, text: str | None) -> int:
    from openfirst.compiler.extract import run_extraction

    if text is not None:
        return _one_text(program, text)
    if args.output is None:  # to stdout: a temporary file, streamed out at the end
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.jsonl"
            counts = run_extraction(program, args.input, out, args.text_field, args.batch_size,
                                    not args.no_progress)
            sys.stdout.write(out.read_text(encoding="utf-8"))
        print(json.dumps(counts), file=sys.stderr)
        return extraction_status(counts)
    counts = run_extraction(program, args.input, args.output, args.text_field, args.batch_size, not args.no_progress,
                            retry_errors=args.retry_errors)
    print(json.dumps(counts))
    return extraction_status(counts)


def _task(args: argparse.Namespace):
    from openfirst.compiler.task import load_task

    if args.schema is not None:
        from openfirst.compiler.schema_spec import as_task

        return as_task(args.schema, args.instructions)
    return load_task(args.task, instructions=args.instructions)


def _one_text(program, text: str) -> int:
    from openfirst.compiler.program import Result
    from openfirst.compiler.task import output_json

    from openfirst.pipeline.pipeline import Pipeline

    r = Pipeline.single(program).run_texts("task", [text])[0]
    if isinstance(r, Result):
        print(json.dumps(output_json(r.output), ensure_ascii=False))
        return 0
    print(f"openfirst: error: {type(r.error).__name__}: {r.error}", file=sys.stderr)
    return 1


def _backend(args: argparse.Namespace):
    """The local engine: isolated in a supervised child process for --input files (a native crash costs the batch
    in flight one rerun, not the run), in this process for one text (it starts faster)."""
    from openfirst.pipeline.models import build_local

    isolate = args.isolate if args.isolate is not None else args.input is not None
    return build_local(args.backend, args.model, isolate=isolate)


def extraction_status(counts: dict) -> int:
    """1 when any record of this run failed (with a summary on stderr), else 0; earlier errors are mentioned."""
    if counts["error"]:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(counts["errors_by_type"].items()))
        print(f"openfirst: {counts['error']} of {counts['ok'] + counts['error']} records failed ({kinds}); fix the "
              "cause and rerun with --retry-errors", file=sys.stderr)
        return 1
    if counts["errors_kept"]:
        print(f"openfirst: {counts['errors_kept']} records failed in an earlier run and were left as they are; "
              "--retry-errors runs them again", file=sys.stderr)
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from openfirst.compiler.grammar import GrammarCompiler
    from openfirst.compiler.task import load_task
    from openfirst.compiler.tokenizer import smollm2_tokenizer, tokenizer_info

    task = load_task(args.task)
    if args.model == "smollm2":
        tok = smollm2_tokenizer()
    else:
        from transformers import AutoTokenizer

        tok = tokenizer_info(AutoTokenizer.from_pretrained(args.model), args.model)
    t0 = time.perf_counter()
    compiled = GrammarCompiler(tok).compile(task.schema, task.report)
    out = {"task": task.name, "tokenizer": tok.name, "report": compiled.report.to_dict(),
           "grammar": dict(compiled.stats(), compile_ms=1000 * (time.perf_counter() - t0))}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    rep = out["report"]
    print(f"task {task.name} for tokenizer {tok.name}")
    print(f"  grammar enforces: {', '.join(rep['enforced'])}")
    for d in rep["post_validated"]:
        print(f"  post-validated only: {d['keyword']} at {d['pointer'] or '/'} ({d['why']})")
    for d in rep["bounded"]:
        print(f"  bounded: {d['keyword']}={d['value']} at {d['pointer'] or '/'}")
    for p in rep["recursive_refs"]:
        print(f"  recursive $ref {p}: bounded by max_tokens")
    g = out["grammar"]
    print(f"  exact: {rep['exact']}; grammar {g['grammar_bytes']} bytes, compiled in {g['compile_ms']:.1f} ms")
    return 0


def cmd_bench_compiler(args: argparse.Namespace) -> int:
    from openfirst.compiler.bench import MaskBench, read_maskbench, write_results
    from openfirst.compiler.errors import TaskSpecError
    from openfirst.compiler.tokenizer import smollm2_tokenizer

    if not args.schemas.exists():
        raise TaskSpecError(f"schema file {args.schemas} does not exist")
    if not args.timeout > 0 or (args.limit is not None and args.limit < 1) or args.xgrammar_every < 0:
        raise TaskSpecError("--timeout must be > 0, --limit >= 1 and --xgrammar-every >= 0")
    bench = MaskBench(smollm2_tokenizer(), timeout_s=args.timeout, xgrammar_every=args.xgrammar_every)
    t0 = time.perf_counter()
    bench.run(read_maskbench(args.schemas, args.limit), show_progress=not args.no_progress)
    summary = bench.summary()
    summary["seconds"] = time.perf_counter() - t0
    summary["command"] = "openfirst " + " ".join(sys.argv[1:])
    md = write_results(summary, bench.per_schema, args.out_dir, args.name)
    print(json.dumps(summary, indent=2) if args.json else md)
    return 0
