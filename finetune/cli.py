"""`openfirst finetune` and `openfirst bench finetune`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from openfirst.core.errors import ConfigError
from openfirst.core.results import write_bench_results


def register(sub) -> None:
    f = sub.add_parser("finetune", help="LoRA-tune the local model on labelled examples, a decision log (the "
                                        "frontier's answers) or SNIPS; writes a folder every local engine serves")
    f.add_argument("data", nargs="?", default=None,
                   help='a JSONL of {"input": ..., "output": {...}, "id"?, "group"?}, or a public data set: snips '
                        "(its seven intents, each its own task) or snips:<Intent>")
    f.add_argument("--task", default=None, help="module:Class or path/to/file.py:Class (needed except for snips)")
    f.add_argument("--from-decisions", type=str, default=None, metavar="LOG|URL",
                   help="also learn from a service decision log (or the replicas' database URL): the inputs the "
                        "frontier answered, with its validated output (pinned inputs are never in a log's text, so "
                        "never in training data)")
    f.add_argument("--service-task", default=None, metavar="NAME",
                   help="with --from-decisions: the task's name in the service's [tasks] (default: the class name)")
    f.add_argument("--out", type=Path, required=True, help="the tuned model's folder")
    f.add_argument("--base", default="smollm2",
                   help="smollm2 (embedded default), a transformers model folder, or a tuned model's folder")
    f.add_argument("--epochs", type=int, default=3, help="passes over the training examples (default 3)")
    f.add_argument("--lora-rank", type=int, default=16, help="LoRA rank on every linear layer (default 16)")
    f.add_argument("--learning-rate", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    f.add_argument("--batch-size", type=int, default=8, help="examples per step (default 8)")
    f.add_argument("--limit", type=int, default=None, metavar="N", help="at most N examples (the first N)")
    f.add_argument("--per-intent", default=None, metavar="N",
                   help="snips: the first N training utterances per intent (default 70; 'full': every one)")
    f.add_argument("--held-out", type=float, default=0.1,
                   help="share of examples held out (by group) for the evaluation printed at the end (default 0.1)")
    f.add_argument("--seed", type=int, default=0, help="seed for the split, the order and the adapter (default 0)")
    f.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="training precision (auto: bfloat16 on GPUs that have it, float32 on CPU)")
    f.add_argument("--schema-in-prompt", choices=["none", "outline"], default="none",
                   help="how the tuned model's prompt describes the output (default none: the instructions only; "
                        "shorter prompts, faster training; not compared on accuracy); serving follows the card")
    f.add_argument("--gguf-type", default=None, help="GGUF type for llama.cpp: Q8_0 (default: Q4_1 erased the fine-tune "
                        "on SNIPS, benchmarks/results/finetune-snips.md), F16, F32, Q4_1, ...")
    f.add_argument("--skip-bad-lines", action="store_true", help="leave out bad lines (counted) instead of stopping")
    f.add_argument("--data-dir", type=Path, default=None, help="public data (default ../shared/datasets)")
    f.add_argument("--json", action="store_true", help="print the card as JSON")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(handler=cmd_finetune)


def register_bench(bench_sub) -> None:
    b = bench_sub.add_parser("finetune", help="slot F1 and the cascade's frontier share before and after fine-tuning "
                                              "on SNIPS, and a distillation replay from a decision log")
    b.add_argument("dataset", choices=["snips"], help="snips: SNIPS slot filling, 7 intents x 100 test utterances")
    b.add_argument("--per-intent", default="70,300", help="training sizes per intent, comma-separated (default 70,300)")
    b.add_argument("--limit", type=int, default=None, metavar="N", help="at most N validate utterances per intent")
    b.add_argument("--epochs", type=int, default=None,
                   help="epochs per fine-tune (default: 3 up to 100 utterances per intent, 1 beyond)")
    b.add_argument("--distill", type=int, default=70, metavar="N",
                   help="utterances per intent replayed through the service for the distillation run (0: skip)")
    b.add_argument("--replay-limit", type=int, default=30, metavar="N",
                   help="validate utterances per intent replayed through the service before and after (default 30)")
    b.add_argument("--cascade-threshold", type=float, default=0.6,
                   help="the service's cascade threshold in the distillation replay (default 0.6: the base model's "
                        "output confidence is mostly 0.3-0.8 on SNIPS)")
    b.add_argument("--frontier-accuracy", type=float, default=1.0,
                   help="model an imperfect frontier (default 1: the gold annotation)")
    b.add_argument("--data-dir", type=Path, default=None, help="public data (default ../shared/datasets)")
    b.add_argument("--work-dir", type=Path, default=None, help="where tuned models go (default: the cache)")
    b.add_argument("--fresh", action="store_true", help="train and run again instead of reading cached results")
    b.add_argument("--json", action="store_true", help="print the results as JSON")
    b.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where JSON, Markdown, PNG go")
    b.add_argument("--name", default="finetune-snips", help="result file stem")
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    b.set_defaults(handler=cmd_bench_finetune)


def _per_intent(value: str | None) -> int | None:
    if value in (None, "full"):
        return None
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"--per-intent must be a number or 'full', got {value!r}") from None
    if n < 1:
        raise ConfigError("--per-intent must be at least 1")
    return n


def load_training_data(args: argparse.Namespace):
    """The examples `openfirst finetune` trains on, from DATA and/or --from-decisions."""
    from openfirst.compiler.task import load_task
    from openfirst.finetune import examples as ex
    from openfirst.router.public_data import default_data_dir

    sets, sources = [], []
    if args.data is None and args.from_decisions is None:
        raise ConfigError("give training data: a JSONL file, snips[:Intent], or --from-decisions LOG")
    is_public = args.data is not None and (args.data == "snips" or args.data.startswith("snips:"))
    if args.per_intent is not None and not is_public:
        raise ConfigError("--per-intent applies to snips only")
    task = load_task(args.task) if args.task else None
    if task is None and not is_public:
        raise ConfigError("--task FILE.py:Model is needed for a JSONL file or a decision log")
    if is_public:
        if task is not None:
            raise ConfigError("snips brings its own tasks (one per intent): leave out --task")
        n = _per_intent(args.per_intent or "70")
        sets.append(ex.read_snips(args.data, n, args.data_dir or default_data_dir()))
        sources.append(f"{args.data} (first {n if n else 'all'} training utterances per intent)")
    elif args.data is not None:
        sets.append(ex.read_labelled(Path(args.data), task, args.skip_bad_lines))
        sources.append(str(args.data))
    if args.from_decisions is not None:
        if task is None:
            raise ConfigError("--from-decisions needs --task (the task whose frontier answers to learn)")
        sets.append(ex.read_decisions(args.from_decisions, task, skip_bad_lines=args.skip_bad_lines,
                                      service_task=args.service_task))
        from openfirst.core.redact import redact_url

        sources.append(f"decision log {redact_url(args.from_decisions)} (the frontier's answers)")
    data = ex.merge(sets)
    if args.limit is not None:
        if args.limit < 1:
            raise ConfigError("--limit must be at least 1")
        data.examples = data.examples[:args.limit]
    return data, sources


def cmd_finetune(args: argparse.Namespace) -> int:
    from openfirst.finetune.prompt import TunedPrompt
    from openfirst.finetune.run import STALE_NOTICE, describe, finetune
    from openfirst.finetune.train import TrainConfig

    if not 0 <= args.held_out < 0.9:
        raise ConfigError("--held-out must be in [0, 0.9)")
    data, sources = load_training_data(args)
    dropped = ", ".join(f"{k} {v}" for k, v in data.dropped.items())
    print(f"{len(data.examples)} training examples" + (f" (left out: {dropped})" if dropped else ""),
          file=sys.stderr)
    config = TrainConfig(epochs=args.epochs, lora_rank=args.lora_rank, learning_rate=args.learning_rate,
                         batch_size=args.batch_size, seed=args.seed, dtype=args.dtype)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    tuned = finetune(data, args.out, base=args.base, config=config, prompt=TunedPrompt(args.schema_in_prompt),
                     held_out_share=args.held_out, gguf_type=args.gguf_type, sources=sources,
                     progress=not args.no_progress, log=log)
    print(json.dumps(tuned.card, indent=2) if args.json else describe(tuned))
    print(f"note: {STALE_NOTICE}", file=sys.stderr)
    return 0


def cmd_bench_finetune(args: argparse.Namespace) -> int:
    from openfirst.finetune.bench import markdown, plot, run
    from openfirst.router.public_data import default_data_dir

    sizes = [_per_intent(v.strip()) for v in args.per_intent.split(",") if v.strip()]
    if not sizes:
        raise ConfigError("--per-intent needs at least one size")
    if args.limit is not None and args.limit < 10:
        raise ConfigError("--limit must be at least 10 utterances per intent")
    if not 0.0 < args.frontier_accuracy <= 1.0:
        raise ConfigError("--frontier-accuracy must be in (0, 1]")
    out = run(args.data_dir or default_data_dir(), sizes, args.limit, args.epochs, args.distill,
              args.frontier_accuracy, args.work_dir, args.fresh, not args.no_progress, args.replay_limit,
              args.cascade_threshold)
    return write_bench_results(out, args.out_dir, args.name, markdown, plot, args.json)
