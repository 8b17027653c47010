"""Routed accuracy against cost through the service's routing path: replay a labeled outcome log (RouteLLM
GSM8K, all 1,307 records) through POST /v1/route of `openfirst serve`, join the decision log with the
labels (`openfirst eval --decisions`), and check that accuracy and frontier share match `openfirst eval
--router` on the same data.

    .venv/bin/python benchmarks/service_replay.py --router runs/gsm8k --out-dir benchmarks/results
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.service_load import start_service  # noqa: E402
from openfirst.cli import main as openfirst  # noqa: E402
from openfirst.compiler.backends.llamacpp_server import free_port  # noqa: E402


def run_json(argv: list[str]) -> dict:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        if openfirst(argv) != 0:
            raise SystemExit(f"openfirst {' '.join(argv)} failed")
    return json.loads(buf.getvalue())


def config_text(router: Path, decisions: Path) -> str:
    # /v1/route generates nothing: the backends are named (the router's "frontier" needs one) but never called
    return f"""
[tasks]
support_ticket = "{ROOT / 'datasets/tasks/support_ticket.py'}:SupportTicket"
[local]
kind = "server"
base_url = "http://127.0.0.1:9/v1"
model = "local-model"
[frontier]
base_url = "http://127.0.0.1:9/v1"
model = "frontier-model"
[router]
artifact = "{router}"
[limits]
max_batch = 64
[log]
decisions = "{decisions}"
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--router", type=Path, default=ROOT / "runs" / "gsm8k")
    ap.add_argument("--data", default="routellm-gsm8k", help="labeled outcome log: a file or a public data set")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    import httpx

    from openfirst.router.public_data import load_log_or_public

    log = load_log_or_public(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        decisions = tmp / "decisions.jsonl"
        (tmp / "openfirst.toml").write_text(config_text(args.router.resolve(), decisions))
        port = free_port()
        proc = start_service(tmp / "openfirst.toml", port, tmp / "service.log")
        try:
            start = time.perf_counter()
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
                for i in range(0, len(log), args.batch):
                    batch = [{"input": q, "id": rid} for q, rid in zip(log.queries[i:i + args.batch],
                                                                       log.ids[i:i + args.batch])]
                    r = client.post("/v1/route", json={"inputs": batch})
                    r.raise_for_status()
            replay_s = time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(30)
        served = run_json(["eval", "--decisions", str(decisions), args.data, "--json"])
        decided = [json.loads(x) for x in decisions.read_text().splitlines()]
    direct = run_json(["eval", "--router", str(args.router), args.data, "--json", "--no-progress"])
    op = direct["operating_point"]
    checks = {"frontier_share": (served["frontier_share"], op["frontier_share"]),
              "accuracy": (served["accuracy"], op["expected_accuracy"]),
              "cost_per_query_usd": (served["cost_usd_per_request_at_prices"], op["expected_cost"])}
    tol = 1.0 / len(log)  # at most one decision apart (embeddings of a batch differ in the last float bits)
    out = {"data": args.data, "records": len(log), "router": str(args.router), "replay_seconds": replay_s,
           "requests": -(-len(log) // args.batch), "batch": args.batch,
           "service": {k: served[k] for k in ("decisions", "labeled", "frontier_share", "accuracy",
                                              "accuracy_always_local", "accuracy_always_frontier",
                                              "cost_usd_per_request_at_prices", "drift")},
           "openfirst_eval": {"frontier_share": op["frontier_share"], "accuracy": op["expected_accuracy"],
                              "cost_per_query_usd": op["expected_cost"], "apgr": direct["apgr"],
                              "acc_local": direct["acc_local"], "acc_frontier": direct["acc_frontier"]},
           "match": {k: {"service": a, "eval": b, "abs_diff": abs(a - b), "ok": abs(a - b) <= tol}
                     for k, (a, b) in checks.items()},
           "tolerance": tol, "threshold": decided[0]["threshold"]}
    ok = all(m["ok"] for m in out["match"].values())
    out["ok"] = ok
    md = ["# Routed accuracy against cost through the service (RouteLLM GSM8K replay)", "",
          f"{len(log)} labeled records replayed through `POST /v1/route` of `openfirst serve` in {out['requests']} "
          f"requests of {args.batch} ({replay_s:.1f} s); the decision log joined with the labels by "
          "`openfirst eval --decisions`, against `openfirst eval --router` on the same data.", "",
          "| | service (decision log + labels) | openfirst eval | match |", "|---|---|---|---|"]
    for k, m in out["match"].items():
        md.append(f"| {k} | {m['service']:.4f} | {m['eval']:.4f} | {'yes' if m['ok'] else 'NO'} |")
    md += ["", f"Always local {served['accuracy_always_local']:.4f}, always frontier "
               f"{served['accuracy_always_frontier']:.4f}; APGR of the router {direct['apgr']:.3f}. Drift: "
               f"{served['drift']['warning'] or 'no warning'}.", "",
           "Prices: the defaults of `openfirst eval` (USD 0.0005 local, 0.01 frontier per query).",
           "",
           "The point here is that the service's routing path gives what `openfirst eval` gives (largest difference "
           f"{max(m['abs_diff'] for m in out['match'].values()):.2g}). The router artifact of the main command is "
           "trained on all of GSM8K, so these accuracies are in-sample; the honest, out-of-fold numbers are in "
           "`router-routellm-gsm8k.md` (APGR 0.654).",
           "", "Command: `bash benchmarks/run_service.sh`"]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "service-replay.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.out_dir / "service-replay.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
