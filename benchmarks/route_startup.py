"""`openfirst route` on one query from the command line, cold (a new process each time): the embedder through
sentence-transformers (the previous path, `OPENFIRST_EMBEDDER=sentence-transformers`) against the numpy
encoder (`router/light_bert.py`, the default) with the saved router predicting in numpy (`router/inference.py`,
no scikit-learn import), in the same run, alternating. Each run routes a new query (the
router never caches query embeddings: the model loads every time). The router is trained first on 300 RouteLLM
GSM8K records (small settings).

    bash benchmarks/run_route_startup.sh      # writes benchmarks/results/route-startup.{json,md}
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPENFIRST = str(Path(sys.executable).parent / "openfirst")


def route_once(router: Path, query: str, embedder: str, cache: Path) -> float:
    env = {**os.environ, "OPENFIRST_EMBEDDER": embedder, "OPENFIRST_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    done = subprocess.run([OPENFIRST, "route", "--router", str(router), query], env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"route failed: {done.stderr[-500:]}")
    return wall


def main() -> None:
    import numpy as np

    from openfirst.router.public_data import default_data_dir, load_routellm_gsm8k

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    out_dir = ROOT / "benchmarks" / "results"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        log = load_routellm_gsm8k(default_data_dir()).subset(np.arange(300))
        data = tmp / "slice.jsonl"
        data.write_text("".join(json.dumps({"query": q, "local_score": float(lo), "frontier_score": float(fr)}) + "\n"
                                for q, lo, fr in zip(log.queries, log.local_score, log.frontier_score)))
        router = tmp / "router"
        subprocess.run([OPENFIRST, "train", str(data), "--out", str(router), "--trials", "3", "--outer-folds", "2",
                        "--inner-folds", "2", "--no-progress"], check=True, capture_output=True)
        times: dict[str, list[float]] = {"sentence-transformers": [], "light": []}
        for i in range(runs):
            for name, env in (("sentence-transformers", "sentence-transformers"), ("light", "auto")):
                query = f"How many apples are left after {i} rounds? ({uuid.uuid4().hex[:8]})"
                times[name].append(route_once(router, query, env, tmp / "cache"))
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"command": "bash benchmarks/run_route_startup.sh", "runs": runs, "median_s": med, "all_s": times,
              "speedup_new_query": med["sentence-transformers"] / med["light"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "route-startup.json").write_text(json.dumps(result, indent=2) + "\n")
    md = ["# `openfirst route` on one query, cold start (2 CPU cores)", "",
          f"Command: `{result['command']}`; {runs} runs each, alternating, median wall time of the whole process.",
          "", "| embedder | wall time, one query |", "|---|---|",
          f"| sentence-transformers, torch and scikit-learn loaded (previous) | {med['sentence-transformers']:.2f} s |",
          f"| numpy BERT (`light_bert`) + numpy router (`inference.py`), default | {med['light']:.2f} s |", "",
          f"**{result['speedup_new_query']:.1f}x** faster. The same embeddings (cosine >= 0.99999, "
          "tests/router/test_light_bert.py) and the same scores (tests/router/test_scorer.py)."]
    (out_dir / "route-startup.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
