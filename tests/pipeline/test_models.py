"""The model registry: one spelling per engine, named models, where a failed answer falls back."""

import pytest

from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.core.errors import ConfigError
from openfirst.pipeline.models import ModelRegistry, engine_name


def test_every_accepted_spelling_names_one_engine_and_an_unknown_one_is_a_clear_error():
    assert {engine_name(n) for n in ("llama.cpp", "llamacpp", "LLAMA_CPP", " llama.cpp ")} == {"llama.cpp"}
    assert engine_name("vllm") == "vllm" and engine_name("transformers") == "transformers"
    with pytest.raises(ConfigError, match="one of"):
        engine_name("llama-cpp-2")


def test_the_registry_names_models_and_resolves_tasks_and_fallbacks():
    local, tuned, frontier = ScriptedBackend([]), ScriptedBackend([]), ScriptedBackend([])
    models = ModelRegistry.of(local, frontier, ticket=tuned)
    assert sorted(models.entries) == ["frontier", "local", "local:ticket"] and models.has_frontier
    assert models.backend(models.for_task("local", "ticket")) is tuned and models.for_task("local", "other") == "local"
    assert models.other("local") == "frontier" and models.other("local:ticket") == "frontier"
    assert models.other("frontier") == "local" and models.get("local:ticket").kind == "local"
    with pytest.raises(ConfigError, match="no model named"):
        models.get("gpt-9")
    assert not ModelRegistry.of(local).has_frontier
