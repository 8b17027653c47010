"""Where one input goes and which stage decided it: the one `decided_by` vocabulary."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

# the stage that settled an input's target:
#   router: the router's score against the threshold     privacy: a privacy rule (or strict mode) pinned it local
#   default: no router (or the router's choice cannot run: no frontier, a schema the frontier cannot run)
#   fallback: the first target failed, the answer came from the other (or the frontier failed: the local answer)
#   cascade: the local answer was unsure or invalid and escalated   policy: the key may not use the frontier
#   budget: the key's frontier budget is spent
DecidedBy = Literal["router", "privacy", "default", "fallback", "cascade", "policy", "budget"]
DECIDERS: tuple[str, ...] = get_args(DecidedBy)


@dataclass(frozen=True)
class Route:
    """One input's target (a model name in the registry), the stage that chose it, and the router's numbers."""

    target: str
    decided_by: DecidedBy
    p_success: float | None = None
    score: float | None = None
    threshold: float | None = None
    reason: str = ""
    pin_reasons: tuple[str, ...] = ()
    predictions: dict[str, dict[str, float]] | None = None  # a many-model router's: model -> p_success, cost_usd

    def moved(self, target: str, decided_by: DecidedBy, why: str, *, replace_reason: bool = False) -> "Route":
        """The same decision sent to `target` by another stage; `why` is added to the reason (or replaces it)."""
        reason = why if replace_reason or not self.reason else f"{self.reason}; {why}"
        return replace(self, target=target, decided_by=decided_by, reason=reason)

    @property
    def pinned(self) -> bool:
        return self.decided_by == "privacy"

    @property
    def router_chose(self) -> str | None:
        """The router's own choice where it scored this input (a later stage may have overridden it)."""
        if self.score is None or self.threshold is None:
            return None
        return "frontier" if self.score >= self.threshold else "local"

    def public(self) -> dict[str, Any]:
        return {"target": self.target, "decided_by": self.decided_by, "p_success": self.p_success,
                "score": self.score, "threshold": self.threshold, "pinned": self.pinned,
                "pin_reasons": list(self.pin_reasons), "reason": self.reason, "predictions": self.predictions}


@dataclass
class Item:
    """One input: its text, id (the key of outcome labels), whether the caller pinned it, who sent it."""

    text: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    private: bool = False
    caller: str | None = None


@dataclass(frozen=True)
class CallerPolicy:
    """What the caller's key allows the pipeline: its name (for the log), whether it may use the frontier (any
    model of kind frontier), and the models it may never use."""

    name: str | None = None
    frontier: bool = True
    exclude: frozenset[str] = frozenset()

    def allows(self, model: str, local: bool) -> bool:
        return model not in self.exclude and (local or self.frontier)


class OperatingPoint(BaseModel):
    """A request's own routing operating point (OpenAI SDK: `extra_body={"openfirst_threshold": ...}`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    threshold: float | None = None
    frontier_share: float | None = Field(None, ge=0.0, le=1.0)

    @property
    def empty(self) -> bool:
        return self.threshold is None and self.frontier_share is None
