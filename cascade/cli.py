"""`openfirst bench extraction snips`: escalation policies on a public extraction benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

from openfirst.core.errors import ConfigError
from openfirst.core.results import write_bench_results


def register_bench(bench_sub) -> None:
    b = bench_sub.add_parser("extraction", help="extraction accuracy against frontier share (router, cascade, "
                                                "cascade routing) on a public slot-filling benchmark")
    b.add_argument("dataset", choices=["snips"], help="snips: SNIPS slot filling, 7 intents x 100 utterances")
    b.add_argument("--limit", type=int, default=None, metavar="N", help="at most N utterances per intent")
    b.add_argument("--examples", choices=["fixed", "similar", "both"], default="both",
                   help="in-context examples: fixed per intent, nearest by embedding per input, or both (default)")
    b.add_argument("--k", type=int, default=5, help="in-context examples per prompt (default 5)")
    b.add_argument("--frontier-accuracy", type=float, default=1.0,
                   help="model an imperfect frontier: a share 1 - p of its answers lose one gold slot (default 1)")
    b.add_argument("--data-dir", type=Path, default=None, help="public data (default ../shared/datasets)")
    b.add_argument("--fresh", action="store_true", help="rerun the local model instead of reading cached records")
    b.add_argument("--json", action="store_true", help="print the results as JSON")
    b.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where the JSON, Markdown and PNG go")
    b.add_argument("--name", default="snips-extraction", help="result file stem")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(handler=cmd_bench_extraction)


def cmd_bench_extraction(args: argparse.Namespace) -> int:
    from openfirst.cascade.bench import markdown, plot, run
    from openfirst.router.public_data import default_data_dir

    if args.limit is not None and args.limit < 10:
        raise ConfigError("--limit must be at least 10 utterances per intent (the curves need both outcomes)")
    if not 0.0 < args.frontier_accuracy <= 1.0:
        raise ConfigError("--frontier-accuracy must be in (0, 1]")
    if not 1 <= args.k <= 20:
        raise ConfigError("--k must be between 1 and 20")
    modes = ["fixed", "similar"] if args.examples == "both" else [args.examples]
    out = run(args.data_dir or default_data_dir(), modes, args.k, args.limit, args.frontier_accuracy, args.fresh,
              not args.no_progress)
    return write_bench_results(out, args.out_dir, args.name, markdown, plot, args.json)
