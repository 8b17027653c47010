"""One input's routed outcome (`RoutedOutcome`): the answer, the stage that decided, the stages it went through
with their latencies and costs, the local answer's confidence. The service's response body and the decision-log
record are both rendered from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openfirst.compiler.program import Failure, Result
from openfirst.compiler.task import output_json
from openfirst.pipeline.route import DecidedBy, Item, Route


@dataclass
class StageRecord:
    """One stage an input went through: privacy, policy, router, run (on `model`), checks, budget, escalation,
    fallback."""

    stage: str
    model: str | None = None
    latency_s: float = 0.0
    cost_usd: float | None = None
    note: str = ""

    def public(self) -> dict[str, Any]:
        return {"stage": self.stage, "model": self.model, "latency_ms": round(self.latency_s * 1000, 3),
                "cost_usd": self.cost_usd, "note": self.note}


@dataclass
class RoutedOutcome:
    """`result`: the answer (a validated Result or a typed Failure); None where nothing was generated (a routing
    decision only, or a request cut off: `cut` says why). `first`: the first run's outcome when the input moved
    (fallback, escalation); `verdict`: the checks' word on the local answer (confident, low_confidence, invalid,
    no_confidence, router_sure, pinned). A chat answer has no Result: `model`, `latency_s`, `cost_usd`, `error`."""

    item: Item
    route: Route
    result: Result | Failure | None = None
    first: Result | Failure | None = None
    fallback_from: str | None = None
    verdict: str | None = None
    history: list[StageRecord] = field(default_factory=list)
    cut: str | None = None
    model: str | None = None
    latency_s: float | None = None
    cost_usd: float | None = None
    error: BaseException | None = None
    usage: dict[str, int] | None = None
    answered: bool = False  # a chat answer (no Result): `model`, `latency_s`, `cost_usd` are its own

    def __post_init__(self) -> None:
        r = self.result
        if r is not None:
            self.model, self.latency_s, self.cost_usd, self.usage = r.model, r.latency_s, r.cost_usd, r.usage
            self.error = r.error if isinstance(r, Failure) else None

    @property
    def decided_by(self) -> DecidedBy:
        return self.route.decided_by

    @property
    def target(self) -> str:
        return self.route.target

    @property
    def escalated(self) -> bool:
        """Answered by the frontier (after the local model ran, or instead of it)."""
        return self.target == "frontier" and self.result is not None

    @property
    def ok(self) -> bool | None:
        """True: an answer; False: an error or a cut; None: nothing ran (a routing decision only)."""
        if self.cut is not None or self.error is not None:
            return False
        return True if self.result is not None or self.answered else None

    @property
    def local(self) -> Result | Failure | None:
        """The local model's answer, where it ran."""
        return self.first if self.fallback_from == "local" else self.result if self.target == "local" else None

    @property
    def confidence(self) -> Any:
        """The local answer's confidence (what the cascade read), where it has one."""
        local = self.local
        return local.confidence if isinstance(local, Result) else None

    def error_type(self) -> str | None:
        return self.cut or (type(self.error).__name__ if self.error is not None else None)

    @property
    def body(self) -> dict[str, Any]:
        """The service's JSON for this input (an `output` or an `error`)."""
        r = self.result
        out: dict[str, Any] = {"id": self.item.id, **self.route.public(), "model": self.model,
                               "backend": getattr(r, "backend", None),
                               "latency_ms": None if self.latency_s is None else round(self.latency_s * 1000, 3),
                               "cost_usd": self.cost_usd, "usage": self.usage,
                               "attempts": getattr(r, "attempts", None), "fallback_from": self.fallback_from,
                               "confidence": confidence_body(r), "stages": [s.public() for s in self.history]}
        if self.fallback_from == "local" and self.first is not None:  # the local answer's, which led to escalation
            out["local_confidence"] = confidence_body(self.first)
        if isinstance(r, Result):
            out["output"] = output_json(r.output)
        elif self.error is not None:
            out["error"] = error_body(self.error)
        elif self.cut is not None:
            out["error"] = {"type": self.cut, "message": self.cut.replace("_", " "), "hint": None, "retryable": True}
        return out

    def record(self, endpoint: str, task: str | None, time: str, expected_share: float | None,
               total_s: float) -> dict[str, Any]:
        """The decision-log record (`openfirst.service.decision_log.RECORD_KEYS`)."""
        r, route = self.result, self.route
        conf = self.confidence if self.fallback_from == "local" else (
            r.confidence if isinstance(r, Result) else None)
        return {"id": self.item.id, "time": time, "endpoint": endpoint, "task": task, "query": self.item.text,
                "target": route.target, "decided_by": route.decided_by, "p_success": route.p_success,
                "score": route.score, "threshold": route.threshold, "expected_frontier_share": expected_share,
                "pin_reasons": list(route.pin_reasons) or None, "model": self.model, "ok": self.ok,
                "error": self.error_type(), "latency_s": total_s if self.latency_s is None else self.latency_s,
                "caller": self.item.caller, "confidence": None if conf is None else conf.overall,
                "cost_usd": self.cost_usd, "output": output_json(r.output) if isinstance(r, Result) else None,
                "stages": [s.public() for s in self.history], "predictions": route.predictions}


def confidence_body(outcome: Result | Failure | None) -> dict[str, Any] | None:
    """An answer's confidence for the response: overall, per field, how aggregated, whether under the grammar's
    mask; None where the engine gave no log-probabilities (a frontier API, a failed answer)."""
    c = outcome.confidence if isinstance(outcome, Result) else None
    if c is None:
        return None
    return {"overall": c.overall, "fields": c.fields, "aggregation": c.aggregation, "masked": c.masked}


def error_body(error: BaseException) -> dict[str, Any]:
    """The JSON error of one failed input or request (OpenAI's shape: type, message; plus hint, retryable)."""
    return {"type": type(error).__name__, "message": getattr(error, "message", None) or str(error),
            "hint": getattr(error, "hint", None),
            "retryable": bool(getattr(error, "retryable", False))}
