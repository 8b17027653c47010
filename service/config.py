"""The service's configuration: one TOML file (`openfirst serve --config openfirst.toml`), validated, with
`OPENFIRST_<SECTION>__<FIELD>` environment variables on top (e.g. `OPENFIRST_FRONTIER__API_KEY`).

Relative paths in the file (task files, the router artifact, the decision log) are relative to the
file's own directory. See `openfirst.toml` at the repository root for a sample on the embedded defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from openfirst.compiler.backends.pricing import Price
from openfirst.compiler.program import ProgramOptions
from openfirst.compiler.settings import EndpointSettings
from openfirst.core.errors import ConfigError, describe_validation_error
from openfirst.service.auth import AuthSettings
from openfirst.service.privacy import PHONE_REGIONS
from openfirst.state.settings import StateSettings

TASK_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerLocal(EndpointSettings):
    """A local OpenAI-compatible server: vLLM's `vllm serve`, llama.cpp's server, SGLang, ..."""

    kind: Literal["server"] = "server"
    flavor: Literal["openai", "vllm", "llama.cpp", "json_schema"] = "vllm"


class _InProcessLocal(_Strict):
    """What every in-process engine shares: per-task tuned models, process isolation, a price."""

    task_models: dict[str, str] = Field(default_factory=dict, description="per-task tuned models: task name -> a "
                                        "tuned model's folder (openfirst finetune --out), each its own engine (the "
                                        "merged model per task); tasks not named here run on `model`")
    isolate: bool = Field(True, description="run the engine in a supervised child process: a native crash costs "
                          "the requests in flight a 503 (EngineCrashed) and the engine restarts, the service stays up")
    price: Price | None = Field(None, description="USD per million tokens of the hardware it runs on")


class TransformersLocal(_InProcessLocal):
    """An in-process transformers model (CPU or GPU); `smollm2` is the embedded SmolLM2-135M-Instruct."""

    kind: Literal["transformers"]
    model: str = Field("smollm2", min_length=1, description="smollm2, a transformers model folder, or a tuned "
                       "model's folder (openfirst finetune --out; its merged weights)")
    device: str | None = None


class VLLMLocal(_InProcessLocal):
    """vLLM in process (`vllm.LLM`; its CPU build here, the GPU build in production); `smollm2` is the embedded
    SmolLM2-135M-Instruct. Unset engine settings take this machine's defaults (`VLLMOptions.for_this_machine`)."""

    kind: Literal["vllm"]
    model: str = Field("smollm2", min_length=1, description="smollm2, a Hugging Face id, a local model "
                       "folder, or a tuned model's folder (openfirst finetune --out; its merged weights)")
    structured_backend: Literal["guidance", "xgrammar"] = "guidance"
    tensor_parallel_size: int = Field(1, ge=1, le=64)
    gpu_memory_utilization: float | None = Field(None, gt=0.0, le=1.0)
    max_model_len: int | None = Field(None, ge=16)


class LlamaCppLocal(_InProcessLocal):
    """llama.cpp in process (llama-cpp-python) on a GGUF file; `smollm2` is the embedded SmolLM2-135M-Instruct
    (Q4_1). The fastest engine here for one request at a time; vLLM is faster once requests batch."""

    kind: Literal["llamacpp", "llama.cpp"] = Field(description="llama.cpp (or llamacpp: one engine, two spellings)")
    model: str = Field("smollm2", min_length=1, description="smollm2, the path of a .gguf file, or a "
                       "tuned model's folder (openfirst finetune --out; its GGUF)")
    n_ctx: int = Field(4096, ge=256, le=1_048_576)
    n_threads: int | None = Field(None, ge=1, le=1024)


class ModelSettings(EndpointSettings):
    """One more named model (`[models.<name>]`), an OpenAI-compatible endpoint: `kind = "local"` for a server on
    your network (private data may go there), "frontier" for an API (billed against the keys' budgets)."""

    kind: Literal["local", "frontier"] = "frontier"


LocalSettings = Annotated[Union[ServerLocal, TransformersLocal, VLLMLocal, LlamaCppLocal],
                          Field(discriminator="kind")]


