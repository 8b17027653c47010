"""The routed extraction service's core, free of HTTP: privacy pinning, routing, running, fallback, logging.

For each input: privacy rules may pin it to local; otherwise the router decides (embeddings of
concurrent requests are batched together); the compiled task runs on the chosen backend; a failure
may fall back to the other backend when the configuration allows it, never from local to frontier
for a pinned input. Every input's decision goes to the decision log and the metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from openfirst.cascade.policy import score_of
from openfirst.compiler.errors import IncompleteOutput, OutputValidationError
from openfirst.compiler.program import Failure, Program, Result
from openfirst.compiler.task import output_json
from openfirst.service.routed import OTHER, RoutedProgram
from openfirst.service.auth import Authenticator, Caller, FrontierBudgetExceeded
from openfirst.service.batching import BatchingRouter
from openfirst.service.config import ServiceConfig
from openfirst.service.metrics import ServiceMetrics
from openfirst.service.privacy import PrivacyRules
from openfirst.compiler.task import CompiledTask, load_task
from openfirst.service.decision_log import DecisionLog
from openfirst.service.http_errors import ServiceError
from openfirst.core.errors import ConfigError, OpenFirstError
from openfirst.core.redact import redact_url

log = logging.getLogger("openfirst.service")
LARGE_TEXT = 50_000  # characters checked by the privacy rules off the event loop


@dataclass
class Route:
    """Where one input goes and why."""

    target: str
    decided_by: str  # router | privacy | default | fallback | cascade | policy (key may not use the frontier) | budget
    p_success: float | None = None
    score: float | None = None
    threshold: float | None = None
    reason: str = ""
    pin_reasons: tuple[str, ...] = ()

    def fall_back(self, why: str) -> "Route":
        """The same decision moved to the other backend because this one failed."""
        return Route(OTHER[self.target], "fallback", self.p_success, self.score, self.threshold,
                     f"{self.target} failed: {why}", self.pin_reasons)

    @property
    def pinned(self) -> bool:
        return self.decided_by == "privacy"

    def public(self) -> dict[str, Any]:
        return {"target": self.target, "decided_by": self.decided_by, "p_success": self.p_success,
                "score": self.score, "threshold": self.threshold, "pinned": self.pinned,
                "pin_reasons": list(self.pin_reasons), "reason": self.reason}


class OperatingPoint(BaseModel):
    """A request's own routing operating point (OpenAI SDK: `extra_body={"openfirst_threshold": ...}`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    threshold: float | None = None
    frontier_share: float | None = Field(None, ge=0.0, le=1.0)


@dataclass
class Outcome:
    """One input's answer: its JSON body, and the typed error (kept as an exception until the HTTP edge)."""

    body: dict[str, Any]
    error: Exception | None = None


@dataclass
class Item:
    text: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    private: bool = False
    caller: str | None = None  # the API key's name, for the decision log


