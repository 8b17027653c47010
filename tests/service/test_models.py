"""The service's model registry follows its configuration (both spellings of llama.cpp accepted)."""

from openfirst.service.config import ServiceConfig
from openfirst.service.models import registry_from_config


def test_the_config_takes_both_spellings_of_llama_cpp_and_the_service_registry_follows_the_config(tmp_path):
    for kind in ("llamacpp", "llama.cpp"):
        assert ServiceConfig(local={"kind": kind}).local.kind == kind
    config = ServiceConfig(local={"kind": "server", "model": "small", "base_url": "http://127.0.0.1:9/v1"},
                           frontier={"model": "big", "base_url": "http://127.0.0.1:9/v1"})
    models = registry_from_config(config)
    assert (models.model_of("local"), models.model_of("frontier")) == ("small", "big")
    assert models.get("frontier").kind == "frontier" and models.get("local").engine == "server"
    described = models.get("frontier").describe()
    assert described["max_concurrency"] == 8 and described["price"] is None and described["base_url"]
