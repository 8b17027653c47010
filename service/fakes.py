"""FAKES for tests and benchmarks of the service's own handling (routing, privacy, limits, keys, logs): a Router
on the hashed-words FAKE embedder and a `Service` on scripted FAKE backends. No model runs; never a quality number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openfirst.router.fake_embedder import hashing_router

GOOD_TICKET = '{"category":"billing","priority":2,"summary":"Refund the double charge."}'


def scripted_service(log_dir: Path, task_spec: str, local: Any, frontier: Any = None, router: Any = "fake",
                     **sections: Any):
    """`Service` serving one task (`task_spec`, as in [tasks]) named "support_ticket", on the given backends
    (e.g. `ScriptedBackend`s) and `hashing_router()` (or `router`); `sections` are openfirst.toml sections."""
    from openfirst.compiler.task import load_task
    from openfirst.service.config import ServiceConfig
    from openfirst.service.decision_log import DecisionLog
    from openfirst.service.service import Service

    cfg = {"tasks": {"support_ticket": task_spec}, "log": {"decisions": str(Path(log_dir) / "decisions.jsonl")},
           "local": {"kind": "server", "model": "local-model", "base_url": "http://127.0.0.1:9/v1"}, **sections}
    config = ServiceConfig(**cfg)
    task = load_task(task_spec)
    task.name = "support_ticket"
    from openfirst.pipeline import ModelRegistry

    return Service(config, {"support_ticket": task}, ModelRegistry.of(local, frontier),
                   hashing_router() if router == "fake" else router, DecisionLog(config.log.decisions))
