"""`Service`: what `openfirst serve` runs, assembled from its configuration: the tasks, the model registry, the
router at its operating point, the privacy rules, one `Pipeline` over them, and the subscribers to its hooks
(metrics, the decision log). Routing and escalation policy live in the pipeline; HTTP lives in `app` and `chat`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any, Sequence

from openfirst.compiler.program import Program
from openfirst.compiler.task import CompiledTask, load_task
from openfirst.core.errors import ConfigError, OpenFirstError
from openfirst.pipeline import Hooks, Item, ModelRegistry, OperatingPoint, Pipeline, RoutedOutcome, RoutingPolicy
from openfirst.pipeline.many_models import ManyModelRouter
from openfirst.pipeline.route import CallerPolicy, Route
from openfirst.service.auth import Authenticator, Caller
from openfirst.service.config import ServiceConfig
from openfirst.service.decision_log import DecisionLog, DecisionRenderer
from openfirst.service.metrics import ServiceMetrics
from openfirst.service.models import registry_from_config
from openfirst.pipeline.operating_point import expected_share, operating_point
from openfirst.service.privacy import PrivacyRules
from openfirst.service.spending import Spend

log = logging.getLogger("openfirst.service")


class Service:
    def __init__(self, config: ServiceConfig, tasks: dict[str, CompiledTask], models: ModelRegistry,
                 router: Any = None, decision_log: DecisionLog | None = None):
        if is_multi_model_router(router):
            r = config.router
            router = ManyModelRouter(router, models, names=r.model_names, exclude=r.exclude_models,
                                     tradeoff=r.tradeoff, cost_source=r.cost_source,
                                     output_tokens=r.expected_output_tokens)
        self.config, self.tasks, self.models, self.router = config, tasks, models, router
        self.started_at = time.time()
        _check_budget_prices(config, models)
        _check_key_models(config, models)
        self.metrics = ServiceMetrics()
        self.state = shared_state(config)
        self.auth = Authenticator(config.auth, self.state)
        self.decision_log = decision_log
        lg = config.log  # the file log renders as the log settings say; without one, a renderer of its own
        self.renderer = decision_log or DecisionRenderer(lg.store_text, max_query_chars=lg.max_query_chars,
                                                         hash_key=lg.hash_key.get_secret_value() if lg.hash_key
                                                         else None)
        threshold, calibration = operating_point(config, router)
        self.expected_share = expected_share(config, router)
        self.metrics.watch_drift(self.expected_share, config.router.drift_tolerance)
        programs, local_only = task_programs(config, tasks, models)
        p = config.privacy
        privacy = PrivacyRules(p.detectors, p.patterns, p.pin_tasks, p.phone_regions, keywords=p.keywords)
        self.pipeline = Pipeline(models, programs, privacy=privacy, policy=RoutingPolicy.from_config(config),
                                 router=router, router_batch=config.router.batch_size, threshold=threshold,
                                 calibration_scores=calibration, local_only=local_only, hooks=Hooks())
        self.pipeline.hooks.on("generation", lambda model, r: self.metrics.generation(
            model, r.latency_s, r.usage, r.cost_usd))
        self.pipeline.hooks.on("outcomes", self.record)

    @classmethod
    def from_config(cls, config: ServiceConfig) -> "Service":
        if not config.tasks:
            raise ConfigError("the configuration names no tasks", hint='[tasks] ticket = "module:Class"')
        tasks = {name: load_task(spec) for name, spec in config.tasks.items()}
        for name, task in tasks.items():
            task.name = name
        router = None
        if config.router.artifact is not None:
            if not config.router.artifact.exists():
                raise ConfigError(f"router artifact {config.router.artifact} does not exist",
                                  hint="train one: openfirst train routellm-gsm8k --out runs/gsm8k")
            router = load_router(config)
        lg = config.log
        decisions = (DecisionLog(lg.decisions, lg.store_text, max_query_chars=lg.max_query_chars,
                                 max_bytes=lg.max_bytes, backups=lg.backups,
                                 hash_key=lg.hash_key.get_secret_value() if lg.hash_key else None)
                     if config.log.decisions is not None else None)
        return cls(config, tasks, registry_from_config(config), router, decisions)

    # -- what runs -------------------------------------------------------------------------------
    @property
    def local_only(self) -> dict[str, str]:
        return self.pipeline.local_only

    @property
    def many_models(self) -> bool:
        return isinstance(self.router, ManyModelRouter)

    def warm_up(self) -> None:
        """Load the embedding model now, not on the first request."""
        if self.router is not None:
            self.router.route_many(["warm up"])

    def engine_health(self) -> dict[str, Any] | None:
        """The local engine's process state (isolated engines only): ok, restarting, down, crashes so far."""
        health = getattr(self.models.backend("local"), "health", None)
        return health() if health is not None else None

    def describe(self) -> dict[str, Any]:
        """What runs where, for logs and /healthz (never secrets)."""
        frontier = self.models.get("frontier").describe() if self.models.has_frontier else None
        return {"tasks": sorted(self.tasks), "local": self.models.get("local").describe(), "frontier": frontier,
                "state": self.state_health(),
                "models": {n: e.kind for n, e in sorted(self.models.entries.items())},
                "router": str(self.config.router.artifact) if self.router is not None else None,
                "router_models": self.router.served if self.many_models else None,
                "threshold": self.threshold, "expected_frontier_share": self.expected_share,
                "local_only_tasks": sorted(self.local_only)}

    @property
    def threshold(self) -> float | None:
        if self.router is None or self.many_models:
            return None
        return self.pipeline.threshold if self.pipeline.threshold is not None else self.router.threshold

    def model_of(self, target: str) -> str | None:
        return self.models.model_of(target)

    def runs_on_frontier(self, task: str) -> bool:
        return "frontier" in self.pipeline.programs.get(task, {})

    # -- requests --------------------------------------------------------------------------------
    async def route(self, items: Sequence[Item], task: str | None = None, *,
                    extra_texts: Sequence[Sequence[str]] | None = None, caller: Caller | None = None,
                    chat: bool = False, point: OperatingPoint | None = None) -> list[Route]:
        """Each input's target (privacy, the key's policy, the router)."""
        return await self.pipeline.route(items, task, extra_texts=extra_texts, caller=caller_policy(caller),
                                         chat=chat, point=point)

    async def extract(self, task: str, items: Sequence[Item], caller: Caller | None = None,
                      point: OperatingPoint | None = None) -> list[RoutedOutcome]:
        """Route and run each input; one RoutedOutcome per input (logged through the pipeline's hooks)."""
        return await self.pipeline.run(task, items, caller=caller_policy(caller), point=point,
                                       budget=Spend(caller, self.models.is_local),
                                       deadline_s=self.config.limits.deadline_s)

    def state_health(self) -> dict[str, Any]:
        """Where rate limits, budgets and decisions are kept, and whether the shared stores answer."""
        if self.state is None:
            health = {"rate_limits": "local", "budgets": "local",
                      "decisions": "file" if self.decision_log is not None else "none"}
        else:
            health = self.state.health()
        self.metrics.watch_state(health)
        return health

    @property
    def degraded(self) -> bool:
        return self.state is not None and self.state.degraded

    def record(self, endpoint: str, task: str | None, outcomes: Sequence[RoutedOutcome], total_s: float) -> None:
        """Metrics and the decision log for finished (or only routed, or cut off) inputs."""
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        for o in outcomes:
            warning = self.metrics.route(endpoint, o.route.target, o.route.decided_by, o.route.router_chose)
            if warning:
                log.warning(warning)
            if o.ok is False:
                self.metrics.errors.labels(endpoint, o.error_type()).inc()
        shared = self.state is not None and self.state.db is not None
        if self.decision_log is not None or shared:
            rows = [self.renderer.render(o.record(endpoint, task, now, self.expected_share, total_s))
                    for o in outcomes]
            if self.decision_log is not None:
                self.decision_log.write_rendered(rows)
            if shared:
                self.state.write_decisions(rows)

    def close(self) -> None:
        if self.decision_log is not None:
            self.decision_log.close()
        if self.state is not None:
            self.state.close()
        self.models.close()


