"""`openfirst data ...`: list, export and download the public data sets."""

from __future__ import annotations

import argparse
from pathlib import Path

from openfirst.router.public_data import DATASETS, default_data_dir


def register(sub) -> None:
    p = sub.add_parser("data", help="public data sets: list, export to canonical JSONL, download")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    ls = dsub.add_parser("list", help="list the data sets and where they are read from")
    ls.add_argument("--data-dir", type=Path, default=None, help="public data folder (default ../shared/datasets)")
    ls.set_defaults(handler=cmd_list)

    ex = dsub.add_parser("export", help="write a public data set as a canonical outcome log (JSONL)")
    ex.add_argument("name", choices=DATASETS, help="the public data set")
    ex.add_argument("--out", type=Path, required=True, help="outcome log to write (JSONL)")
    ex.add_argument("--data-dir", type=Path, default=None, help="public data folder (default ../shared/datasets)")
    ex.add_argument("--llmrouter-local", default=None, help="LLMRouter model playing 'local'")
    ex.add_argument("--llmrouter-frontier", default=None, help="LLMRouter model playing 'frontier'")
    ex.set_defaults(handler=cmd_export)

    dl = dsub.add_parser("download", help="fetch the files from their original location, sha256-checked")
    dl.add_argument("name", help="routellm, routellm-gsm8k, routellm-mmlu, routellm-mt-bench or llmrouter")
    dl.add_argument("--data-dir", type=Path, default=None, help="where to put the data (default ../shared/datasets)")
    dl.add_argument("--base-url", default=None, help="mirror to fetch from instead of the original location")
    dl.set_defaults(handler=cmd_download)


def cmd_list(args: argparse.Namespace) -> int:
    root = args.data_dir or default_data_dir()
    print(f"data directory: {root}")
    for name in DATASETS:
        print(f"  {name}")
    return 0


def llmrouter_kwargs(args: argparse.Namespace) -> dict[str, str]:
    kw = {}
    if getattr(args, "llmrouter_local", None):
        kw["local_model"] = args.llmrouter_local
    if getattr(args, "llmrouter_frontier", None):
        kw["frontier_model"] = args.llmrouter_frontier
    return kw


def cmd_export(args: argparse.Namespace) -> int:
    from openfirst.router.public_data import load_public

    kw = llmrouter_kwargs(args) if args.name == "llmrouter" else {}
    log = load_public(args.name, args.data_dir, **kw)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log.write_jsonl(args.out)
    print(f"wrote {len(log)} records to {args.out}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from openfirst.router.download import download

    root = args.data_dir or default_data_dir()
    files = download(args.name, root, args.base_url)
    print(f"{len(files)} file(s) verified under {root}")
    return 0
