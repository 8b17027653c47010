"""The service routing across many models (in process over ASGI; scripted FAKE backends, a many-model router on the
hashed-words FAKE embedder): the chosen model and every model's prediction in the response and the decision log,
keys' exclusions and frontier budgets over every frontier model, and clear errors for configurations that cannot
work."""

import json

import pytest

from openfirst.compiler.backends.base import Generation
from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.backends.pricing import Price
from openfirst.compiler.task import load_task
from openfirst.core.errors import ConfigError
from openfirst.pipeline.models import ModelEntry, ModelRegistry
from openfirst.router.fake_embedder import hashing_multi_router
from openfirst.service.auth import key_hash
from openfirst.service.config import ServiceConfig
from openfirst.service.decision_log import DecisionLog, read_decisions
from openfirst.service.models import registry_from_config
from openfirst.service.service import Service, load_router
from tests.helpers import GOOD_TICKET, TASK, call

MEDIUM, HARD = "translate the contract clause now", "prove the theorem of x"
NO_MID, TIGHT = "of_no-mid", "of_tight"


def many_model_service(tmp_path, keys=()):
    # a realistic answer: 3,000 tokens in, 400 out (mid: 0.0034 USD at 1 USD per million tokens)
    backends = {name: ScriptedBackend([Generation(GOOD_TICKET, 3000, 400, True)], cycle=True,
                                      model_name=f"{name}-model", price=Price(input_per_mtok=p, output_per_mtok=p))
                for name, p in (("local", 0.0), ("mid", 1.0), ("frontier", 10.0))}
    kinds = {"local": "local", "mid": "frontier", "frontier": "frontier"}
    models = ModelRegistry([ModelEntry(n, kinds[n], "server", b) for n, b in backends.items()])
    config = ServiceConfig(tasks={"support_ticket": TASK}, auth={"keys": list(keys)},
                           local={"kind": "server", "model": "local-model", "base_url": "http://127.0.0.1:9/v1"},
                           log={"decisions": str(tmp_path / "decisions.jsonl")})
    task = load_task(TASK)
    task.name = "support_ticket"
    return Service(config, {"support_ticket": task}, models, hashing_multi_router(),
                   DecisionLog(config.log.decisions)), backends


def extract(service, text, secret=None):
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return call(service, "POST", "/v1/tasks/support_ticket/extract", json={"input": text}, headers=headers)


def test_the_chosen_model_and_every_models_prediction_reach_the_response_and_the_decision_log(tmp_path):
    service, backends = many_model_service(tmp_path)
    body = extract(service, MEDIUM).json()
    assert body["target"] == "mid" and body["model"] == "mid-model" and body["decided_by"] == "router"
    assert set(body["predictions"]) == {"local", "mid", "frontier"} and len(backends["mid"].seen) == 1
    routed = call(service, "POST", "/v1/route", json={"input": HARD}).json()
    assert routed["target"] == "frontier" and routed["predictions"]["frontier"]["p_success"] > 0.9
    service.close()
    logged = read_decisions(tmp_path / "decisions.jsonl")
    assert [d["target"] for d in logged] == ["mid", "frontier"]
    assert logged[0]["predictions"] == body["predictions"] and logged[0]["model"] == "mid-model"
    described = service.describe()
    assert described["models"] == {"frontier": "frontier", "local": "local", "mid": "frontier"}
    assert described["router_models"] == ["local", "mid", "frontier"] and described["threshold"] is None


def test_a_keys_exclusions_and_its_budget_cover_every_frontier_model(tmp_path):
    keys = [{"name": "no-mid", "sha256": key_hash(NO_MID), "exclude_models": ["mid"]},
            {"name": "tight", "sha256": key_hash(TIGHT), "frontier_budget_usd_per_day": 0.02}]
    service, backends = many_model_service(tmp_path, keys)
    assert extract(service, MEDIUM, NO_MID).json()["target"] == "frontier"  # mid excluded: the next best
    spent = []
    for _ in range(8):  # mid's worst case is about 0.0055 USD, its real cost 0.0034 USD a call
        body = extract(service, MEDIUM, TIGHT).json()
        spent.append((body["target"], body["decided_by"], body["cost_usd"]))
    assert spent[0][:2] == ("mid", "router") and spent[-1][:2] == ("local", "budget")
    assert sum(c for t, _, c in spent if t == "mid") <= 0.02 + 1e-12
    service.close()


def test_configurations_that_cannot_work_are_clear_errors_at_start(tmp_path):
    for exclude, match in ((["local"], "cannot exclude 'local'"), (["nowhere"], "unknown models")):
        with pytest.raises(ConfigError, match=match):
            many_model_service(tmp_path, [{"name": "k", "sha256": key_hash("of_k"), "exclude_models": exclude}])
    saved = hashing_multi_router().save(tmp_path / "multi")
    cfg = {"tasks": {"support_ticket": TASK}, "local": {"kind": "server", "model": "m", "base_url": "http://x/v1"}}
    with pytest.raises(ConfigError, match="many-model router"):
        load_router(ServiceConfig(**cfg, router={"artifact": str(saved), "threshold": 0.5}))
    with pytest.raises(ConfigError, match=r"not in the model registry"):
        Service.from_config(ServiceConfig(**cfg, router={"artifact": str(saved)}))
    service = Service.from_config(ServiceConfig(
        **cfg, router={"artifact": str(saved), "model_names": {"mid": "cheap-api"}, "tradeoff": 2.0},
        frontier={"model": "big", "base_url": "http://127.0.0.1:9/v1"},
        models={"cheap-api": {"model": "small-api", "base_url": "http://127.0.0.1:9/v1", "kind": "frontier"}}))
    assert service.router.served == ["local", "cheap-api", "frontier"] and service.router.lam == 2.0
    assert set(service.pipeline.programs["support_ticket"]) == {"local", "cheap-api", "frontier"}
    service.close()


def test_extra_models_in_the_config_join_the_registry_with_their_kind():
    config = ServiceConfig(local={"kind": "server", "model": "small", "base_url": "http://127.0.0.1:9/v1"},
                           models={"gpu-box": {"model": "llama-70b", "base_url": "http://10.0.0.2/v1", "kind": "local"},
                                   "cheap": {"model": "gpt-4o-mini"}})
    models = registry_from_config(config)
    assert models.names() == ["local", "gpu-box", "cheap"] and models.names("local") == ["local", "gpu-box"]
    assert models.model_of("gpu-box") == "llama-70b" and models.get("cheap").kind == "frontier"
    for bad in ("local", "frontier", "has space"):
        with pytest.raises(ValueError, match="model name"):
            ServiceConfig(models={bad: {"model": "x"}})
    assert json.dumps(models.get("gpu-box").describe())


def test_chat_is_routed_across_the_models_and_pinned_chats_stay_on_local_ones(tmp_path):
    service, backends = many_model_service(tmp_path)
    chat = lambda *messages: call(service, "POST", "/v1/chat/completions",  # noqa: E731
                                  json={"model": "openfirst-router", "messages": list(messages)})
    r = chat({"role": "user", "content": MEDIUM})
    assert r.status_code == 200 and r.json()["openfirst"]["target"] == "mid" and len(backends["mid"].seen) == 1
    pinned = chat({"role": "system", "content": "the user is jane.doe@example.com"}, {"role": "user", "content": HARD})
    assert pinned.json()["openfirst"]["target"] == "local" and pinned.json()["openfirst"]["decided_by"] == "privacy"
    assert backends["frontier"].seen == []
    service.close()