class RouterSettings(_Strict):
    """The operating point is the artifact's own, unless `threshold` is given, or `frontier_share` with
    `calibration` (queries like the expected traffic: the threshold is set so that this share of them would go
    to the frontier)."""

    artifact: Path | None = Field(None, description="router artifact directory (`openfirst train --out`)")
    threshold: float | None = Field(None, description="override of the artifact's operating point")
    frontier_share: float | None = Field(None, ge=0.0, le=1.0, description="operating point as a frontier share")
    calibration: str | None = Field(None, description="queries for `frontier_share`: an outcome log (JSONL/CSV, "
                                    "only `query` is read) or a public data set name")
    target_frontier_share: float | None = Field(
        None, ge=0.0, le=1.0, description="drift reference; default: the operating point's expected frontier share")
    drift_tolerance: float = Field(0.1, ge=0.0, le=1.0, description="warn when |share - target| exceeds this")
    default_target: Literal["local", "frontier"] = Field("local", description="where requests go without a router")
    batch_size: int = Field(64, ge=1, le=4096, description="most queries embedded together")
    # a many-model router (`openfirst train` on a log with many models)
    tradeoff: float | None = Field(None, ge=0.0, description="a many-model router's lambda (P(success) - lambda * "
                                   "expected cost in USD); None: the artifact's own operating point")
    model_names: dict[str, str] = Field(default_factory=dict, description="a many-model router's model name -> "
                                        "the registry's name for it, where they differ")
    exclude_models: list[str] = Field(default_factory=list, description="registry models the router never picks "
                                      "(the router's own names of models this service does not serve, too)")
    cost_source: Literal["router", "prices"] = Field(
        "router", description="a many-model router's expected cost per model: the mean its training log gave "
        "(router), or the model's price on this query's prompt and `expected_output_tokens` (prices)")
    expected_output_tokens: int = Field(256, ge=1, le=1_000_000, description="output tokens a query is priced "
                                        "with where cost_source = prices")

    @model_validator(mode="after")
    def _one_operating_point(self) -> "RouterSettings":
        if self.threshold is not None and self.frontier_share is not None:
            raise ValueError("give either threshold or frontier_share, not both")
        if (self.frontier_share is None) != (self.calibration is None):
            raise ValueError("frontier_share and calibration go together")
        return self


class RoutingSettings(_Strict):
    fallback_local_to_frontier: bool = Field(
        False, description="a failed local answer is retried on the frontier (never for pinned requests)")
    fallback_frontier_to_local: bool = Field(True, description="a failed frontier answer is retried locally")
    cascade_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="cascade: a local answer whose confidence is below this, or that failed "
        "validation, is escalated to the frontier (never for pinned requests); None: off. Calibrate it with "
        "openfirst.cascade.policy.threshold_for_share / threshold_for_quality on a labeled sample")
    cascade_scope: Literal["output", "field"] = Field(
        "output", description="the confidence compared: the whole output's, or the least confident field's")


class PrivacySettings(_Strict):
    detectors: list[Literal["email", "phone", "iban", "card", "ssn", "national_id"]] = [
        "email", "phone", "iban", "card", "ssn", "national_id"]
    phone_regions: list[str] = Field(default_factory=lambda: list(PHONE_REGIONS), min_length=1,
                                     description="ISO 3166 regions whose national phone formats are recognised")
    patterns: list[str] = Field(default_factory=list, description="extra regexes; a match pins the request")
    keywords: list[str] = Field(default_factory=list, description="words that pin a request in any of their forms: "
                                "plural, possessive, derived nouns, digit-for-letter spellings (salary: salaries, "
                                "salary's, s4lary)")
    pin_tasks: list[str] = Field(default_factory=list, description="tasks whose requests always stay local")
    strict: bool = Field(False, description="only allow-listed traffic may reach the frontier: tasks in "
                         "frontier_tasks, chat if frontier_chat, and none that a detector or pattern flags")
    frontier_tasks: list[str] = Field(default_factory=list, description="strict mode: tasks that may leave")
    frontier_chat: bool = Field(False, description="strict mode: may chat requests leave")

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, regions: list[str]) -> list[str]:
        import phonenumbers

        unknown = [r for r in regions if r.upper() not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone regions {unknown}: use ISO 3166 codes like US, GB, DE")
        return [r.upper() for r in regions]

    @field_validator("keywords")
    @classmethod
    def _words(cls, keywords: list[str]) -> list[str]:
        from openfirst.service.privacy import keyword_pattern

        for k in keywords:
            keyword_pattern(k)  # ValueError names the keyword
        return keywords

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"pattern {p!r} is not a valid regex: {exc}") from None
        return patterns


class LimitSettings(_Strict):
    max_body_bytes: int = Field(1_000_000, ge=1024, le=1 << 30)
    max_batch: int = Field(64, ge=1, le=10_000, description="inputs per /extract or /route request")
    deadline_s: float = Field(120.0, gt=0, le=3600, description="per request, everything included")
    max_concurrency: int = Field(64, ge=1, le=10_000, description="requests handled at once")
    queue_timeout_s: float = Field(5.0, ge=0, le=600, description="wait for a slot before 503")
    body_timeout_s: float = Field(10.0, gt=0, le=600, description="a request body must arrive within this")
    max_messages: int = Field(256, ge=1, le=100_000, description="messages per chat request")
    max_parts: int = Field(64, ge=1, le=10_000, description="content parts per chat message")
    max_text_chars: int = Field(200_000, ge=1, le=100_000_000,
                                description="characters of text per request (all inputs or messages together)")
    max_output_tokens: int = Field(4096, ge=1, le=1_000_000, description="largest max_tokens a request may ask")


