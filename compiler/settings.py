"""One OpenAI-compatible endpoint's settings (model, URL, key, flavor, retries, price), and the backend they build.

The file that holds them is `openfirst.toml`, whose one schema is `openfirst.service.config.ServiceConfig`
(`[local]` with `kind = "server"`, and `[frontier]`).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from openfirst.compiler.backends.pricing import Price
from openfirst.compiler.backends.retry import RetryPolicy


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
        from openfirst.compiler.backends.openai_compat import OpenAICompatibleBackend

        key = self.api_key or (SecretStr(os.environ["OPENAI_API_KEY"]) if self.flavor == "openai"
                               and os.environ.get("OPENAI_API_KEY") else None)
        return OpenAICompatibleBackend(self.model, base_url=self.base_url, api_key=key, flavor=self.flavor,
                                       retry=self.retry, max_concurrency=self.max_concurrency, price=self.price,
                                       name=name)
