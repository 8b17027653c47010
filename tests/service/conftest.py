"""Fixtures for the service tests: a small real router, a real llama.cpp server (SmolLM2) as the local model,
a recording stand-in frontier, and a live uvicorn on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator

import pytest

from openfirst.compiler.backends.llamacpp_server import free_port
from tests.conftest import ROOT
from openfirst.compiler.backends.fake_server import Reply, ScriptedServer, completion, stream_chunks

TASK = f"{ROOT}/datasets/tasks/support_ticket.py:SupportTicket"
FRONTIER_TICKET = {"category": "shipping", "priority": 3, "summary": "The parcel has not arrived."}
SECRET = "sk-test-SECRET-5f2c9d1e"


def frontier_reply(body: Any) -> Reply:
    """The stand-in frontier: a valid ticket for structured requests, a fixed text for chat, SSE for streams."""
    if body.get("stream"):
        return Reply(body=stream_chunks("Bonjour from the frontier", model="frontier-model"))
    if "response_format" in body:
        return Reply(body=completion(json.dumps(FRONTIER_TICKET), model="frontier-model"))
    return Reply(body=completion("Hello from the frontier", model="frontier-model"))


@pytest.fixture
def frontier() -> Iterator[ScriptedServer]:
    """A recording stand-in for the frontier API: counts and keeps every request it gets."""
    with ScriptedServer(responder=frontier_reply) as server:
        yield server


@pytest.fixture(scope="session")
def router_dir(trained_router):
    return trained_router


@pytest.fixture(scope="session")
def llama():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by .ci/setup")
    from openfirst.compiler.backends.llamacpp_server import LlamaCppServer

    with LlamaCppServer(n_ctx=2048) as server:
        yield server


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


# -- fast fixtures: a FAKE embedder's router and scripted FAKE backends (no model, no server) --------------------
from openfirst.service.fakes import GOOD_TICKET, hashing_router as fake_router, scripted_service  # noqa: E402,F401


def fake_service(tmp_path, local, frontier=None, router="fake", **sections):
    """`Service` on scripted FAKE backends and `fake_router()`, serving the example support-ticket task."""
    return scripted_service(tmp_path, TASK, local, frontier, router, **sections)