class Service:
    def __init__(self, config: ServiceConfig, tasks: dict[str, CompiledTask], backends: dict[str, Any],
                 router: Any = None, decision_log: DecisionLog | None = None):
        self.config = config
        self.started_at = time.time()
        self.tasks = tasks
        self.backends = backends  # "local" always, "frontier" when configured
        self.router = router
        self.gate = BatchingRouter(router, config.router.batch_size) if router is not None else None
        if router is not None and config.router.threshold is not None:
            router.threshold = float(config.router.threshold)
        self.calibration_scores = None  # the calibration queries' routing scores, for per-request shares
        if router is not None and config.router.frontier_share is not None:
            router.threshold, self.calibration_scores = calibrate(router, config.router.calibration,
                                                                  config.router.frontier_share)
        self.auth = Authenticator(config.auth)
        frontier_price = getattr(backends.get("frontier"), "price", None)
        if frontier_price is None and "frontier" in backends and any(
                k.frontier_budget_usd_per_day is not None for k in config.auth.keys):
            raise ConfigError("a key has a frontier budget but the frontier has no price",
                              hint="set [frontier] price = { input_per_mtok = ..., output_per_mtok = ... }")
        self.privacy = PrivacyRules(config.privacy.detectors, config.privacy.patterns, config.privacy.pin_tasks,
                                    config.privacy.phone_regions)
        self.metrics = ServiceMetrics()
        self.decision_log = decision_log
        self.expected_share = config.router.target_frontier_share
        if self.expected_share is None:
            self.expected_share = config.router.frontier_share
        if self.expected_share is None and router is not None and config.router.threshold is None:
            # the artifact's expected share belongs to its own threshold, not to an override
            self.expected_share = router.expected_frontier_share
        self.metrics.watch_drift(self.expected_share, config.router.drift_tolerance)
        self.programs: dict[str, RoutedProgram] = {}
        self.local_only: dict[str, str] = {}  # task -> why the frontier cannot run it
        from openfirst.finetune.serving import tuned_task

        for name, task in tasks.items():
            # a tuned model's folder serves its tasks as trained; a task may have its own (local.task_models)
            local_model = getattr(config.local, "task_models", {}).get(name, getattr(config.local, "model", None))
            local_task, local_options = tuned_task(local_model, task, config.program)
            local = backends.get(f"local:{name}", backends["local"])
            programs = {"local": Program(local_task, local, local_options)}
            if "frontier" in backends:
                try:
                    programs["frontier"] = Program(task, backends["frontier"], config.program)
                except OpenFirstError as exc:
                    self.local_only[name] = str(exc)
                    log.warning("task %s stays local: the frontier cannot run it (%s)", name, exc)
            self.programs[name] = RoutedProgram(programs)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: ServiceConfig) -> "Service":
        from openfirst.router.api import Router

        if not config.tasks:
            raise ConfigError("the configuration names no tasks", hint='[tasks] ticket = "module:Class"')
        tasks = {name: load_task(spec) for name, spec in config.tasks.items()}
        for name, task in tasks.items():
            task.name = name
        backends = {"local": local_backend(config)}
        for name, folder in getattr(config.local, "task_models", {}).items():
            backends[f"local:{name}"] = local_backend(config, folder)
        if config.frontier is not None:
            frontier = config.frontier.backend("frontier")
            if config.frontier.base_url is None and not frontier.has_api_key:
                log.warning("frontier disabled: %s needs an API key (OPENFIRST_FRONTIER__API_KEY or OPENAI_API_KEY); "
                            "every request stays local", config.frontier.model)
            else:
                backends["frontier"] = frontier
        router = None
        if config.router.artifact is not None:
            if not config.router.artifact.exists():
                raise ConfigError(f"router artifact {config.router.artifact} does not exist",
                                  hint="train one: openfirst train routellm-gsm8k --out runs/gsm8k")
            router = Router.load(config.router.artifact)
        lg = config.log
        decisions = (DecisionLog(lg.decisions, lg.store_text, max_query_chars=lg.max_query_chars,
                                 max_bytes=lg.max_bytes, backups=lg.backups,
                                 hash_key=lg.hash_key.get_secret_value() if lg.hash_key else None)
                     if config.log.decisions is not None else None)
        return cls(config, tasks, backends, router, decisions)

    def warm_up(self) -> None:
        """Load the embedding model now, not on the first request."""
        if self.router is not None:
            self.router.route_many(["warm up"])

    def engine_health(self) -> dict[str, Any] | None:
        """The local engine's process state (isolated engines only): ok, restarting, down, crashes so far."""
        health = getattr(self.backends["local"], "health", None)
        return health() if health is not None else None

    def describe(self) -> dict[str, Any]:
        """What runs where, for logs and /healthz (never secrets)."""
        return {"tasks": sorted(self.tasks), "local": _describe(self.backends["local"]),
                "frontier": _describe(self.backends.get("frontier")),
                "router": str(self.config.router.artifact) if self.router is not None else None,
                "threshold": self.router.threshold if self.router is not None else None,
                "expected_frontier_share": self.expected_share, "local_only_tasks": sorted(self.local_only)}

    def model_of(self, target: str) -> str | None:
        backend = self.backends.get(target)
        return backend.model_name if backend is not None else None

    # -- routing ---------------------------------------------------------------------------------
    async def route(self, items: Sequence[Item], task: str | None = None,
                    extra_texts: Sequence[Sequence[str]] | None = None, caller: Caller | None = None,
                    chat: bool = False, operating_point: "OperatingPoint | None" = None) -> list[Route]:
        """Decide each input's target. `extra_texts[i]`: more text of input i checked by the privacy rules
        (e.g. a chat's earlier messages) but not routed on. A caller whose key may not use the frontier stays
        local (`decided_by: policy`)."""
        routes: list[Route | None] = [None] * len(items)
        ask = []
        texts = [[item.text, *(extra_texts[i] if extra_texts else ())] for i, item in enumerate(items)]

        def checks() -> list[Any]:
            return [self.privacy.check(t, item.private, task) for t, item in zip(texts, items)]

        strict = self.config.privacy
        leaves = not strict.strict or (strict.frontier_chat if chat else task in strict.frontier_tasks)

        # the detectors run in linear time, but megabytes of text would still hold the event loop
        big = sum(len(x) for t in texts for x in t) > LARGE_TEXT
        for i, check in enumerate(await asyncio.to_thread(checks) if big else checks()):
            if check.pinned or not leaves:
                reasons = check.reasons if check.pinned else ("strict",)
                routes[i] = Route("local", "privacy", reason="pinned to local by privacy rules" if check.pinned else
                                  "strict mode: not on the frontier allow-list", pin_reasons=reasons)
            elif self.gate is None:
                target = self.config.router.default_target if "frontier" in self.backends else "local"
                routes[i] = Route(target, "default", reason=f"no router configured: default target {target}")
            else:
                ask.append(i)
        threshold = self.request_threshold(operating_point)
        if ask:
            decisions = await self.gate.route_many([items[i].text for i in ask])
            if threshold is not None:  # this request's operating point, on the same routing score
                decisions = [dataclasses.replace(d, threshold=threshold, target="frontier" if d.score >= threshold
                                                 else "local", reason=f"{d.reason.split(' threshold ')[0]} threshold "
                                                 f"{threshold:.4f} (this request's)") for d in decisions]
            stay = ("no frontier configured" if "frontier" not in self.backends else
                    "the frontier cannot run this task's schema" if task in self.local_only else None)
            for i, d in zip(ask, decisions):
                routes[i] = Route(d.target, "router", d.p_success, d.score, d.threshold, d.reason)
                if d.target == "frontier" and stay:
                    routes[i] = Route("local", "default", d.p_success, d.score, d.threshold, f"{d.reason}; {stay}")
        if caller is not None and not caller.settings.frontier:
            for i, r in enumerate(routes):
                if r is not None and r.target == "frontier":
                    routes[i] = Route("local", "policy", r.p_success, r.score, r.threshold,
                                      f"{r.reason}; key {caller.name!r} may not use the frontier")
        return routes  # type: ignore[return-value]

    def request_threshold(self, point: "OperatingPoint | None") -> float | None:
        """The routing threshold a request asked for (`openfirst_threshold`, or `openfirst_frontier_share` on the
        configured calibration queries); None: the service's own."""
        if point is None or (point.threshold is None and point.frontier_share is None):
            return None
        if self.router is None:
            raise ServiceError(422, "invalid_request", "this service has no router: no operating point to set")
        if point.threshold is not None:
            return point.threshold
        if self.calibration_scores is None:
            raise ServiceError(422, "invalid_request", "openfirst_frontier_share needs [router] calibration queries",
                               "send openfirst_threshold instead, or configure [router] calibration")
        from openfirst.router.policy import threshold_for_share

        return threshold_for_share(self.calibration_scores, point.frontier_share)

    # -- frontier spend ---------------------------------------------------------------------------
    def worst_case_usd(self, prompt_bytes: int, max_tokens: int, attempts: int = 1) -> float:
        """An upper bound of a frontier call's cost: every prompt byte a token, `max_tokens` out, per attempt
        (a validation retry also sends back the previous answer and the error)."""
        price = self.backends["frontier"].price
        return sum(price.cost(prompt_bytes + a * (2 * max_tokens + 1000), max_tokens) for a in range(attempts))

    def admit_frontier(self, caller: Caller | None, route: Route, worst_case_usd: Callable[[], float]
                       ) -> tuple[Route, float]:
        """Reserve the worst case against the caller's budget: (the route, USD reserved). Past the budget the
        route turns local (`decided_by: budget`), or FrontierBudgetExceeded is raised, by the key's policy."""
        if caller is None or caller.ledger.budget is None or route.target != "frontier":
            return route, 0.0
        worst = worst_case_usd()
        if caller.ledger.reserve(worst):
            return route, worst
        if caller.settings.over_budget == "reject":
            raise FrontierBudgetExceeded(f"key {caller.name!r} has spent its frontier budget for today",
                                         hint="retry tomorrow (UTC) or ask for a larger budget")
        return Route("local", "budget", route.p_success, route.score, route.threshold,
                     f"{route.reason}; key {caller.name!r} is over its frontier budget"), 0.0

    @staticmethod
    def settle(caller: Caller | None, reserved_usd: float, cost_usd: float | None) -> None:
        if caller is not None and reserved_usd:
            caller.ledger.settle(reserved_usd, cost_usd or 0.0)

    def _extract_worst_case(self, task_name: str, text: str) -> float:
        prompt = sum(len(m["content"].encode("utf-8", "surrogatepass")) + 16
                     for m in self.tasks[task_name].messages(text, []))
        return self.worst_case_usd(prompt, self.config.program.max_tokens, self.config.program.max_retries + 1)

    # -- extraction ------------------------------------------------------------------------------
    async def extract(self, task_name: str, items: Sequence[Item], caller: Caller | None = None,
                      operating_point: OperatingPoint | None = None) -> list[Outcome]:
        """Route and run each input; one Outcome per input (its JSON body has an `output` or an `error`)."""
        start = time.perf_counter()
        routes = await self.route(items, task_name, caller=caller, operating_point=operating_point)
        reserved = [0.0] * len(items)
        try:
            for i, r in enumerate(routes):
                if r.target == "frontier":
                    routes[i], reserved[i] = self.admit_frontier(
                        caller, r, lambda: self._extract_worst_case(task_name, items[i].text))
        except FrontierBudgetExceeded:
            for amount in reserved:
                self.settle(caller, amount, 0.0)
            raise

        cascaded: dict[int, str] = {}  # input -> why the cascade escalated its local answer

        def to_frontier(i: int) -> bool:  # it must fit the budget too
            moved, reserved[i] = self.admit_frontier(
                caller, Route("frontier", "fallback"), lambda: self._extract_worst_case(task_name, items[i].text))
            return moved.target == "frontier"

        def fall_back(i: int, failure: Failure) -> bool:
            if self.may_cascade(routes[i], caller) and isinstance(failure.error, (OutputValidationError,
                                                                                  IncompleteOutput)):
                if to_frontier(i):
                    cascaded[i] = f"the local answer failed: {type(failure.error).__name__}"
                    return True
                return False
            if not self.may_fall_back(routes[i], caller):
                return False
            return to_frontier(i) if routes[i].target == "local" else True

        def escalate(i: int, result: Result) -> bool:
            r = self.config.routing
            if not self.may_cascade(routes[i], caller):
                return False
            score = score_of(result.confidence, r.cascade_scope)
            if score is None or score >= r.cascade_threshold or not to_frontier(i):
                return False
            cascaded[i] = f"local confidence {score:.3f} < {r.cascade_threshold:g}"
            return True

        try:
            done = await self.programs[task_name].arun_many(
                [item.text for item in items], [r.target for r in routes], may_fall_back=fall_back,
                on_outcome=lambda target, r: self.metrics.generation(target, r.latency_s, r.usage, r.cost_usd),
                escalate=escalate)
        except asyncio.CancelledError:  # the request's deadline: the decisions are still logged
            for amount in reserved:
                self.settle(caller, amount, amount)  # the calls may have been billed: book the worst case
            elapsed = time.perf_counter() - start
            why = "deadline_exceeded" if elapsed >= self.config.limits.deadline_s * 0.99 else "cancelled"
            cut = {"error": {"type": why}, "model": None, "cost_usd": None}
            self._record("extract", task_name, items, routes, [cut] * len(items), time.perf_counter() - start)
            raise
        for i, d in enumerate(done):
            frontier_run = d.outcome if d.target == "frontier" else d.first if d.fallback_from == "frontier" else None
            self.settle(caller, reserved[i], frontier_run.cost_usd if frontier_run is not None else 0.0)
            if i in cascaded and d.fallback_from == "local":
                r = routes[i]
                if isinstance(d.outcome, Failure) and isinstance(d.first, Result):  # the frontier failed: keep ours
                    why = f"{cascaded[i]}, but the frontier failed: {type(d.outcome.error).__name__}"
                    done[i] = dataclasses.replace(d, target="local", outcome=d.first, fallback_from="frontier",
                                                  fallback_error=d.outcome.error, first=d.outcome)
                    routes[i] = Route("local", "fallback", r.p_success, r.score, r.threshold, why)
                else:
                    routes[i] = Route("frontier", "cascade", r.p_success, r.score, r.threshold, cascaded[i])
            elif d.fallback_from is not None:
                routes[i] = routes[i].fall_back(type(d.fallback_error).__name__)
        total = time.perf_counter() - start
        out = [self._outcome(items[i], routes[i], d.outcome, d.fallback_from, d.first) for i, d in enumerate(done)]
        self._record("extract", task_name, items, routes, out, total)
        return [Outcome(body, d.outcome.error if isinstance(d.outcome, Failure) else None)
                for body, d in zip(out, done)]

    def may_cascade(self, route: Route, caller: Caller | None = None) -> bool:
        """Whether the cascade may escalate this input's local answer: on, not pinned, a frontier the key may use."""
        return self.config.routing.cascade_threshold is not None and route.target == "local" \
            and not route.pinned and "frontier" in self.backends and route.decided_by not in ("policy", "budget") \
            and (caller is None or caller.settings.frontier)

    def may_fall_back(self, route: Route, caller: Caller | None = None) -> bool:
        r = self.config.routing
        if route.target == "local":
            return r.fallback_local_to_frontier and not route.pinned and "frontier" in self.backends \
                and route.decided_by not in ("default", "policy", "budget") \
                and (caller is None or caller.settings.frontier)
        return r.fallback_frontier_to_local

    def _outcome(self, item: Item, route: Route, outcome: Result | Failure, fallback_from: str | None,
                 first: Result | Failure | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": item.id, **route.public(), "model": outcome.model, "backend": outcome.backend,
                               "latency_ms": round(outcome.latency_s * 1000, 3), "cost_usd": outcome.cost_usd,
                               "usage": outcome.usage, "attempts": outcome.attempts, "fallback_from": fallback_from,
                               "confidence": confidence_body(outcome)}
        if fallback_from == "local" and first is not None:  # the local answer's confidence, which led to escalation
            out["local_confidence"] = confidence_body(first)
        if isinstance(outcome, Result):
            out["output"] = output_json(outcome.output)
        else:
            out["error"] = error_body(outcome.error)
        return out

    # -- bookkeeping -----------------------------------------------------------------------------
    def _record(self, endpoint: str, task: str | None, items: Sequence[Item], routes: Sequence[Route],
                outcomes: Sequence[dict[str, Any] | None], total_s: float) -> None:
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        records = []
        for item, route, out in zip(items, routes, outcomes):
            chose = None if route.score is None else ("frontier" if route.score >= route.threshold else "local")
            warning = self.metrics.route(endpoint, route.target, route.decided_by, chose)
            if warning:
                log.warning(warning)
            if out is not None and "error" in out:
                self.metrics.errors.labels(endpoint, out["error"]["type"]).inc()
            records.append({
                "id": item.id, "time": now, "endpoint": endpoint, "task": task, "query": item.text,
                "target": route.target, "decided_by": route.decided_by, "p_success": route.p_success,
                "score": route.score, "threshold": route.threshold, "expected_frontier_share": self.expected_share,
                "pin_reasons": list(route.pin_reasons) or None,
                "model": out.get("model") if out else self.model_of(route.target),
                "ok": None if out is None else "error" not in out,
                "error": out["error"]["type"] if out and "error" in out else None,
                "latency_s": (out["latency_ms"] / 1000 if out and out.get("latency_ms") is not None else total_s),
                "caller": item.caller,
                "confidence": _overall(out.get("local_confidence") or out.get("confidence")) if out else None,
                "cost_usd": out.get("cost_usd") if out else None, "output": out.get("output") if out else None})
        if self.decision_log is not None:
            self.decision_log.write_many(records)

    def record_route(self, endpoint: str, items: Sequence[Item], routes: Sequence[Route], total_s: float,
                     outcomes: Sequence[dict[str, Any] | None] | None = None) -> None:
        self._record(endpoint, None, items, routes, outcomes or [None] * len(items), total_s)

    def close(self) -> None:
        if self.decision_log is not None:
            self.decision_log.close()
        for backend in self.backends.values():
            backend.close()


