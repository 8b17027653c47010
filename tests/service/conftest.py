"""Fixtures for the service tests: a small real router, a real llama.cpp server (SmolLM2) as the local model,
a recording stand-in frontier. Helpers (configs, live services, FAKE services) are in tests/helpers.py."""

from __future__ import annotations

from typing import Iterator

import pytest

from openfirst.compiler.backends.fake_server import ScriptedServer
from tests.helpers import frontier_reply

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
