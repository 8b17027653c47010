"""Backend configuration with pydantic-settings: a TOML file, overridden by environment variables.

    [local]                          # e.g. llama.cpp's or vLLM's server
    base_url = "http://127.0.0.1:8080/v1"
    model = "smollm2"
    flavor = "llama.cpp"

    [frontier]
    model = "gpt-4o-mini"            # api_key from OPENFIRST_FRONTIER__API_KEY or OPENAI_API_KEY
    flavor = "openai"
    price = { input_per_mtok = 0.15, output_per_mtok = 0.60 }

Environment: `OPENFIRST_<SECTION>__<FIELD>`, e.g. `OPENFIRST_LOCAL__BASE_URL`,
`OPENFIRST_FRONTIER__RETRY__MAX_ATTEMPTS`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from compiler.backends.pricing import Price
from compiler.backends.retry import RetryPolicy
from router.errors import ConfigError


class EndpointSettings(BaseModel):
    """One OpenAI-compatible endpoint."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    base_url: str | None = Field(None, description="None: api.openai.com")
    api_key: SecretStr | None = None
    flavor: Literal["openai", "vllm", "llama.cpp", "json_schema"] = "openai"
    max_concurrency: int = Field(8, ge=1, le=1024)
    retry: RetryPolicy = RetryPolicy()
    price: Price | None = Field(None, description="USD per million tokens; None: cost unknown")

    def backend(self, name: str | None = None):
        from compiler.backends.openai_compat import OpenAICompatibleBackend

        key = self.api_key or (SecretStr(os.environ["OPENAI_API_KEY"]) if self.flavor == "openai"
                               and os.environ.get("OPENAI_API_KEY") else None)
        return OpenAICompatibleBackend(self.model, base_url=self.base_url, api_key=key, flavor=self.flavor,
                                       retry=self.retry, max_concurrency=self.max_concurrency, price=self.price,
                                       name=name)


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
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:8])
            raise ConfigError(f"invalid configuration{f' in {path}' if path else ''}: {problems}") from None
        except ValueError as exc:  # TOML syntax
            raise ConfigError(f"cannot read {path}: {exc}") from None


class BackendSettings(TomlSettings):
    local: EndpointSettings | None = None
    frontier: EndpointSettings | None = None
