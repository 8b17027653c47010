"""The models a route can target: a small registry of named models (kind, engine, price, limits), and the one
place backends are built. The config (`[local]`, `[frontier]`), the CLI's `--backend`/`--model`, the one-call
API and the service all resolve through here, with one spelling of each engine.

Two models stay the default: "local" (the local engine) and "frontier" (an API), plus "local:<task>" for a task
served by its own tuned model; a many-model router picks among more (`[models.<name>]`, each of kind local or
frontier). A route's target is one of these names.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterable, Literal

from openfirst.core.errors import ConfigError

# engine spellings accepted anywhere (config, CLI) -> the one name used everywhere else
ENGINE_NAMES = {"llama.cpp": "llama.cpp", "llamacpp": "llama.cpp", "llama_cpp": "llama.cpp",
                "transformers": "transformers", "vllm": "vllm", "server": "server", "openai": "openai"}
IN_PROCESS = ("llama.cpp", "transformers", "vllm")
LOCAL, FRONTIER = "local", "frontier"
_SHARED: dict[tuple[str, str], Any] = {}
_SHARED_LOCK = threading.Lock()


def engine_name(name: str) -> str:
    """The one name of an engine, from any accepted spelling (ConfigError for an unknown one)."""
    try:
        return ENGINE_NAMES[name.strip().lower()]
    except KeyError:
        raise ConfigError(f"unknown engine {name!r}",
                          hint=f"one of {', '.join(sorted(set(ENGINE_NAMES.values())))}") from None


def build_local(engine: str, model: str = "smollm2", options: dict[str, Any] | None = None, *,
                isolate: bool = False, price: Any = None, threaded: bool = False) -> Any:
    """An in-process engine (llama.cpp, transformers, vLLM) on `model` ("smollm2": the embedded one; a tuned
    model's folder: its GGUF or merged weights): in a supervised child process when `isolate`, behind a worker
    thread (async, priced) when `threaded` or priced."""
    from openfirst.compiler.backends.isolated import EngineSpec, IsolatedBackend

    spec = EngineSpec(engine_name(engine), str(model), dict(options or {}))
    backend = IsolatedBackend(spec) if isolate else spec.load()
    if threaded or price is not None:
        from openfirst.compiler.backends.threaded import ThreadedBackend

        backend = ThreadedBackend(backend, price)
    return backend


def shared_local(engine: str = "llama.cpp", model: str = "smollm2") -> Any:
    """One in-process engine per (engine, model) per process, loaded on first use (the one-call API's default)."""
    key = (engine_name(engine), str(model))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = build_local(*key)
        return _SHARED[key]


@dataclass
class ModelEntry:
    """One model a route can target: `kind` local (runs where the data may stay) or frontier (an API)."""

    name: str
    kind: Literal["local", "frontier"]
    engine: str
    backend: Any
    max_concurrency: int | None = None  # requests the model takes at once (a server's limit); None: unknown
    context_tokens: int | None = None  # prompt + output tokens it holds (llama.cpp n_ctx, vLLM max_model_len)

    @property
    def model(self) -> str:
        return self.backend.model_name

    @property
    def price(self) -> Any:
        return getattr(self.backend, "price", None)

    def describe(self) -> dict[str, Any]:
        from openfirst.core.redact import redact_url

        return {"name": self.backend.name, "model": self.model, "kind": self.kind, "engine": self.engine,
                "base_url": redact_url(getattr(self.backend, "base_url", None)), "price": _price(self.price),
                "max_concurrency": self.max_concurrency, "context_tokens": self.context_tokens}


class ModelRegistry:
    """Named models. `local` is required; `frontier` optional; `local:<task>` serves one task."""

    def __init__(self, entries: Iterable[ModelEntry]):
        self.entries = {e.name: e for e in entries}
        if LOCAL not in self.entries:
            raise ConfigError("the model registry needs a local model")

    @classmethod
    def of(cls, local: Any, frontier: Any = None, **task_models: Any) -> "ModelRegistry":
        """A registry over built backends (tests, the one-call API): "local", "frontier", "local:<task>"."""
        entries = [ModelEntry(LOCAL, "local", _engine_of(local), local)]
        entries += [ModelEntry(f"{LOCAL}:{task}", "local", _engine_of(b), b) for task, b in task_models.items()]
        if frontier is not None:
            entries.append(ModelEntry(FRONTIER, "frontier", _engine_of(frontier), frontier))
        return cls(entries)

    def get(self, name: str) -> ModelEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise ConfigError(f"no model named {name!r}", hint=f"models: {', '.join(self.entries)}") from None

    def backend(self, name: str) -> Any:
        return self.get(name).backend

    def model_of(self, name: str) -> str | None:
        return self.entries[name].model if name in self.entries else None

    @property
    def has_frontier(self) -> bool:
        return FRONTIER in self.entries

    def for_task(self, name: str, task: str) -> str:
        """The model that serves `task` under the name `name` ("local" -> "local:<task>" where one is set)."""
        return f"{name}:{task}" if f"{name}:{task}" in self.entries else name

    def is_local(self, name: str) -> bool:
        return self.get(name).kind == "local"

    def names(self, kind: str | None = None) -> list[str]:
        """The models a route can pick (a task's own tuned model is reached through "local"), of `kind`."""
        return [n for n, e in self.entries.items() if ":" not in n and (kind is None or e.kind == kind)]

    def other(self, name: str) -> str:
        """Where a failed answer falls back: the default model of the other kind."""
        return FRONTIER if self.is_local(name) else LOCAL

    def close(self) -> None:
        for entry in self.entries.values():
            entry.backend.close()


def _price(price: Any) -> dict[str, float] | None:
    return None if price is None else {"input_per_mtok": price.input_per_mtok, "output_per_mtok": price.output_per_mtok}


def _engine_of(backend: Any) -> str:
    if backend.remote:
        return "server"
    return ENGINE_NAMES.get(str(getattr(backend, "name", "")).lower(), str(getattr(backend, "name", "unknown")))
