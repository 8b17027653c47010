"""A many-model router serving a model registry: the router's per-model P(success) and expected cost, mapped onto
the registry's names, and the choice among the models an input may use (the key's exclusions, the models that can
run the task, the local models alone for pinned data): the highest P(success) - lambda * cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from openfirst.core.errors import ConfigError
from openfirst.pipeline.models import ModelRegistry

PROMPT_OVERHEAD_TOKENS = 16  # chat template and role tokens around a query


@dataclass(frozen=True)
class Predictions:
    """One input's numbers: per registry model, P(success) and the expected cost in USD."""

    p_success: dict[str, float]
    cost_usd: dict[str, float]

    def public(self) -> dict[str, dict[str, float]]:
        return {m: {"p_success": p, "cost_usd": self.cost_usd[m]} for m, p in self.p_success.items()}


class ManyModelRouter:
    """`router` (`openfirst.router.multi_router.MultiModelRouter`) over `models`. `names`: the router's model name
    -> the registry's, where they differ; `exclude`: models never picked (registry or router names); `tradeoff`:
    lambda (None: the router's own); `cost_source` "router" (its training log's mean per model) or "prices" (the
    model's price on the query's length, about 4 characters a token, and `output_tokens` out)."""

    def __init__(self, router: Any, models: ModelRegistry, *, names: dict[str, str] | None = None,
                 exclude: Iterable[str] = (), tradeoff: float | None = None, cost_source: str = "router",
                 output_tokens: int = 256):
        names, exclude = dict(names or {}), set(exclude)
        if bad := sorted(set(names) - set(router.models)):
            raise ConfigError(f"[router] model_names maps models the router does not know: {bad}",
                              hint=f"the router's models: {', '.join(router.models)}")
        self.router, self.models = router, models
        self.columns: dict[str, int] = {}  # registry name -> the router's column
        missing = []
        for j, m in enumerate(router.models):
            name = names.get(m, m)
            if m in exclude or name in exclude:
                continue
            if name not in models.names():
                missing.append(m)
            self.columns[name] = j
        if missing:
            raise ConfigError(f"the many-model router's models {missing} are not in the model registry "
                              f"({', '.join(models.names())})",
                              hint="add each as [models.<name>], map names with [router] model_names, or leave "
                                   "them out with [router] exclude_models (a [frontier] without an API key is "
                                   "left out of the registry)")
        if not self.columns:
            raise ConfigError("every model of the many-model router is excluded")
        self.lam = float(router.lam if tradeoff is None else tradeoff)
        self.cost_source, self.output_tokens = cost_source, output_tokens
        if cost_source == "prices" and (unpriced := [m for m in self.columns if models.get(m).price is None]):
            raise ConfigError(f"[router] cost_source = \"prices\" but models {unpriced} have no price",
                              hint="set price = { input_per_mtok = ..., output_per_mtok = ... } on each")

    @property
    def served(self) -> list[str]:
        return list(self.columns)

    def route_many(self, texts: Sequence[str]) -> list[Predictions]:
        """Every served model's P(success) and expected cost, per text (one embedding call)."""
        texts = list(texts)
        p = self.router.p_success(self.router.get_embedder().encode(texts), texts)
        out = []
        for i, text in enumerate(texts):
            cost = {m: self._cost(m, j, text) for m, j in self.columns.items()}
            out.append(Predictions({m: float(p[i, j]) for m, j in self.columns.items()}, cost))
        return out

    def _cost(self, model: str, column: int, text: str) -> float:
        if self.cost_source == "prices":
            tokens = len(text) // 4 + PROMPT_OVERHEAD_TOKENS
            return float(self.models.get(model).price.cost(tokens, self.output_tokens))
        return float(self.router.expected_cost[column])

    def choose(self, pred: Predictions, allowed: Sequence[str]) -> tuple[str, str] | None:
        """The allowed model with the highest P(success) - lambda * cost, and why; None when none is allowed."""
        options = [m for m in allowed if m in self.columns]
        if not options:
            return None
        utility = {m: pred.p_success[m] - self.lam * pred.cost_usd[m] for m in options}
        best = max(options, key=lambda m: (utility[m], -pred.cost_usd[m]))
        left_out = len(self.columns) - len(options)
        return best, (f"{best}: highest P(success) - lambda * cost ({pred.p_success[best]:.3f} - {self.lam:.4g} x "
                      f"{pred.cost_usd[best]:.6f}) of {len(options)} models"
                      + (f" ({left_out} not allowed for this input)" if left_out else ""))


def is_many_model(router: Any) -> bool:
    return isinstance(router, ManyModelRouter)
