"""Replicas of `openfirst serve` sharing state (issue 24): 4 real `openfirst serve` processes on one machine, a real
Redis and PostgreSQL, FAKE stand-ins recording every call to the local model and the frontier, requests spread
round-robin by the client (no balancer).

1. budget: one key with a daily frontier budget B, N concurrent requests each costing more than B/100 at the
   frontier: the frontier spend (summed from the stand-in's recorded calls) against B + one request's worst case.
2. rate limit: one key at R requests a minute, requests as fast as the client can send them: the requests let
   through against R (the burst) + R/60 per second elapsed.
3. chaos: load at a steady pace; Redis killed, then the database, then both restarted: statuses (no 500),
   frontier spend against the budget, every answered request's decision in the database exactly once.
4. latency: one replica without shared state and one with it, requests alternating: p50 and p99 each, the added.

    .venv/bin/python benchmarks/replicas.py [--requests 2000] [--replicas 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT.parent))

from openfirst.core.machine import cpu_line, cpu_summary  # noqa: E402
from openfirst.service.auth import key_hash  # noqa: E402
from openfirst.state.replicas import FRONTIER_PRICE, Replicas, StandIn, replica_sections, write_config  # noqa: E402
from openfirst.state.servers import PostgresServer, RedisServer  # noqa: E402

TASK = f"{ROOT}/datasets/tasks/support_ticket.py:SupportTicket"
TEXT = "I was charged twice for order {i}, please refund the second charge."
ADMIN = "of_bench-admin"


def key(name: str, **kw) -> dict:
    return {"name": name, "sha256": key_hash(f"of_bench-{name}"), **kw}


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer of_bench-{name}"}


async def fire(urls: list[str], n: int, who: str, path: str = "/v1/tasks/support_ticket/extract",
               concurrency: int = 2000, pace_s: float = 0.0, offset: int = 0) -> list[tuple[int, dict]]:
    """n requests round-robin over the replicas; (status, body) each (status 0: no answer; the body's "_done_s":
    when the answer came, seconds from the first request)."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        async def one(i: int) -> tuple[int, dict]:
            if pace_s:
                await asyncio.sleep(i * pace_s)
            async with sem:
                try:
                    r = await client.post(urls[i % len(urls)] + path, headers=bearer(who),
                                          json={"input": TEXT.format(i=offset + i)})
                    status, body = r.status_code, r.json()
                except (httpx.HTTPError, ValueError) as exc:
                    status, body = 0, {"error": type(exc).__name__}
                return status, {**body, "_done_s": time.perf_counter() - t0}
        return list(await asyncio.gather(*(one(i) for i in range(n))))


def worst_case_usd(frontier_url: str) -> float:
    """One request's worst case as the service reserves it: the same function on the same program and prompt."""
    from openfirst.compiler.backends.openai_compat import OpenAICompatibleBackend
    from openfirst.compiler.backends.pricing import Price
    from openfirst.compiler.program import Program, ProgramOptions
    from openfirst.compiler.task import load_task
    from openfirst.pipeline.pipeline import worst_case_usd as worst

    task = load_task(TASK)
    backend = OpenAICompatibleBackend("frontier-stand-in", base_url=frontier_url, flavor="openai")
    program = Program(task, backend, ProgramOptions(max_tokens=200, max_retries=0))
    prompt = sum(len(m["content"].encode()) + 16 for m in program.messages(TEXT.format(i=10_000)))
    return worst(Price(**FRONTIER_PRICE), prompt, 200, 1)


def decisions_in_db(url: str, caller: str) -> list[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(sa.text("SELECT id FROM openfirst_decisions WHERE caller = :c"),
                                          {"c": caller})]
    engine.dispose()
    return ids


def wait_flushed(urls: list[str], timeout_s: float = 60.0) -> bool:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = [httpx.get(u + "/healthz", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5).json()["state"]
                  for u in urls]
        if all(s["database"]["up"] and s["database"]["spooled_bytes"] == 0 for s in states):
            return True
        time.sleep(0.5)
    return False