class LogSettings(_Strict):
    decisions: Path | None = Field(Path("runs/decisions.jsonl"), description="JSONL decision log; null: off")
    store_text: bool = Field(True, description="false: no query text is written (pinned requests' never is)")
    hash_key: SecretStr | None = Field(None, description="HMAC key identifying queries whose text is not written")
    max_query_chars: int = Field(10_000, ge=0, le=10_000_000, description="a stored query is cut here")
    max_bytes: int = Field(100_000_000, ge=10_000, description="rotate the log past this size")
    backups: int = Field(5, ge=1, le=1000, description="rotated files kept")


class ServeSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    shutdown_grace_s: float = Field(10.0, ge=0, le=3600, description="on SIGTERM, requests in flight may finish "
                                    "within this; past it they are cut off, and their decisions still logged")


class TomlSettings(BaseSettings):
    """Settings read from a TOML file with `OPENFIRST_<SECTION>__<FIELD>` environment variables on top."""

    model_config = SettingsConfigDict(env_prefix="OPENFIRST_", env_nested_delimiter="__", extra="forbid")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource):
        # arguments, then the environment, then the TOML file named by `toml_file` (see `load`)
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any):
        """Settings from `path` (TOML) with environment variables on top; clear errors on bad input."""
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"config file {path} does not exist")
        from_file = type(cls.__name__, (cls,), {"model_config": {**cls.model_config, "toml_file": path}})
        try:
            return from_file(**overrides)
        except ValidationError as exc:
            where = f" in {path}" if path else ""
            raise ConfigError(f"invalid configuration{where}: {describe_validation_error(exc)}") from None
        except ValueError as exc:  # TOML syntax
            raise ConfigError(f"cannot read {path}: {exc}") from None


class ServiceConfig(TomlSettings):
    """The one schema of `openfirst.toml`."""

    auth: AuthSettings = AuthSettings()
    tasks: dict[str, str] = Field(default_factory=dict, description="name -> module:Class or file.py:Class")
    local: LocalSettings = TransformersLocal(kind="transformers")
    frontier: EndpointSettings | None = None
    models: dict[str, ModelSettings] = Field(default_factory=dict, description="more named models a many-model "
                                             "router can pick: name -> endpoint")
    router: RouterSettings = RouterSettings()
    routing: RoutingSettings = RoutingSettings()
    privacy: PrivacySettings = PrivacySettings()
    limits: LimitSettings = LimitSettings()
    program: ProgramOptions = ProgramOptions()
    log: LogSettings = LogSettings()
    serve: ServeSettings = ServeSettings()
    state: StateSettings = StateSettings()

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, tasks: dict[str, str]) -> dict[str, str]:
        for name, spec in tasks.items():
            if not TASK_NAME.match(name):
                raise ValueError(f"task name {name!r}: use letters, digits, '_' or '-' (at most 64)")
            if ":" not in spec:
                raise ValueError(f"task {name!r}: {spec!r} must look like module:Class or path/to/file.py:Class")
        return tasks

    @field_validator("models")
    @classmethod
    def _model_names(cls, models: dict[str, Any]) -> dict[str, Any]:
        for name in models:
            if not TASK_NAME.match(name) or name in ("local", "frontier"):
                raise ValueError(f"model name {name!r}: use letters, digits, '_' or '-' (at most 64); 'local' and "
                                 "'frontier' are [local] and [frontier]")
        return models

    @classmethod
    def from_file(cls, path: str | Path) -> "ServiceConfig":
        """Load, validate, and resolve relative paths against the file's directory."""
        config = cls.load(path)
        base = Path(path).resolve().parent
        config.tasks = {n: _resolve_spec(s, base) for n, s in config.tasks.items()}
        if config.router.artifact is not None and not config.router.artifact.is_absolute():
            config.router.artifact = base / config.router.artifact
        cal = config.router.calibration
        if cal is not None and not Path(cal).is_absolute() and (base / cal).exists():
            config.router.calibration = str(base / cal)
        if config.log.decisions is not None and not config.log.decisions.is_absolute():
            config.log.decisions = base / config.log.decisions
        unknown = sorted({t for k in config.auth.keys for t in k.tasks or ()} - set(config.tasks))
        if unknown:
            raise ConfigError(f"invalid configuration in {path}: auth.keys name unknown tasks {unknown}")
        models = getattr(config.local, "task_models", {})
        for name, folder in models.items():
            if not Path(folder).is_absolute():
                models[name] = str(base / folder)
        if unknown := sorted(set(models) - set(config.tasks)):
            raise ConfigError(f"invalid configuration in {path}: local.task_models names unknown tasks {unknown}")
        unknown = sorted(set(config.privacy.pin_tasks + config.privacy.frontier_tasks) - set(config.tasks))
        if unknown:
            raise ConfigError(f"invalid configuration in {path}: privacy.pin_tasks or privacy.frontier_tasks name "
                              f"unknown tasks {unknown}")
        return config


def _resolve_spec(spec: str, base: Path) -> str:
    where, _, name = spec.rpartition(":")
    if where.endswith(".py") and not Path(where).is_absolute():
        return f"{base / where}:{name}"
    return spec