def shared_state(config: ServiceConfig) -> Any:
    """The replicas' shared state where `[state]` names a store (its errors of configuration raise here), else
    None: everything in process."""
    if not config.state.resolved().shared:
        return None
    from openfirst.state.shared import SharedState

    state = SharedState(config.state)
    try:
        state.start()
    except BaseException:
        state.close()
        raise
    return state


def caller_policy(caller: Caller | None) -> CallerPolicy:
    if caller is None:
        return CallerPolicy()
    return CallerPolicy(caller.name, caller.settings.frontier, frozenset(caller.settings.exclude_models))


def load_router(config: ServiceConfig) -> Any:
    """The configured router artifact: a two-model `Router` or a many-model router (whose operating point is a
    trade-off, not a threshold)."""
    from openfirst.router.api import Router
    from openfirst.router.multi_router import MultiModelRouter, is_multi_router

    r = config.router
    if not is_multi_router(r.artifact):
        if r.tradeoff is not None or r.model_names or r.exclude_models:
            raise ConfigError("[router] tradeoff, model_names and exclude_models are for a many-model router",
                              hint=f"{r.artifact} is a two-model router: set threshold or frontier_share")
        return Router.load(r.artifact)
    if r.threshold is not None or r.frontier_share is not None:
        raise ConfigError(f"{r.artifact} is a many-model router: its operating point is [router] tradeoff (lambda), "
                          "not threshold or frontier_share")
    return MultiModelRouter.load(r.artifact)


