"""/healthz latency and unrelated requests while the service is abused (issue 11's cases), on 127.0.0.1.

The service runs in this process on scripted FAKE backends and a hashed-words FAKE-embedder router, so what is
measured is the service's own handling (event loop, slots, validation), not a model. Each scenario runs its abuse
in background threads for a few seconds while a probe calls /healthz and /v1/route every 20 ms.

    bash benchmarks/run_service_abuse.sh     # writes benchmarks/results/service-abuse.{json,md}
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TASK = f"{ROOT}/datasets/tasks/support_ticket.py:SupportTicket"

SECONDS = 3.0


def slow_senders(url: str, stop: threading.Event, statuses: Counter) -> None:
    host, port = url.removeprefix("http://").split(":")
    socks = []
    for _ in range(16):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999\r\n\r\n{")
        socks.append(s)
    stop.wait()
    for s in socks:
        s.close()


def flood(path: str, body: bytes):
    def run(url: str, stop: threading.Event, statuses: Counter) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                statuses[c.post(path, content=body, headers={"content-type": "application/json"}).status_code] += 1
    return run


SCENARIOS = {
    "baseline": None,
    "16 slow senders (1 byte of body each)": slow_senders,
    "chat with 20,000 messages, repeated": flood("/v1/chat/completions", json.dumps(
        {"model": "openfirst-router", "messages": [{"role": "user", "content": "x"}] * 20_000}).encode()),
    "900 KB route input, repeated": flood("/v1/route", json.dumps({"input": "word " * 180_000}).encode()),
    "100k-item batch, repeated": flood("/v1/route", json.dumps({"inputs": ["x"] * 100_000}).encode()),
    "lone surrogate in a batch, repeated": flood("/v1/route", b'{"inputs": ["ok", "bad \\ud800"]}'),
}


def probe(url: str, seconds: float) -> dict:
    health, route, statuses = [], Counter(), Counter()
    end = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=10) as c:
        while time.monotonic() < end:
            start = time.perf_counter()
            h = c.get("/healthz")
            health.append((time.perf_counter() - start) * 1000)
            statuses[h.status_code] += 1
            r = c.post("/v1/route", json={"input": "refund my order 5"})
            route[r.status_code] += 1
            time.sleep(0.02)
    h = np.array(health)
    return {"healthz_ms_p50": float(np.percentile(h, 50)), "healthz_ms_p99": float(np.percentile(h, 99)),
            "healthz_ms_max": float(h.max()), "healthz_ok": statuses[200], "healthz_calls": len(health),
            "route_ok": route[200], "route_calls": sum(route.values())}


def main() -> None:
    from openfirst.compiler.backends.fake import ScriptedBackend
    from openfirst.service.app import serve_in_thread
    from openfirst.service.fakes import GOOD_TICKET, scripted_service

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    service = scripted_service(Path(tempfile.mkdtemp()), TASK, ScriptedBackend([GOOD_TICKET], cycle=True),
                               ScriptedBackend([GOOD_TICKET], cycle=True),
                           limits={"max_concurrency": 8, "queue_timeout_s": 1.0, "body_timeout_s": 2.0})
    rows = {}
    with serve_in_thread(service) as url:
        for name, abuse in SCENARIOS.items():
            stop, statuses = threading.Event(), Counter()
            threads = [threading.Thread(target=abuse, args=(url, stop, statuses)) for _ in range(2 if abuse else 0)]
            for t in threads:
                t.start()
            time.sleep(0.2)
            row = probe(url, SECONDS)
            stop.set()
            for t in threads:
                t.join()
            row["abuse_statuses"] = dict(sorted(statuses.items()))
            rows[name] = row
            print(name, row, flush=True)
    service.close()
    out = {"command": "bash benchmarks/run_service_abuse.sh", "seconds_per_scenario": SECONDS, "scenarios": rows,
           "status_500": sum(r["abuse_statuses"].get(500, 0) for r in rows.values())}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "service-abuse.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# Service under abuse (127.0.0.1, scripted FAKE backends, FAKE-embedder router)", "",
             f"Command: `{out['command']}`; 2 shared cores; each abuse runs in 2 threads for {SECONDS:g} s while a "
             "probe calls /healthz and /v1/route every 20 ms.", "",
             "| abuse | /healthz p50 ms | p99 ms | max ms | /healthz ok | /v1/route ok | abuse answers |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {k} | {v['healthz_ms_p50']:.1f} | {v['healthz_ms_p99']:.1f} | {v['healthz_ms_max']:.1f} | "
              f"{v['healthz_ok']}/{v['healthz_calls']} | {v['route_ok']}/{v['route_calls']} | "
              f"{', '.join(f'{s}: {n}' for s, n in v['abuse_statuses'].items()) or '-'} |" for k, v in rows.items()]
    lines += ["", f"Responses with status 500: {out['status_500']}."]
    (args.out_dir / "service-abuse.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
