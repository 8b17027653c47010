"""Load test of `openfirst serve` on loopback: throughput and p50/p99 latency of /v1/route and of
/v1/tasks/support_ticket/extract (local model: SmolLM2 on llama.cpp's server) at 1, 8 and 32 concurrent
clients, bounded in count and time. The anchor, measured in the same run: the embedding of one query
(MiniLM, what every routing decision must pay), interleaved with /v1/route calls in the same process.

    .venv/bin/python benchmarks/service_load.py --router runs/gsm8k --out-dir benchmarks/results
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from openfirst.compiler.backends.llamacpp_server import LlamaCppServer, free_port, wait_until_serving  # noqa: E402

TICKETS = ROOT / "datasets" / "tasks" / "support_tickets.jsonl"


def pct(xs, q):
    return float(np.percentile(np.asarray(xs), q)) if len(xs) else None


def gsm8k_queries(n: int) -> list[str]:
    from openfirst.router.public_data import load_public

    return load_public("routellm-gsm8k").queries[:n]


def config_text(router: Path, llama: LlamaCppServer, decisions: Path) -> str:
    return f"""
[tasks]
support_ticket = "{ROOT / 'datasets/tasks/support_ticket.py'}:SupportTicket"
[local]
kind = "server"
base_url = "{llama.base_url}"
model = "{llama.alias}"
flavor = "llama.cpp"
max_concurrency = 64
retry = {{ max_attempts = 1, deadline_s = 600, attempt_timeout_s = 600 }}
price = {{ input_per_mtok = 0.02, output_per_mtok = 0.04 }}
[router]
artifact = "{router}"
[limits]
deadline_s = 600
max_concurrency = 256
queue_timeout_s = 60
[program]
max_tokens = 200
max_retries = 1
[log]
decisions = "{decisions}"
"""


def start_service(config: Path, port: int, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--config", str(config), "--port", str(port),
                             "--log-level", "warning"], cwd=ROOT, env=env, stdout=open(log_path, "wb"),
                            stderr=subprocess.STDOUT)
    problem = wait_until_serving(proc, f"http://127.0.0.1:{port}/healthz", 180)
    if problem is not None:
        proc.kill()
        raise SystemExit(f"the service {problem}, see {log_path}")
    return proc


def anchor_same_process(queries: list[str], router_dir: Path) -> dict:
    """The target's measurement: the service on a uvicorn thread in this process; for each query, in alternating
    order, the embedding alone (MiniLM, no HTTP) and POST /v1/route of the same query, so both run in the same
    process under the same conditions. Also the handler's own time (`latency_ms` of the response)."""
    import httpx

    from openfirst.service.app import serve_in_thread
    from openfirst.service.config import ServiceConfig
    from openfirst.service.service import Service

    config = ServiceConfig(tasks={"support_ticket": f"{ROOT / 'datasets/tasks/support_ticket.py'}:SupportTicket"},
                           local={"kind": "server", "model": "unused", "base_url": "http://127.0.0.1:9/v1"},
                           router={"artifact": str(router_dir)}, log={"decisions": None})
    service = Service.from_config(config)
    embedder = service.router.embedder
    emb, routed, handler, diffs = [], [], [], []
    with serve_in_thread(service) as url, httpx.Client(base_url=url, timeout=60) as client:
        client.post("/v1/route", json={"input": "warm up"}).raise_for_status()
        for i, q in enumerate(queries):
            t0 = time.perf_counter()
            if i % 2:
                embedder.encode([q])
            t1 = time.perf_counter()
            r = client.post("/v1/route", json={"input": q})
            r.raise_for_status()
            t2 = time.perf_counter()
            if not i % 2:
                embedder.encode([q])
            t3 = time.perf_counter()
            e, h = (t1 - t0) if i % 2 else (t3 - t2), t2 - t1
            emb.append(e)
            routed.append(h)
            handler.append(r.json()["latency_ms"] / 1e3)
            diffs.append(h - e)
    return {"n": len(queries), "embedding_p50_ms": pct(emb, 50) * 1e3, "embedding_p99_ms": pct(emb, 99) * 1e3,
            "route_http_p50_ms": pct(routed, 50) * 1e3, "route_http_p99_ms": pct(routed, 99) * 1e3,
            "handler_p50_ms": pct(handler, 50) * 1e3, "paired_difference_p50_ms": pct(diffs, 50) * 1e3}


