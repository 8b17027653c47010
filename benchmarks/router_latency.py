"""Routing latency on CPU: single-query p50/p99, batch throughput, and the classifier's share.

Usage: python benchmarks/router_latency.py --router runs/gsm8k [--queries 200] [--out-dir benchmarks/results]

The anchor is the embedding time measured in the same run: the classifier's share of
a routing call is reported as a ratio to it (target: under 10%).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from openfirst.router.api import Router
from openfirst.router.public_data import load_routellm_gsm8k


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--router", type=Path, required=True)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)

    router = Router.load(args.router)
    texts = load_routellm_gsm8k().queries[: args.queries]
    router.route(texts[0])  # load the model, warm up

    def timed(fn) -> list[float]:
        out = []
        for t in texts:
            t0 = time.perf_counter()
            fn(t)
            out.append(time.perf_counter() - t0)
        return out

    # Blocks, not alternating calls: BLAS threads still spinning after one call slow the next call's embedding,
    # so alternating calls would charge each measurement with another's after-effects. Blocks A B A B for the
    # A/B: route() (heads on one BLAS thread) against the same work with BLAS threads at their default.
    embedded = {t: router.embedder.encode([t]) for t in texts}
    embed = timed(lambda t: router.embedder.encode([t]))
    with threadpool_limits(1, "blas"):  # as route() runs the heads
        classify = timed(lambda t: router.scores(embedded[t], [t]))
    single, default_blas = [], []
    for _ in range(2):
        single += timed(router.route)
        default_blas += timed(lambda t: router.scores(router.embedder.encode([t]), [t]))
    t0 = time.perf_counter()
    for i in range(0, len(texts), args.batch):
        router.route_many(texts[i : i + args.batch])
    batch_s = time.perf_counter() - t0
    result = {
        "router": str(args.router),
        "queries": len(texts),
        "single_query_ms": {"p50": 1000 * percentile(single, 50), "p99": 1000 * percentile(single, 99)},
        "embedding_ms_p50": 1000 * statistics.median(embed),
        "classifier_ms_p50": 1000 * statistics.median(classify),
        "classifier_share_of_embedding": statistics.median(classify) / statistics.median(embed),
        "route_one_blas_thread_ms_p50": 1000 * statistics.median(single),
        "route_default_blas_threads_ms_p50": 1000 * statistics.median(default_blas),
        "batch_size": args.batch,
        "batch_queries_per_s": len(texts) / batch_s,
        "single_queries_per_s": len(single) / sum(single),
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "command": "python " + " ".join(sys.argv),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "router-latency.json").write_text(json.dumps(result, indent=2) + "\n")
    md = (
        "| metric | value |\n|---|---|\n"
        f"| single query p50 / p99 (ms) | {result['single_query_ms']['p50']:.2f} / {result['single_query_ms']['p99']:.2f} |\n"
        f"| embedding p50 (ms) | {result['embedding_ms_p50']:.2f} |\n"
        f"| classifier p50 (ms) | {result['classifier_ms_p50']:.3f} |\n"
        f"| classifier / embedding | {result['classifier_share_of_embedding']:.1%} |\n"
        f"| route p50, heads on 1 BLAS thread / default BLAS threads, same run (ms) | "
        f"{result['route_one_blas_thread_ms_p50']:.2f} / {result['route_default_blas_threads_ms_p50']:.2f} |\n"
        f"| batch throughput ({args.batch}/batch, queries/s) | {result['batch_queries_per_s']:.1f} |\n"
        f"| single-query throughput (queries/s) | {result['single_queries_per_s']:.1f} |\n"
    )
    (args.out_dir / "router-latency.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
