"""Routing across many models (a many-model router on the hashed-words FAKE embedder, scripted FAKE backends):
each input goes to the model with the best P(success) - lambda * cost among those it may use; pinned inputs only to
local models; a key's excluded models and a key without the frontier are respected; every route carries every
model's prediction."""

import pytest
from pydantic import BaseModel

from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.backends.pricing import Price
from openfirst.compiler.program import Program, ProgramOptions
from openfirst.compiler.task import compile_task
from openfirst.core.errors import ConfigError, InvalidRequest
from openfirst.pipeline import Item, Pipeline
from openfirst.pipeline.many_models import ManyModelRouter
from openfirst.pipeline.models import ModelEntry, ModelRegistry
from openfirst.pipeline.route import CallerPolicy, OperatingPoint
from openfirst.router.fake_embedder import hashing_multi_router

EASY, MEDIUM, HARD = "refund my order please", "translate the contract clause now", "prove the theorem of x"


class City(BaseModel):
    """Extract the city."""

    city: str | None = None


def registry(mid_kind="frontier"):
    backends = {name: ScriptedBackend(['{"city":"Oslo"}'], cycle=True, model_name=f"{name}-model",
                                      price=Price(input_per_mtok=price, output_per_mtok=price))
                for name, price in (("local", 0.0), ("mid", 1.0), ("frontier", 10.0))}
    kinds = {"local": "local", "mid": mid_kind, "frontier": "frontier"}
    return ModelRegistry([ModelEntry(n, kinds[n], "server", b) for n, b in backends.items()]), backends


def pipeline(mid_kind="frontier", **router_kw):
    models, backends = registry(mid_kind)
    task = compile_task(City)
    programs = {"city": {n: Program(task, models.backend(n), ProgramOptions(max_retries=0)) for n in models.names()}}
    router = ManyModelRouter(hashing_multi_router(), models, **router_kw)
    return Pipeline(models, programs, router=router), backends


def test_each_input_runs_on_the_cheapest_model_likely_to_succeed_with_every_models_prediction():
    pipe, backends = pipeline()
    out = pipe.run_sync("city", [Item(EASY), Item(MEDIUM), Item(HARD)])
    assert [o.target for o in out] == ["local", "mid", "frontier"] and {o.decided_by for o in out} == {"router"}
    assert [[c[-1]["content"] for c in backends[n].seen] for n in ("local", "mid", "frontier")] == [
        [EASY], [MEDIUM], [HARD]]
    preds = out[1].route.predictions
    assert set(preds) == {"local", "mid", "frontier"} and preds["mid"]["p_success"] > 0.9
    assert preds["frontier"]["cost_usd"] == 0.1 and out[1].route.p_success == preds["mid"]["p_success"]
    assert "highest P(success) - lambda * cost" in out[1].route.reason
    assert out[1].body["predictions"] == preds and out[1].record("extract", "city", "t", None, 0.0)["predictions"]


def test_pinned_inputs_choose_among_the_local_models_only():
    pipe, backends = pipeline(mid_kind="local")  # "mid" is a server on the team's own network
    out = pipe.run_sync("city", [Item(MEDIUM, private=True), Item(HARD, private=True)])
    assert [o.target for o in out] == ["mid", "local"] and {o.decided_by for o in out} == {"privacy"}
    assert backends["frontier"].seen == [] and out[0].route.predictions is not None


def test_a_keys_excluded_models_and_a_key_without_the_frontier_are_never_used():
    pipe, backends = pipeline()
    out = pipe.run_sync("city", [Item(MEDIUM), Item(EASY)], caller=CallerPolicy("k", exclude=frozenset({"mid"})))
    assert [o.target for o in out] == ["frontier", "local"] and "not allowed" in out[0].route.reason
    out = pipe.run_sync("city", [Item(MEDIUM), Item(HARD)], caller=CallerPolicy("k", frontier=False))
    assert [o.target for o in out] == ["local", "local"] and {o.decided_by for o in out} == {"router"}
    assert len(backends["mid"].seen) == 0 and len(backends["frontier"].seen) == 1  # the first request's MEDIUM


def test_the_tradeoff_and_the_cost_source_move_the_choice():
    cheap, _ = pipeline(tradeoff=0.0)  # cost is no object: the most likely model
    assert [o.target for o in cheap.run_sync("city", [Item(EASY), Item(MEDIUM)])] == ["frontier", "frontier"]
    priced, _ = pipeline(cost_source="prices", output_tokens=100_000)  # at these prices the frontier costs 1 USD
    (out,) = priced.run_sync("city", [Item(HARD)])
    assert out.route.predictions["frontier"]["cost_usd"] > 1.0 and out.target == "local"


def test_a_request_cannot_set_a_threshold_on_a_many_model_router():
    pipe, _ = pipeline()
    with pytest.raises(InvalidRequest, match="many models"):
        pipe.run_sync("city", [Item(EASY)], point=OperatingPoint(threshold=0.5))


def test_the_router_and_the_registry_must_agree_on_models():
    models, _ = registry()
    router = hashing_multi_router(("small", "mid", "frontier"))
    with pytest.raises(ConfigError, match=r"\['small'\] are not in the model registry"):
        ManyModelRouter(router, models)
    assert ManyModelRouter(router, models, names={"small": "local"}).served == ["local", "mid", "frontier"]
    assert ManyModelRouter(router, models, exclude=["small"]).served == ["mid", "frontier"]
    with pytest.raises(ConfigError, match="does not know"):
        ManyModelRouter(router, models, names={"tiny": "local"})
    unpriced = ModelRegistry([ModelEntry("local", "local", "server", ScriptedBackend([])),
                              ModelEntry("mid", "frontier", "server", ScriptedBackend([])),
                              ModelEntry("frontier", "frontier", "server", ScriptedBackend([]))])
    with pytest.raises(ConfigError, match="no price"):
        ManyModelRouter(hashing_multi_router(), unpriced, cost_source="prices")
