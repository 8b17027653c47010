"""Server backends: client-layer overhead vs the raw openai client, concurrency on a real llama.cpp
server, and a routed run over the example tasks (local server + a second server standing in for
the frontier), with per-request cost and the model that answered.

    .venv/bin/python benchmarks/backends.py --out-dir benchmarks/results
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from openfirst.compiler.backends.llamacpp_server import LlamaCppServer  # noqa: E402
from openfirst.compiler.backends.openai_compat import OpenAICompatibleBackend  # noqa: E402
from openfirst.compiler.backends.pricing import Price  # noqa: E402
from openfirst.compiler.program import UNGUARDED, Program, ProgramOptions, Result  # noqa: E402
from openfirst.pipeline import Item, ModelRegistry, Pipeline, RoutingPolicy  # noqa: E402
from openfirst.router.api import Decision  # noqa: E402
from openfirst.compiler.task import load_task  # noqa: E402
from openfirst.compiler.backends.fake_server import Reply, ScriptedServer, completion  # noqa: E402

TASKS = ROOT / "datasets" / "tasks"
EXAMPLES = [("support_ticket.py:SupportTicket", "support_tickets.jsonl"), ("invoice.py:Invoice", "invoices.jsonl"),
            ("meeting_notes.py:MeetingNotes", "meetings.jsonl")]
LOCAL_PRICE = Price(input_per_mtok=0.02, output_per_mtok=0.04)  # illustrative self-hosting cost of a small model
FRONTIER_PRICE = Price(input_per_mtok=0.15, output_per_mtok=0.60)  # gpt-4o-mini's list price, for illustration


class LengthRouter:
    """The benchmark's stand-in router: inputs longer than `cut` characters go to the frontier."""

    def __init__(self, cut: int):
        self.cut = cut

    def route_many(self, texts):
        return [Decision("frontier" if len(t) > self.cut else "local", None, self.cut, len(t),
                         f"length {len(t)} vs {self.cut}") for t in texts]


def pct(xs, q):
    return float(np.percentile(np.asarray(xs), q)) if xs else None


def rows(name):
    return [json.loads(line) for line in (TASKS / name).read_text().splitlines() if line.strip()]


def overhead(n: int) -> dict:
    """Per-call time on a loopback FAKE server that answers at once: raw openai vs our layers."""
    import openai

    task = load_task(f"{TASKS / EXAMPLES[0][0]}")
    good = '{"category":"billing","priority":2,"summary":"double charge"}'
    with ScriptedServer([Reply(body=completion(good))]) as server:
        backend = OpenAICompatibleBackend("gpt-test", base_url=server.base_url, api_key="sk-bench", flavor="openai",
                                          price=FRONTIER_PRICE)
        program = Program(task, backend, ProgramOptions(max_tokens=100, max_retries=0, **UNGUARDED))
        fmt = program.grammar
        messages = task.messages("My card was charged twice.")
        raw = openai.OpenAI(base_url=server.base_url, api_key="sk-bench", max_retries=0)
        request = backend._request(messages, fmt, 100, 0.0, 1.0)

        def raw_call():
            r = raw.chat.completions.create(**request)
            return r.choices[0].message.content

        def backend_call():
            return backend.generate([messages], fmt, 100)[0]

        def program_call():
            return program.run("My card was charged twice.")

        calls = {"raw_openai": raw_call, "backend_generate": backend_call, "program_run": program_call}
        for fn in calls.values():  # warm connections and imports
            for _ in range(20):
                fn()
        times = {k: [] for k in calls}
        for _ in range(n):  # interleaved, so drift on a shared machine hits all three alike
            for k, fn in calls.items():
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
    out = {k: {"p50_ms": 1000 * pct(v, 50), "p99_ms": 1000 * pct(v, 99), "mean_ms": 1000 * statistics.fmean(v)}
           for k, v in times.items()}
    base = out["raw_openai"]
    for k in ("backend_generate", "program_run"):
        out[k]["ratio_p50"] = out[k]["p50_ms"] / base["p50_ms"]
        out[k]["ratio_mean"] = out[k]["mean_ms"] / base["mean_ms"]
    out["calls"] = n
    return out


