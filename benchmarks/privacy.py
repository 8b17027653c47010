"""Privacy detection: recall per entity type on the corpus, pinned share of ordinary traffic, time per text.

    bash benchmarks/run_privacy.sh      # writes benchmarks/results/privacy.{json,md}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = {"7 x 300k": "7" * 300_000, "'1-' x 150k": "1-" * 150_000, "'+1 ' x 100k": "+1 " * 100_000,
           "'a@' x 150k": "a@" * 150_000, "'%40' x 100k": "%40" * 100_000}


def timed(rules, texts):
    seconds, pinned = [], 0
    for t in texts:
        start = time.perf_counter()
        pinned += rules.check(t).pinned
        seconds.append(time.perf_counter() - start)
    return pinned, np.array(seconds)


def variant_recall(rules) -> dict:
    """Recall per form of datasets/privacy/variants.jsonl (a split card is checked as its two messages)."""
    total, found = Counter(), Counter()
    for line in (ROOT / "datasets" / "privacy" / "variants.jsonl").read_text().splitlines():
        row = json.loads(line)
        total[row["class"]] += 1
        found[row["class"]] += row["type"] in rules.check(row.get("parts") or row["text"]).reasons
    return {k: {"strings": total[k], "found": found[k], "recall": found[k] / total[k]} for k in total}


def main() -> None:
    from openfirst.router.public_data import load_routellm_gsm8k, load_routellm_mmlu
    from openfirst.service.privacy import PrivacyRules

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    rules = PrivacyRules()
    rows = [json.loads(x) for x in (ROOT / "datasets" / "privacy" / "positives.jsonl").read_text().splitlines()]
    total, found = Counter(), Counter()
    for row in rows:
        total[row["type"]] += 1
        found[row["type"]] += row["type"] in rules.check(row["text"]).reasons
    recall = {k: {"strings": total[k], "found": found[k], "recall": found[k] / total[k]} for k in total}
    variants = variant_recall(rules)
    tasks = [row["text"] for f in sorted((ROOT / "datasets" / "tasks").glob("*.jsonl"))
             for row in map(json.loads, filter(str.strip, f.read_text().splitlines())) if "text" in row]
    traffic = {}
    for name, texts in [("routellm-gsm8k", load_routellm_gsm8k().queries), ("routellm-mmlu", load_routellm_mmlu().queries),
                        ("example tasks", tasks)]:
        pinned, secs = timed(rules, texts)
        traffic[name] = {"texts": len(texts), "pinned": pinned, "pinned_share": pinned / len(texts),
                         "ms_p50": float(np.percentile(secs, 50) * 1e3), "ms_p99": float(np.percentile(secs, 99) * 1e3)}
    hostile = {}
    for name, text in HOSTILE.items():
        start = time.perf_counter()
        reasons = rules.check(text).reasons
        hostile[name] = {"seconds": time.perf_counter() - start, "reasons": list(reasons)}
    from openfirst.core.machine import cpu_line, cpu_summary

    out = {"command": "bash benchmarks/run_privacy.sh", "machine": cpu_summary(), "corpus_recall": recall, "variant_recall": variants,
           "ordinary_traffic": traffic,
           "hostile_inputs": hostile, "python": sys.version.split()[0]}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "privacy.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# Privacy detection", "", f"Command: `{out['command']}` ({cpu_line(out['machine'])}).", "",
             "| entity type | strings | found | recall |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['strings']} | {v['found']} | {v['recall']:.1%} |" for k, v in recall.items()]
    lines += ["", "The forms a held-out probe of `openfirst serve` got through before (issue 22; "
              "`datasets/privacy/variants.jsonl`):", "", "| form | strings | found | recall |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['strings']} | {v['found']} | {v['recall']:.1%} |" for k, v in variants.items()]
    lines += ["", "| ordinary traffic | texts | pinned | share | ms p50 | ms p99 |", "|---|---|---|---|---|---|"]
    lines += [f"| {k} | {v['texts']:,} | {v['pinned']} | {v['pinned_share']:.2%} | {v['ms_p50']:.3f} | "
              f"{v['ms_p99']:.3f} |" for k, v in traffic.items()]
    lines += ["", "(one example support ticket really holds an e-mail address)", "",
              "| hostile input | seconds | reasons |", "|---|---|---|"]
    lines += [f"| {k} | {v['seconds']:.3f} | {', '.join(v['reasons']) or '-'} |" for k, v in hostile.items()]
    (args.out_dir / "privacy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