def is_multi_model_router(router: Any) -> bool:
    from openfirst.router.multi_router import MultiModelRouter

    return isinstance(router, MultiModelRouter)


def task_programs(config: ServiceConfig, tasks: dict[str, CompiledTask], models: ModelRegistry
                  ) -> tuple[dict[str, dict[str, Program]], dict[str, str]]:
    """Each task compiled for the local model that serves it (a tuned model's folder serves its tasks as trained)
    and for the frontier where it can run it; and the tasks that stay local, with why."""
    from openfirst.finetune.serving import tuned_task

    programs: dict[str, dict[str, Program]] = {}
    local_only: dict[str, str] = {}
    for name, task in tasks.items():
        local_model = getattr(config.local, "task_models", {}).get(name, getattr(config.local, "model", None))
        local_task, local_options = tuned_task(local_model, task, config.program)
        programs[name] = {"local": Program(local_task, models.backend(models.for_task("local", name)), local_options)}
        for model in models.names():
            if model == "local":
                continue
            try:
                programs[name][model] = Program(task, models.backend(model), config.program)
            except OpenFirstError as exc:
                if model == "frontier":
                    local_only[name] = str(exc)
                log.warning("task %s does not run on %s: it cannot run it (%s)", name, model, exc)
    return programs, local_only


def _check_budget_prices(config: ServiceConfig, models: ModelRegistry) -> None:
    unpriced = [n for n in models.names("frontier") if models.get(n).price is None]
    if unpriced and any(k.frontier_budget_usd_per_day is not None for k in config.auth.keys):
        raise ConfigError(f"a key has a frontier budget but frontier models {unpriced} have no price",
                          hint="set price = { input_per_mtok = ..., output_per_mtok = ... } in [frontier] and "
                               "each [models.<name>] of kind frontier")


def _check_key_models(config: ServiceConfig, models: ModelRegistry) -> None:
    for key in config.auth.keys:
        if "local" in key.exclude_models:
            raise ConfigError(f"key {key.name!r}: exclude_models cannot exclude 'local' (where data may stay)")
        if unknown := sorted(set(key.exclude_models) - set(models.entries)):
            raise ConfigError(f"key {key.name!r}: exclude_models names unknown models {unknown}",
                              hint=f"models: {', '.join(models.names())}")
