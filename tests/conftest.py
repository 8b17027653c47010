from __future__ import annotations

import os
from pathlib import Path

import pytest

from openfirst.compiler.tiny_model import build_tiny_model

from tests.helpers import FAST_TRAIN, SHARED_DATA

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (SHARED_DATA / "routellm").is_dir():
        pytest.fail(f"the shared data sets are missing at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One embedding cache for the whole test session (never the user's)."""
    path = tmp_path_factory.mktemp("openfirst-cache")
    os.environ["OPENFIRST_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def gsm8k_slice(tmp_path_factory, data_dir, cache_dir) -> Path:
    """The first 160 records of RouteLLM GSM8K as an outcome log file (real data)."""
    import numpy as np

    from openfirst.router.public_data import load_routellm_gsm8k

    log = load_routellm_gsm8k(data_dir).subset(np.arange(160))
    path = tmp_path_factory.mktemp("logs") / "gsm8k-slice.jsonl"
    log.write_jsonl(path)
    return path


@pytest.fixture(scope="session")
def trained_router(gsm8k_slice, tmp_path_factory) -> Path:
    """A real router (MiniLM embeddings, tuned ensemble) trained on the slice with small settings."""
    from openfirst.cli import main

    out = tmp_path_factory.mktemp("routers") / "r"
    assert main(["train", str(gsm8k_slice), "--out", str(out), "--seed", "7", "--target-frontier-share", "0.3",
                 *FAST_TRAIN]) == 0
    return out


# a tiny random-weight transformer, built locally in seconds (compiler and service tests)
@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir):
    from openfirst.compiler.backends.transformers_local import TransformersBackend

    return TransformersBackend.load(str(tiny_model_dir), device="cpu")


# real Redis and PostgreSQL servers on loopback, one each per test session (worker): shared state of replicas
def _server(kind, tmp_path_factory):
    if not kind.available():
        pytest.fail(f"{kind.__name__} cannot start here: bash .ci/setup installs redis-server and PostgreSQL")
    server = kind(tmp_path_factory.mktemp(kind.__name__.lower())).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    from openfirst.state.servers import RedisServer

    yield from _server(RedisServer, tmp_path_factory)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    from openfirst.state.servers import PostgresServer

    yield from _server(PostgresServer, tmp_path_factory)


@pytest.fixture
def redis_url(redis_server) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    redis.Redis.from_url(redis_server.url).flushall()
    return redis_server.url


@pytest.fixture
def database_url(postgres_server) -> str:
    """The session's PostgreSQL database, without openfirst's tables (each test starts from an empty schema)."""
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_server.url)
    with engine.begin() as conn:
        for table in ("openfirst_decisions", "openfirst_spend", "openfirst_schema"):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()
    return postgres_server.url


# fixtures that load a model or start a server: a test that uses one is slow, whatever its own markers say, so
# the fast suite (-m "not slow") never loads a model
MODEL_FIXTURES = {"tiny_model_dir", "tiny_backend", "trained_router", "router_dir", "llama", "tuned_dir"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)

# where each kind of model is loaded: a fast test that reaches one of these fails (the marker's word, enforced).
# Always guarded: every in-process engine the product builds (EngineSpec.load), every embedding model
# (resolve_model), the tiny model; the engines' own `load` where their module is imported already (importing
# llama.cpp or transformers only to guard them would cost every single-file run seconds)
GUARDED = ["openfirst.compiler.backends.isolated.EngineSpec.load", "openfirst.router.embeddings.resolve_model",
           "openfirst.compiler.tiny_model.build_tiny_model"]
GUARDED_IF_IMPORTED = {"openfirst.compiler.backends.llamacpp_local": "LlamaCppBackend",
                       "openfirst.compiler.backends.transformers_local": "TransformersBackend",
                       "openfirst.compiler.backends.vllm_offline": "VLLMOfflineBackend"}


@pytest.fixture(autouse=True)
def _fast_tests_load_no_model(request, monkeypatch):
    if request.node.get_closest_marker("slow") is not None:
        return
    import sys

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} is not marked slow but loads a model")

    for target in GUARDED:
        monkeypatch.setattr(target, refuse)
    for module, cls in GUARDED_IF_IMPORTED.items():
        if module in sys.modules:
            monkeypatch.setattr(getattr(sys.modules[module], cls), "load", classmethod(refuse))