def concurrency(server: LlamaCppServer, levels: list[int], per_level: int, max_tokens: int) -> list[dict]:
    task = load_task(f"{TASKS / EXAMPLES[0][0]}")
    texts = [r["text"] for r in rows(EXAMPLES[0][1])]
    out = []
    for c in levels:
        backend = OpenAICompatibleBackend("smollm2", base_url=server.base_url, flavor="llama.cpp", max_concurrency=c)
        program = Program(task, backend, ProgramOptions(max_tokens=max_tokens, max_retries=0, **UNGUARDED))
        n = max(per_level, c)
        batch = [texts[i % len(texts)] for i in range(n)]

        async def run_all():
            """`c` clients, each sending its next request when the previous one is answered."""
            queue: asyncio.Queue = asyncio.Queue()
            for text in batch:
                queue.put_nowait(text)
            done = []

            async def client():
                while not queue.empty():
                    text = queue.get_nowait()
                    t0 = time.perf_counter()
                    r = (await program.arun_many([text]))[0]
                    done.append((time.perf_counter() - t0, r))

            await asyncio.gather(*(client() for _ in range(c)))
            return done

        t0 = time.perf_counter()
        done = asyncio.run(run_all())
        wall = time.perf_counter() - t0
        lat = [d for d, _ in done]
        ok = sum(isinstance(r, Result) for _, r in done)
        tokens = sum(r.usage.get("completion_tokens", 0) for _, r in done)
        out.append({"concurrency": c, "requests": n, "valid": ok, "errors": n - ok, "wall_s": wall,
                    "throughput_rps": n / wall, "completion_tok_s": tokens / wall,
                    "p50_s": pct(lat, 50), "p99_s": pct(lat, 99)})
        print(f"concurrency {c}: {out[-1]}", flush=True)
    return out


def routed(local: LlamaCppServer, frontier: LlamaCppServer, max_tokens: int) -> dict:
    """Longer inputs go to the frontier stand-in (a stated heuristic: the point is the plumbing, cost, model)."""
    per_request = []
    for spec, data in EXAMPLES:
        task = load_task(f"{TASKS / spec}")
        texts = rows(data)
        cut = float(np.median([len(r["text"]) for r in texts]))
        local_b = OpenAICompatibleBackend(local.alias, base_url=local.base_url, flavor="llama.cpp", price=LOCAL_PRICE,
                                          name="local")
        frontier_b = OpenAICompatibleBackend(frontier.alias, base_url=frontier.base_url, flavor="llama.cpp",
                                             price=FRONTIER_PRICE, name="frontier")
        options = ProgramOptions(max_tokens=max_tokens, max_retries=1, **UNGUARDED)
        pipeline = Pipeline(ModelRegistry.of(local_b, frontier_b),
                            {task.name: {"local": Program(task, local_b, options),
                                         "frontier": Program(task, frontier_b, options)}},
                            policy=RoutingPolicy(fallback_frontier_to_local=False), router=LengthRouter(cut))
        outcomes = pipeline.run_sync(task.name, [Item(r["text"]) for r in texts])
        for row, routed in zip(texts, outcomes):
            target, r = routed.target, routed.result
            per_request.append({"task": task.name, "id": row.get("id"), "target": target, "model": r.model,
                                "backend": r.backend, "valid": isinstance(r, Result),
                                "error": None if isinstance(r, Result) else type(r.error).__name__,
                                "latency_s": r.latency_s, "usage": r.usage, "cost_usd": r.cost_usd})
    frontier_share = sum(p["target"] == "frontier" for p in per_request) / len(per_request)
    cost = sum(p["cost_usd"] or 0.0 for p in per_request)
    all_frontier = sum(FRONTIER_PRICE.cost(p["usage"]["prompt_tokens"], p["usage"]["completion_tokens"])
                       for p in per_request)
    return {"requests": len(per_request), "valid": sum(p["valid"] for p in per_request),
            "frontier_share": frontier_share, "cost_usd": cost, "cost_if_all_frontier_usd": all_frontier,
            "per_request": per_request}


