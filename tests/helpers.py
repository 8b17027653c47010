"""What tests share besides fixtures: paths, small real data settings, the service's test configuration, FAKE
stand-ins (a scripted frontier server, scripted backends, a hashed-words router) and an in-process HTTP client.
Fixtures live in the conftest files; everything a test module imports from another place lives here."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from openfirst.compiler.backends.fake_server import Reply, ScriptedServer, completion, stream_chunks
from openfirst.compiler.backends.llamacpp_server import free_port
from openfirst.service.fakes import GOOD_TICKET, hashing_router as fake_router, scripted_service

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "datasets"
FAST_TRAIN = ["--trials", "3", "--outer-folds", "2", "--inner-folds", "2", "--no-progress"]

# -- the service's tests ------------------------------------------------------------------------------------------
TASK = f"{ROOT}/datasets/tasks/support_ticket.py:SupportTicket"
OTHER_TASK = f"{ROOT}/datasets/tasks/invoice.py:Invoice"
CATS = ["billing", "shipping", "account", "technical", "other"]
FRONTIER_TICKET = {"category": "shipping", "priority": 3, "summary": "The parcel has not arrived."}
SECRET = "sk-test-SECRET-5f2c9d1e"
__all__ = ["GOOD_TICKET", "fake_router"]


def frontier_reply(body: Any) -> Reply:
    """The stand-in frontier: a valid ticket for structured requests, a fixed text for chat, SSE for streams."""
    if body.get("stream"):
        return Reply(body=stream_chunks("Bonjour from the frontier", model="frontier-model"))
    if "response_format" in body:
        return Reply(body=completion(json.dumps(FRONTIER_TICKET), model="frontier-model"))
    return Reply(body=completion("Hello from the frontier", model="frontier-model"))


def make_config(tmp_path, *, local: dict[str, Any], frontier: ScriptedServer | None = None,
                router: dict[str, Any] | None = None, **sections: Any):
    from openfirst.service.config import ServiceConfig

    cfg: dict[str, Any] = {"tasks": {"support_ticket": TASK}, "local": local,
                           "log": {"decisions": str(tmp_path / "decisions.jsonl")},
                           "program": {"max_tokens": 200, "max_retries": 1}}
    if frontier is not None:
        cfg["frontier"] = {"model": "frontier-model", "base_url": frontier.base_url, "api_key": SECRET,
                           "flavor": "openai", "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
                           "retry": {"max_attempts": 2, "base_delay_s": 0.01, "deadline_s": 10}}
    if router is not None:
        cfg["router"] = router
    cfg.update(sections)
    return ServiceConfig(**cfg)


def llama_local(llama) -> dict[str, Any]:
    return {"kind": "server", "model": llama.alias, "base_url": llama.base_url, "flavor": "llama.cpp",
            "price": {"input_per_mtok": 0.01, "output_per_mtok": 0.01}, "max_concurrency": 4,
            "retry": {"max_attempts": 1, "deadline_s": 120, "attempt_timeout_s": 120}}


def down_local() -> dict[str, Any]:
    """A local server that is down: nothing listens on the port."""
    return {"kind": "server", "model": "local-model", "base_url": f"http://127.0.0.1:{free_port()}/v1",
            "flavor": "vllm", "retry": {"max_attempts": 2, "base_delay_s": 0.01, "deadline_s": 5}}


@contextlib.contextmanager
def live_service(config) -> Iterator[tuple[str, Any]]:
    """`Service.from_config(config)` behind a real uvicorn on 127.0.0.1; yields (base URL, service)."""
    from openfirst.service.app import serve_in_thread
    from openfirst.service.service import Service

    service = Service.from_config(config)
    try:
        with serve_in_thread(service) as url:
            yield url, service
    finally:
        service.close()


def ticket_examples(path: Path, n: int = 24) -> Path:
    """A labelled JSONL of `n` synthetic support tickets (fine-tuning tests)."""
    rows = [{"id": str(i), "input": f"Ticket {i}: my {CATS[i % 5]} problem needs help",
             "output": {"category": CATS[i % 5], "priority": 1 + i % 5, "summary": f"A {CATS[i % 5]} problem."}}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def fake_service(tmp_path, local, frontier=None, router="fake", **sections):
    """`Service` on scripted FAKE backends and `fake_router()`, serving the example support-ticket task."""
    return scripted_service(tmp_path, TASK, local, frontier, router, **sections)


def call(service, method, path, **kw):
    """One HTTP request to the service's app, in process (httpx over ASGI)."""
    import httpx

    from openfirst.service.app import create_app

    async def go():
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.request(method, path, **kw)

    return asyncio.run(go())


# -- privacy: the classes a held-out probe of a real `openfirst serve` still got through (issue 22)
PROBE_LEAKS = {
    "phone, en dashes": "call me on 555\u2013867\u20135309 tonight",
    "phone, em dashes": "my number is +44 20\u20147946\u20140958",
    "phone, non-breaking hyphens": "ring 020\u20117946\u20110958",
    "phone, minus signs": "fax 030\u22124567\u22128901",
    "email, spaces around @": "write to jane.doe @ example.com please",
    "email, space after @": "jane.doe@ example.com",
    "email, IP-literal domain": "mail ops@[192.168.10.4] now",
    "email, IPv6 literal": "reach root@[IPv6:2001:db8::1]",
    "email, bracketless IP": "mail ops@10.0.0.7 now",
    "email, quoted local part": 'send it to "john doe"@example.org',
    "base64 email": "payload ZW1haWwgamFuZS5kb2VAZXhhbXBsZS5jb20gdG9kYXk=",
    "base64 phone, URL-safe": "data=KzEgNDE1IDU1NSAyNjcx",
}
KEYWORD_FORMS = {"their salaries went up": "salary", "the salary's breakdown": "salary",
                 "my s4l4ry is low": "salary", "5alary review": "salary", "a question of confidentiality":
                 "confidential", "two diagnoses were made": "diagnosis", "the patients' files": "patient"}


# -- the router's unit tests: synthetic embeddings, texts and outcomes (no model runs) ----------------------------
RNG = np.random.default_rng(0)
E = RNG.normal(size=(120, 8)).astype(np.float32)
TEXTS = [("word " * int(k)).strip() for k in RNG.integers(1, 30, 120)]
YL = (E[:, 0] + 0.3 * RNG.normal(size=120) > 0).astype(float)
YF = np.maximum(YL, (RNG.random(120) > 0.4)).astype(float)
