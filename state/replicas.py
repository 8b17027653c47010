"""Several real `openfirst serve` processes on one machine sharing a Redis and a database, behind no balancer
(the client spreads requests round-robin), with FAKE stand-ins for the local model and the frontier that record
every call: the harness of the replica tests and `benchmarks/replicas.py`. Not for production."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from openfirst.compiler.backends.fake_server import Reply, ScriptedServer, completion
from openfirst.compiler.backends.llamacpp_server import free_port
from openfirst.core.process import stop_process

TICKET = {"category": "billing", "priority": 2, "summary": "Refund the double charge."}
# the frontier stand-in's prices (USD per million tokens, GPT-4o-like): a call of about 200 prompt tokens costs
# about 0.0015 USD
FRONTIER_PRICE = {"input_per_mtok": 5.0, "output_per_mtok": 15.0}


class StandIn(ScriptedServer):
    """A FAKE OpenAI-compatible model that answers every structured request with a valid ticket and bills it as an
    API would: prompt tokens about the prompt's bytes / 4 (never more than its bytes), completion tokens the
    answer's; every call's cost at `price` is recorded (`billed_usd`)."""

    def __init__(self, price: dict[str, float] | None = None):
        self.price, self.costs = price, []
        super().__init__(responder=self._answer)

    def _answer(self, body: Any) -> Reply:
        prompt = sum(len(json.dumps(m.get("content", ""))) for m in body.get("messages", []))
        answer = json.dumps(TICKET)
        usage = {"prompt_tokens": max(1, prompt // 4), "completion_tokens": max(1, len(answer) // 4)}
        if self.price is not None:
            self.costs.append((usage["prompt_tokens"] * self.price["input_per_mtok"]
                               + usage["completion_tokens"] * self.price["output_per_mtok"]) / 1e6)
        return Reply(body=completion(answer, model="stand-in", **usage))

    @property
    def billed_usd(self) -> float:
        return float(sum(self.costs))


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def write_config(path: Path, sections: dict[str, Any], keys: list[dict[str, Any]]) -> Path:
    lines = []
    for name, body in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in body.items()]
    for key in keys:
        lines.append("[[auth.keys]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in key.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class Replicas:
    """`n` `openfirst serve` processes on one config (each its own port and `[state] replica` name)."""

    def __init__(self, config: Path, n: int, folder: Path):
        self.config, self.n, self.folder = config, n, folder
        self.ports = [free_port() for _ in range(n)]
        self.procs: list[subprocess.Popen] = []

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def start(self, timeout_s: float = 90.0) -> "Replicas":
        for i, port in enumerate(self.ports):
            env = {**os.environ, "OPENFIRST_STATE__REPLICA": f"replica-{i}", "HF_HUB_OFFLINE": "1"}
            log = open(self.folder / f"replica-{i}.log", "ab")
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "openfirst.cli", "serve", "--config", str(self.config), "--port", str(port)],
                env=env, stdout=log, stderr=log))
        deadline = time.monotonic() + timeout_s
        for proc, url in zip(self.procs, self.urls):
            self._wait(proc, url, deadline)
        return self

    @staticmethod
    def _wait(proc: subprocess.Popen, url: str, deadline: float) -> None:
        import httpx

        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"a replica exited with {proc.returncode} (see its log)")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"a replica at {url} did not start in time")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            stop_process(proc, 20)


def replica_sections(task: str, local: ScriptedServer, frontier: ScriptedServer, state: dict[str, Any],
                     **extra: Any) -> dict[str, Any]:
    """A replica's openfirst.toml: no router (every request to the frontier unless a key or the budget keeps it
    local), the stand-ins as the local model and the frontier, the shared state."""
    sections = {
        "tasks": {"support_ticket": task},
        "local": {"kind": "server", "model": "local-stand-in", "base_url": local.base_url, "flavor": "openai"},
        "frontier": {"model": "frontier-stand-in", "base_url": frontier.base_url, "api_key": "sk-stand-in",
                     "flavor": "openai", "price": FRONTIER_PRICE, "max_concurrency": 64},
        "router": {"default_target": "frontier"},
        "program": {"max_tokens": 200, "max_retries": 0},
        "limits": {"max_concurrency": 256, "queue_timeout_s": 60.0, "deadline_s": 120.0},
        "state": state,
    }
    for name, body in extra.items():
        sections[name] = {**sections.get(name, {}), **body}
    return sections