def budget_phase(urls, frontier, n, budget) -> dict:
    before, billed = frontier.calls, frontier.billed_usd
    start = time.perf_counter()
    out = asyncio.run(fire(urls, n, "budget"))
    calls, spend = frontier.calls - before, frontier.billed_usd - billed
    statuses = Counter(s for s, _ in out)
    decided = Counter(b.get("decided_by") for s, b in out if s == 200)
    worst = worst_case_usd(frontier.base_url)
    call = spend / max(1, calls)
    return {"requests": n, "seconds": round(time.perf_counter() - start, 2), "statuses": dict(statuses),
            "decided_by": dict(decided), "budget_usd": budget, "frontier_calls": calls,
            "frontier_spend_usd": round(spend, 6), "call_cost_usd": round(call, 6),
            "each_call_above_b_over_100": bool(frontier.costs and min(frontier.costs) > budget / 100),
            "worst_case_usd": round(worst, 6), "bound_usd": round(budget + worst, 6),
            "met": spend <= budget + worst and statuses.get(500, 0) == 0,
            "per_replica_alone_would_spend_usd": round(min(n * call, budget * len(urls)), 4)}


def rate_phase(urls, n, rate) -> dict:
    start = time.perf_counter()
    out = asyncio.run(fire(urls, n, "rated", path="/v1/route", concurrency=64))
    elapsed = time.perf_counter() - start
    let_through = sum(1 for s, _ in out if s == 200)
    expected = rate + elapsed * rate / 60
    return {"requests": n, "rate_per_minute": rate, "seconds": round(elapsed, 2), "let_through": let_through,
            "rate_limited": sum(1 for s, _ in out if s == 429), "expected": round(expected, 1),
            "error": round(let_through / expected - 1, 4), "met": abs(let_through / expected - 1) <= 0.05,
            "statuses": dict(Counter(s for s, _ in out))}


def chaos_phase(urls, redis, pg, frontier, n, budget, pace_s) -> dict:
    before, billed = frontier.calls, frontier.billed_usd
    events = []

    async def run() -> list:
        load = asyncio.create_task(fire(urls, n, "chaos", pace_s=pace_s, concurrency=256, offset=100_000))
        t0 = time.perf_counter()
        for at, what, act in ((0.2, "kill redis", redis.kill), (0.4, "kill database", pg.kill),
                              (0.65, "restart redis", redis.start), (0.8, "restart database", pg.start)):
            await asyncio.sleep(max(0.0, at * n * pace_s - (time.perf_counter() - t0)))
            events.append({"at_s": round(time.perf_counter() - t0, 2), "event": what})
            await asyncio.to_thread(act)
        return await load
    start = time.perf_counter()
    out = asyncio.run(run())
    flushed = wait_flushed(urls)
    calls, spend = frontier.calls - before, frontier.billed_usd - billed
    answered = [b["id"] for s, b in out if s == 200]
    in_db = decisions_in_db(pg.url, "chaos")
    counts = Counter(in_db)
    statuses = Counter(s for s, _ in out)
    timeline = sorted((round(b["_done_s"], 3), s, b.get("target"), b.get("decided_by"), b.get("cost_usd"))
                      for s, b in out)
    return {"requests": n, "seconds": round(time.perf_counter() - start, 2), "events": events, "timeline": timeline,
            "statuses": dict(statuses), "decided_by": dict(Counter(b.get("decided_by") for s, b in out if s == 200)),
            "frontier_calls": calls, "frontier_spend_usd": round(spend, 6), "budget_usd": budget,
            "answered": len(answered), "decisions_in_database": len(in_db),
            "duplicates": sum(c - 1 for c in counts.values() if c > 1),
            "missing": len(set(answered) - set(counts)), "spool_flushed": flushed,
            "met": (statuses.get(500, 0) == 0 and spend <= budget and set(answered) == set(counts)
                    and len(in_db) == len(answered) and flushed)}


def latency_phase(folder, local, frontier, redis, pg, n) -> dict:
    """One replica without shared state, one with Redis and the database, the same requests alternating."""
    import httpx

    keys = [key("latency", frontier_budget_usd_per_day=1e6, rate_per_minute=1_000_000),
            {"name": "admin", "sha256": key_hash(ADMIN), "endpoints": ["health", "extract"]}]
    plain = write_config(folder / "plain.toml", replica_sections(TASK, local, frontier, {}), keys)
    shared_state = {"redis_url": redis.url, "database_url": pg.url, "spool_dir": str(folder / "spool-latency")}
    shared = write_config(folder / "shared.toml", replica_sections(TASK, local, frontier, shared_state), keys)
    a, b = Replicas(plain, 1, folder).start(), Replicas(shared, 1, folder).start()
    times = {"no_shared_state": [], "redis_and_database": []}
    try:
        with httpx.Client(timeout=30) as client:
            for i in range(n + 20):
                for name, r in (("no_shared_state", a), ("redis_and_database", b)):
                    t = time.perf_counter()
                    resp = client.post(r.urls[0] + "/v1/tasks/support_ticket/extract", headers=bearer("latency"),
                                       json={"input": TEXT.format(i=i)})
                    if i >= 20 and resp.status_code == 200:  # the first 20: warm-up
                        times[name].append(time.perf_counter() - t)
    finally:
        a.stop()
        b.stop()
    out = {name: {"p50_ms": round(float(np.percentile(v, 50)) * 1000, 3),
                  "p99_ms": round(float(np.percentile(v, 99)) * 1000, 3), "n": len(v)} for name, v in times.items()}
    out["added_p50_ms"] = round(out["redis_and_database"]["p50_ms"] - out["no_shared_state"]["p50_ms"], 3)
    out["added_p99_ms"] = round(out["redis_and_database"]["p99_ms"] - out["no_shared_state"]["p99_ms"], 3)
    return out