def markdown(res: dict) -> str:
    o = res["overhead"]
    from openfirst.core.machine import cpu_line

    machine = f" on {cpu_line(res['machine'])}" if "machine" in res else ""
    lines = ["# Server backends", "", f"Command: `{res['command']}`{machine}", "",
             f"## Client-layer overhead (loopback fake server answering at once, {o['calls']} calls each, interleaved)",
             "", "| path | p50 ms | p99 ms | mean ms | p50 / raw | mean / raw |", "|---|---|---|---|---|---|"]
    for k in ("raw_openai", "backend_generate", "program_run"):
        v = o[k]
        lines.append(f"| {k} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} | {v['mean_ms']:.2f} | "
                     f"{v.get('ratio_p50', 1.0):.2f} | {v.get('ratio_mean', 1.0):.2f} |")
    lines += ["", "`backend_generate`: request building, the retry loop, response checks, strict-mode mapping back "
              "and cost; `program_run` adds prompt rendering, JSON parsing, jsonschema and Pydantic validation.", "",
              "## Concurrency on a real llama.cpp server (SmolLM2-135M Q4_1, 2 CPU cores, support-ticket task)", "",
              f"Server threads: {res['threads']}.", "",
              "| concurrent | requests | valid | errors | req/s | completion tok/s | p50 s | p99 s |",
              "|---|---|---|---|---|---|---|---|"]
    for c in res["concurrency"]:
        lines.append(f"| {c['concurrency']} | {c['requests']} | {c['valid']} | {c['errors']} | "
                     f"{c['throughput_rps']:.2f} | {c['completion_tok_s']:.1f} | {c['p50_s']:.2f} | {c['p99_s']:.2f} |")
    r = res["routed"]
    lines += ["", "## Routed run over the example tasks", "",
              f"Local: llama.cpp server `smollm2-local` (priced {LOCAL_PRICE.input_per_mtok}/"
              f"{LOCAL_PRICE.output_per_mtok} USD per M tokens); frontier stand-in: a second llama.cpp server "
              f"`frontier-standin` (priced {FRONTIER_PRICE.input_per_mtok}/{FRONTIER_PRICE.output_per_mtok}). "
              "Inputs longer than their task's median go to the frontier.", "",
              f"Requests {r['requests']}, valid {r['valid']}, frontier share {r['frontier_share']:.0%}, cost "
              f"{r['cost_usd']:.6f} USD vs {r['cost_if_all_frontier_usd']:.6f} USD if all went to the frontier.", "",
              "| task | id | target | model | valid | latency s | prompt tok | completion tok | cost USD |",
              "|---|---|---|---|---|---|---|---|---|"]
    for p in r["per_request"]:
        lines.append(f"| {p['task']} | {p['id']} | {p['target']} | {p['model']} | {p['valid'] or p['error']} | "
                     f"{p['latency_s']:.2f} | {p['usage']['prompt_tokens']} | {p['usage']['completion_tokens']} | "
                     f"{(p['cost_usd'] or 0):.6f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--overhead-calls", type=int, default=300)
    ap.add_argument("--levels", default="1,8,32")
    ap.add_argument("--per-level", type=int, default=16, help="requests per level (at least the concurrency)")
    ap.add_argument("--max-tokens", type=int, default=120)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads of the local llama.cpp server")
    args = ap.parse_args()
    from openfirst.core.machine import cpu_summary

    res = {"command": "bash benchmarks/run_backends.sh", "machine": cpu_summary(), "threads": args.threads}
    res["overhead"] = overhead(args.overhead_calls)
    print("overhead", json.dumps(res["overhead"]), flush=True)
    with LlamaCppServer(alias="smollm2-local", n_threads=args.threads) as local:
        res["concurrency"] = concurrency(local, [int(x) for x in args.levels.split(",")], args.per_level,
                                         args.max_tokens)
        with LlamaCppServer(alias="frontier-standin", n_threads=1) as frontier:
            res["routed"] = routed(local, frontier, args.max_tokens + 200)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "backends.json").write_text(json.dumps(res, indent=2))
    (args.out_dir / "backends.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