def anchor_cross_process(url: str, queries: list[str], router_dir: Path) -> dict:
    """Context: blocks A-B-A with pauses, the embedding in this process, /v1/route of the service process."""
    import httpx

    from openfirst.router.api import Router

    embedder = Router.load(router_dir).embedder
    embedder.encode(["warm up"])

    def timed(fn) -> list[float]:
        out = []
        for q in queries:
            t = time.perf_counter()
            fn(q)
            out.append(time.perf_counter() - t)
        time.sleep(2.0)
        return out

    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("/v1/route", json={"input": "warm up"}).raise_for_status()
        time.sleep(2.0)
        emb = timed(lambda q: embedder.encode([q]))
        routed = timed(lambda q: client.post("/v1/route", json={"input": q}).raise_for_status())
        emb += timed(lambda q: embedder.encode([q]))
    return {"n": len(queries), "embedding_p50_ms": pct(emb, 50) * 1e3, "route_http_p50_ms": pct(routed, 50) * 1e3}


async def load(url: str, path: str, bodies: list[dict], clients: int, total: int, time_limit_s: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    stop_at = time.perf_counter() + time_limit_s

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < total and time.perf_counter() < stop_at:
            body = bodies[sent % len(bodies)]
            sent += 1
            t = time.perf_counter()
            r = await client.post(path, json=body)
            if r.status_code == 200:
                latencies.append(time.perf_counter() - t)
            else:
                kind = r.json().get("error", {}).get("type", str(r.status_code))
                errors[kind] = errors.get(kind, 0) + 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=900, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        wall = time.perf_counter() - start
    return {"clients": clients, "requests": len(latencies) + sum(errors.values()), "ok": len(latencies),
            "errors": errors, "wall_s": wall, "throughput_rps": len(latencies) / wall,
            "p50_ms": pct(latencies, 50) * 1e3 if latencies else None,
            "p99_ms": pct(latencies, 99) * 1e3 if latencies else None,
            "time_limited": time.perf_counter() >= stop_at}


def markdown(out: dict) -> str:
    a, x = out["anchor"], out["anchor_cross_process"]
    lines = ["# Service load test (loopback)", "", out["setup"], "",
             f"Anchor, same run, same process, {a['n']} GSM8K queries, each embedded alone (MiniLM, no HTTP) and "
             f"sent to `POST /v1/route` in alternating order: embedding p50 **{a['embedding_p50_ms']:.1f} ms** (p99 "
             f"{a['embedding_p99_ms']:.1f}); `/v1/route` p50 **{a['route_http_p50_ms']:.1f} ms** (p99 "
             f"{a['route_http_p99_ms']:.1f}), of which the handler itself {a['handler_p50_ms']:.1f} ms.",
             f"`/v1/route` adds **{out['route_overhead_p50_ms']:.1f} ms** p50 over the embedding (median paired "
             f"difference {a['paired_difference_p50_ms']:.1f} ms; target < 10 ms: "
             f"{'met' if out['route_overhead_p50_ms'] < 10 else 'NOT met'}).",
             f"Across processes (this process embeds, the `openfirst serve` process routes; blocks A-B-A with pauses) "
             f"the figures were {x['embedding_p50_ms']:.1f} ms and {x['route_http_p50_ms']:.1f} ms: one query's "
             "embedding time depends on which process and thread pattern runs it by this much on 2 shared cores, "
             "which is why the target is measured within one process.", "",
             "| endpoint | clients | requests | ok | errors | throughput (req/s) | p50 (ms) | p99 (ms) | wall (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in ("route", "extract"):
        for r in out[name]:
            lines.append(f"| {name} | {r['clients']} | {r['requests']} | {r['ok']} | {sum(r['errors'].values())} | "
                         f"{r['throughput_rps']:.2f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['wall_s']:.1f} |")
    lines += ["", "Command: `bash benchmarks/run_service.sh`"]
    return "\n".join(lines) + "\n"


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, name in zip(axes, ("route", "extract")):
        rows = out[name]
        c = [r["clients"] for r in rows]
        ax.plot(c, [r["p50_ms"] for r in rows], "o-", label="p50")
        ax.plot(c, [r["p99_ms"] for r in rows], "s--", label="p99")
        if name == "route":
            ax.axhline(out["anchor"]["embedding_p50_ms"], color="gray", lw=1, label="embedding p50 (anchor)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("latency (ms)")
        tput = ", ".join(f"{r['throughput_rps']:.1f}" for r in rows)
        ax.set_title(f"/{'v1/route' if name == 'route' else 'extract'}  (req/s: {tput})", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--router", type=Path, default=ROOT / "runs" / "gsm8k")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--route-requests", type=int, default=300, help="per level, at most")
    ap.add_argument("--extract-requests", type=int, nargs="+", default=[6, 16, 32], help="per level, at most")
    ap.add_argument("--time-limit", type=float, default=150.0, help="seconds per level, at most")
    ap.add_argument("--llama-threads", type=int, default=1)
    args = ap.parse_args()
    if not (args.router / "router.json").is_file():
        raise SystemExit(f"no router at {args.router}: run `openfirst train routellm-gsm8k --out {args.router}`")
    queries = gsm8k_queries(400)
    tickets = [json.loads(x)["text"] for x in TICKETS.read_text().splitlines() if x.strip()]
    out: dict = {"setup": (f"{os.cpu_count()} CPU cores; service = `openfirst serve` in its own process (uvicorn, "
                           f"1 worker); local model SmolLM2-135M Q4_1 on llama-cpp-python's server "
                           f"({args.llama_threads} thread); router {args.router.name} (MiniLM + ensemble); "
                           f"clients = httpx.AsyncClient in this process, one request each at a time; /v1/route "
                           f"bodies = single GSM8K questions, /extract bodies = single support tickets "
                           f"({len(tickets)} real examples, cycled)")}
    with tempfile.TemporaryDirectory() as tmp, LlamaCppServer(n_threads=args.llama_threads, n_ctx=4096) as llama:
        tmp = Path(tmp)
        (tmp / "openfirst.toml").write_text(config_text(args.router.resolve(), llama, tmp / "decisions.jsonl"))
        port = free_port()
        proc = start_service(tmp / "openfirst.toml", port, tmp / "service.log")
        url = f"http://127.0.0.1:{port}"
        try:
            out["anchor_cross_process"] = anchor_cross_process(url, queries[300:400], args.router)
            route_bodies = [{"input": q} for q in queries[:300]]
            asyncio.run(load(url, "/v1/route", route_bodies, 1, 20, 30))  # warm-up
            out["route"] = [asyncio.run(load(url, "/v1/route", route_bodies, c, args.route_requests, args.time_limit))
                            for c in args.levels]
            extract_bodies = [{"input": t} for t in tickets]
            out["extract"] = [asyncio.run(load(url, "/v1/tasks/support_ticket/extract", extract_bodies, c, n,
                                               args.time_limit))
                              for c, n in zip(args.levels, args.extract_requests)]
            with urllib.request.urlopen(f"{url}/metrics") as r:
                metrics = r.read().decode()
            out["metrics_sample"] = [x for x in metrics.splitlines() if x.startswith(("openfirst_routed_total",
                                                                                      "openfirst_cost_usd_total"))]
        finally:
            proc.terminate()
            proc.wait(30)
    out["anchor"] = anchor_same_process(queries[300:400], args.router)
    a = out["anchor"]
    out["route_overhead_p50_ms"] = a["route_http_p50_ms"] - a["embedding_p50_ms"]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "service-load.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.out_dir / "service-load.md").write_text(markdown(out))
    plot(out, args.out_dir / "service-load.png")
    print(markdown(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
