"""The service's model registry, from its configuration: `[local]` (an engine in process, or a server),
`[local] task_models` (a tuned model per task, "local:<task>"), `[frontier]` where it has a key, and each
`[models.<name>]` (an endpoint of kind local or frontier, for a many-model router)."""

from __future__ import annotations

import logging

from openfirst.pipeline.models import ModelEntry, ModelRegistry, build_local, engine_name
from openfirst.service.config import ServiceConfig

log = logging.getLogger("openfirst.service")


def registry_from_config(config: ServiceConfig) -> ModelRegistry:
    local = config.local
    limits = {"max_concurrency": getattr(local, "max_concurrency", None),
              "context_tokens": getattr(local, "n_ctx", None) or getattr(local, "max_model_len", None)}
    entries = [ModelEntry("local", "local", engine_name(local.kind), local_backend(config), **limits)]
    for task, folder in getattr(local, "task_models", {}).items():
        entries.append(ModelEntry(f"local:{task}", "local", engine_name(local.kind), local_backend(config, folder),
                                  **limits))
    if config.frontier is not None:
        frontier = config.frontier.backend("frontier")
        if config.frontier.base_url is None and not frontier.has_api_key:
            log.warning("frontier disabled: %s needs an API key (OPENFIRST_FRONTIER__API_KEY or OPENAI_API_KEY); "
                        "every request stays local", config.frontier.model)
        else:
            entries.append(ModelEntry("frontier", "frontier", "server", frontier,
                                      max_concurrency=config.frontier.max_concurrency))
    for name, model in config.models.items():
        entries.append(ModelEntry(name, model.kind, "server", model.backend(name),
                                  max_concurrency=model.max_concurrency))
    return ModelRegistry(entries)


def local_backend(config: ServiceConfig, model: str | None = None):
    """The configured local engine (on `model` instead of `[local] model`: a per-task tuned model), behind a
    worker thread so requests await it; isolated in a child process unless `isolate = false`."""
    local = config.local
    if local.kind == "server":
        return local.backend("local")
    options = local.model_dump(exclude={"kind", "price", "isolate", "model", "task_models"}, exclude_none=True)
    return build_local(local.kind, model or local.model, options, isolate=local.isolate, price=local.price,
                       threaded=True)