def calibrate(router: Any, queries_from: str, share: float) -> tuple[float, Any]:
    """(the threshold that sends `share` of the calibration queries to the frontier, their routing scores);
    embeddings cached on disk."""
    from openfirst.router.policy import threshold_for_share
    from openfirst.router.public_data import load_log_or_public

    queries = load_log_or_public(queries_from, require_local=False).queries
    scores = router.calibration_scores(queries)
    threshold = threshold_for_share(scores, share)
    log.info("threshold %.4f sends %.1f%% of %d calibration queries to the frontier", threshold, 100 * share,
             len(queries))
    return threshold, scores


def local_backend(config: ServiceConfig, model: str | None = None) -> Any:
    """The configured local engine (on `model` instead of `[local] model` when given: a per-task tuned model)."""
    local = config.local
    if local.kind == "server":
        return local.backend("local")
    from openfirst.compiler.backends.isolated import EngineSpec, IsolatedBackend
    from openfirst.compiler.backends.threaded import ThreadedBackend

    options = local.model_dump(exclude={"kind", "price", "isolate", "model", "task_models"}, exclude_none=True)
    spec = EngineSpec("llama.cpp" if local.kind == "llamacpp" else local.kind, model or local.model, options)
    return ThreadedBackend(IsolatedBackend(spec) if local.isolate else spec.load(), local.price)


def _describe(backend: Any) -> dict[str, Any] | None:
    if backend is None:
        return None
    return {"name": backend.name, "model": backend.model_name,
            "base_url": redact_url(getattr(backend, "base_url", None))}


def confidence_body(outcome: Result | Failure | None) -> dict[str, Any] | None:
    """An answer's confidence for the response: overall, per field, how aggregated, whether under the grammar's
    mask; None where the engine gave no log-probabilities (a frontier API, a failed answer)."""
    c = outcome.confidence if isinstance(outcome, Result) else None
    if c is None:
        return None
    return {"overall": c.overall, "fields": c.fields, "aggregation": c.aggregation, "masked": c.masked}


def _overall(body: dict[str, Any] | None) -> float | None:
    return None if body is None else body["overall"]


def error_body(error: BaseException) -> dict[str, Any]:
    """The JSON error of one failed input or request (OpenAI's shape: type, message; plus hint, retryable)."""
    return {"type": type(error).__name__, "message": getattr(error, "message", None) or str(error),
            "hint": getattr(error, "hint", None),
            "retryable": bool(getattr(error, "retryable", False))}
