"""Per-call cost from token usage and a configurable price table (USD per million tokens)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: float = Field(0.0, ge=0.0, description="USD per million prompt tokens")
    output_per_mtok: float = Field(0.0, ge=0.0, description="USD per million completion tokens")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1e6


class PriceTable(BaseModel):
    """Model name -> price. A model missing from the table costs `None` (unknown), never a guess."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prices: dict[str, Price] = Field(default_factory=dict)

    def cost(self, model: str | None, prompt_tokens: int, completion_tokens: int) -> float | None:
        price = self.prices.get(model or "")
        return None if price is None else price.cost(prompt_tokens, completion_tokens)