def plot(res: dict, path: Path) -> None:
    """The chaos phase over time: answers per second by what decided them, cumulative frontier spend against the
    budget, the store events."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = res["chaos"]
    t = np.array([row[0] for row in c["timeline"]])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    bins = np.arange(0, t.max() + 1.0, 0.5)
    for label, pick in (("frontier (decided_by default)", lambda r: r[2] == "frontier"),
                        ("local: budget store down or budget spent (decided_by budget)", lambda r: r[3] == "budget"),
                        ("other status than 200", lambda r: r[1] != 200)):
        sel = np.array([row[0] for row in c["timeline"] if pick(row)])
        top.hist(sel, bins=bins, histtype="step", linewidth=1.5, label=label)
    top.set_ylabel("answers per 0.5 s")
    top.legend(fontsize=8, loc="lower left")
    spend = np.cumsum([(row[4] or 0.0) if row[2] == "frontier" else 0.0 for row in c["timeline"]])
    bottom.plot(t, spend, label="frontier spend (as answered)")
    bottom.axhline(c["budget_usd"], color="red", linestyle="--", label=f"budget {c['budget_usd']:.2f} USD")
    bottom.set_ylabel("USD")
    bottom.set_xlabel("seconds into the load")
    bottom.legend(fontsize=8, loc="lower right")
    for e in c["events"]:
        for ax in (top, bottom):
            ax.axvline(e["at_s"], color="grey", linewidth=0.8)
        top.annotate(e["event"], (e["at_s"], top.get_ylim()[1] * 0.95), rotation=90, fontsize=7, va="top")
    fig.suptitle(f"{res['replicas']} replicas, Redis then the database killed and restarted under load")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(res: dict) -> str:
    b, r, c, lat = res["budget"], res["rate_limit"], res["chaos"], res["latency"]
    lines = [
        "# Replicas sharing state: budgets, rate limits, decisions (Redis + PostgreSQL)", "",
        f"{res['replicas']} real `openfirst serve` processes on one machine, a real Redis (append-only, fsync "
        "always) and PostgreSQL, FAKE stand-ins for the local model and the frontier recording every call; the "
        f"client spreads requests round-robin (no balancer). {res['cpu']}.", "",
        "| target | result | met |", "|---|---|---|",
        f"| frontier spend <= B + one request's worst case ({b['requests']} concurrent requests, each "
        f"{b['call_cost_usd']:.5f} USD on average, each > B/100: {b['each_call_above_b_over_100']}) | {b['frontier_spend_usd']:.4f} USD in {b['frontier_calls']} calls; "
        f"B = {b['budget_usd']:.2f}, bound {b['bound_usd']:.4f} (one replica alone would have let "
        f"{b['per_replica_alone_would_spend_usd']:.2f} USD through across {res['replicas']}) | "
        f"{'yes' if b['met'] else 'NO'} |",
        f"| rate limit within 5% across replicas ({r['rate_per_minute']}/min, {r['requests']} requests in "
        f"{r['seconds']} s) | {r['let_through']} let through, expected {r['expected']} ({r['error']:+.1%}) | "
        f"{'yes' if r['met'] else 'NO'} |",
        f"| chaos: 0 status 500 | {c['statuses'].get(500, 0)} (statuses {c['statuses']}) | "
        f"{'yes' if c['statuses'].get(500, 0) == 0 else 'NO'} |",
        f"| chaos: 0 frontier spend beyond the budget | {c['frontier_spend_usd']:.4f} USD of "
        f"{c['budget_usd']:.2f} | {'yes' if c['frontier_spend_usd'] <= c['budget_usd'] else 'NO'} |",
        f"| chaos: every decision in the database exactly once | {c['decisions_in_database']} in the database for "
        f"{c['answered']} answered requests, {c['duplicates']} duplicates, {c['missing']} missing | "
        f"{'yes' if c['duplicates'] == 0 and c['missing'] == 0 and c['decisions_in_database'] == c['answered'] else 'NO'} |",
        f"| chaos: every replica's spool written to the database after recovery | "
        f"{'yes' if c['spool_flushed'] else 'NO'} | {'yes' if c['spool_flushed'] else 'NO'} |",
        "", "Chaos events (seconds into the load): "
        + ", ".join(f"{e['event']} at {e['at_s']}" for e in c["events"]) + f"; decided_by {c['decided_by']}.", "",
        f"Budget phase: statuses {b['statuses']}, decided_by {b['decided_by']}, {b['seconds']} s.", "",
        "## Added latency of the shared store", "",
        f"One replica without shared state and one with Redis and PostgreSQL, {lat['no_shared_state']['n']} "
        "sequential requests each, alternating (a frontier reservation, its settlement, the rate limit and the "
        "decision on every request):", "",
        "| | p50 ms | p99 ms |", "|---|---|---|",
        f"| no shared state | {lat['no_shared_state']['p50_ms']:.2f} | {lat['no_shared_state']['p99_ms']:.2f} |",
        f"| Redis + database | {lat['redis_and_database']['p50_ms']:.2f} | "
        f"{lat['redis_and_database']['p99_ms']:.2f} |",
        f"| added | {lat['added_p50_ms']:+.2f} | {lat['added_p99_ms']:+.2f} |", "",
        "![chaos timeline](replicas.png)", "",
        f"Command: `{res['command']}` ({res['seconds']:.0f} s).", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rate-requests", type=int, default=1500)
    ap.add_argument("--rate", type=int, default=600, help="the rate-limit phase's requests a minute")
    ap.add_argument("--chaos-requests", type=int, default=1500)
    ap.add_argument("--chaos-pace", type=float, default=0.01, help="seconds between the chaos phase's requests")
    ap.add_argument("--latency-requests", type=int, default=300)
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    start = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="openfirst-replicas-"))
    budget, chaos_budget = 0.1, 0.8  # the chaos load asks for about 2 USD: the budget runs out after the outage
    redis, pg = RedisServer(folder / "redis").start(), PostgresServer(folder / "pg").start()
    local, frontier = StandIn(), StandIn(FRONTIER_PRICE)
    keys = [key("budget", frontier_budget_usd_per_day=budget, rate_per_minute=1_000_000),
            key("rated", rate_per_minute=args.rate, endpoints=["route"]),
            key("chaos", frontier_budget_usd_per_day=chaos_budget, rate_per_minute=1_000_000),
            {"name": "admin", "sha256": key_hash(ADMIN), "endpoints": ["health", "metrics"]}]
    state = {"redis_url": redis.url, "database_url": pg.url, "spool_dir": str(folder / "spool"),
             "retry_after_s": 0.5}
    config = write_config(folder / "openfirst.toml", replica_sections(TASK, local, frontier, state), keys)
    machine = cpu_summary()
    res = {"replicas": args.replicas, "cpu": cpu_line(machine), "machine": machine,
           "command": "bash benchmarks/run_replicas.sh"}
    with local, frontier:
        replicas = Replicas(config, args.replicas, folder).start()
        try:
            print("budget ...", file=sys.stderr)
            res["budget"] = budget_phase(replicas.urls, frontier, args.requests, budget)
            print("rate limit ...", file=sys.stderr)
            res["rate_limit"] = rate_phase(replicas.urls, args.rate_requests, args.rate)
            print("chaos ...", file=sys.stderr)
            res["chaos"] = chaos_phase(replicas.urls, redis, pg, frontier, args.chaos_requests, chaos_budget,
                                       pace_s=args.chaos_pace)
        finally:
            replicas.stop()
        print("latency ...", file=sys.stderr)
        res["latency"] = latency_phase(folder, local, frontier, redis, pg, args.latency_requests)
    redis.stop()
    pg.stop()
    res["seconds"] = time.perf_counter() - start
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "replicas.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out_dir / "replicas.md").write_text(markdown(res))
    plot(res, args.out_dir / "replicas.png")
    print(markdown(res))
    ok = res["budget"]["met"] and res["rate_limit"]["met"] and res["chaos"]["met"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
