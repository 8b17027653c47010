"""The one routed-execution pipeline. Stages, per input:

privacy (a rule or the caller's flag pins it local) -> caller policy (a key without the frontier stays local) ->
router (score against the threshold; without one, the default target) -> budget (a frontier call reserves its
worst case) -> run (each target's inputs in one batch) -> checks (validation, leak guard, confidence) ->
escalation (an unsure or invalid local answer goes to the frontier: the cascade) -> fallback (a failed answer is
tried once on the other model, where the policy allows; a frontier that fails an escalation leaves the local
answer).

The Python API (`Extractor`), the service's /extract, /route and chat, batch extraction and the benchmarks all run
through `Pipeline`; every input gets one `RoutedOutcome`, whose `decided_by` is from `route.DECIDERS`.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, Sequence

from openfirst.compiler.errors import IncompleteOutput, OutputValidationError
from openfirst.compiler.program import Failure, Program, Result
from openfirst.core.errors import InvalidRequest
from openfirst.pipeline.batching import BatchingRouter
from openfirst.pipeline.hooks import Hooks
from openfirst.pipeline.many_models import is_many_model
from openfirst.pipeline.models import FRONTIER, LOCAL, ModelRegistry
from openfirst.pipeline.outcome import RoutedOutcome, StageRecord
from openfirst.pipeline.route import CallerPolicy, Item, OperatingPoint, Route

LARGE_TEXT = 50_000  # characters checked by the privacy rules off the event loop
# set by `run_sync`: programs run on the backends' sync paths (worker threads), as a caller without an event loop
# expects; an async client is bound to its loop, and each `run_sync` has a loop of its own
_SYNC = contextvars.ContextVar("openfirst_pipeline_sync", default=False)


class Budget(Protocol):
    """A request's frontier spend (`openfirst.service.spending.Spend`): reserve before a frontier call, settle
    after."""

    def admit(self, i: int, route: Route, worst_case_usd: Any) -> Route: ...
    def settle(self, i: int, cost_usd: float | None) -> None: ...
    def settle_all(self, cost_usd: float | None = None) -> None: ...


@dataclass(frozen=True)
class RoutingPolicy:
    """What the stages after the router may do. `cascade_threshold`: escalate a local answer whose confidence
    (`cascade_scope`: the output's, or the least confident field's) is below it, and one that failed validation
    (`cascade_failures="any"`: any failure); None: no cascade. Fallback: a failed answer tried once on the other
    model. Privacy `strict`: only `frontier_tasks` (and chat if `frontier_chat`) may leave."""

    cascade_threshold: float | None = None
    cascade_scope: Literal["output", "field"] = "output"
    cascade_failures: Literal["invalid", "any"] = "invalid"
    fallback_local_to_frontier: bool = False
    fallback_frontier_to_local: bool = True
    default_target: str = LOCAL
    strict: bool = False
    frontier_tasks: frozenset[str] = frozenset()
    frontier_chat: bool = False

    @classmethod
    def from_config(cls, config: Any) -> "RoutingPolicy":
        r, p = config.routing, config.privacy
        return cls(r.cascade_threshold, r.cascade_scope, "invalid", r.fallback_local_to_frontier,
                   r.fallback_frontier_to_local, config.router.default_target, p.strict, frozenset(p.frontier_tasks),
                   p.frontier_chat)


def score_of(conf: Any, scope: str) -> float | None:
    """The confidence the cascade compares: the output's, or its least confident field's."""
    if conf is None:
        return None
    return min(conf.fields.values(), default=conf.overall) if scope == "field" else conf.overall


@dataclass
class _Run:
    """One request's inputs as they move through the stages."""

    task: str
    items: Sequence[Item]
    caller: CallerPolicy
    budget: Budget | None
    routes: list[Route]
    results: list[Result | Failure | None] = field(default_factory=list)
    outcomes: list[RoutedOutcome] = field(default_factory=list)


class Pipeline:
    """`programs[task][model]`: the task compiled for each model that can run it (local always). `privacy`:
    `PrivacyRules` (None: only the caller's flag pins). `router`: something with `route_many(texts)` (and
    `decide(score, p_success, threshold=)` for another threshold), batched across concurrent requests."""

    def __init__(self, models: ModelRegistry, programs: dict[str, dict[str, Program]], *, privacy: Any = None,
                 policy: RoutingPolicy = RoutingPolicy(), router: Any = None, router_batch: int = 64,
                 threshold: float | None = None, calibration_scores: Any = None,
                 local_only: dict[str, str] | None = None, hooks: Hooks | None = None):
        self.models, self.programs, self.privacy, self.policy = models, programs, privacy, policy
        self.router, self.threshold, self.calibration_scores = router, threshold, calibration_scores
        self.gate = BatchingRouter(router, router_batch) if router is not None else None
        self.local_only = dict(local_only or {})  # task -> why the frontier cannot run it
        self.hooks = hooks or Hooks()

    @classmethod
    def single(cls, program: Program, task: str = "task") -> "Pipeline":
        """One task on one local model (batch extraction, the CLI): every stage but the run passes through."""
        return cls(ModelRegistry.of(program.backend), {task: {LOCAL: program}})

    def run_texts(self, task: str, texts: Sequence[str]) -> list[Result | Failure]:
        """The answers to `texts` (sync; no request context): batch extraction's entry."""
        return [o.result for o in self.run_sync(task, [Item(t) for t in texts])]

    # -- routing: privacy -> caller policy -> router -----------------------------------------------
    async def route(self, items: Sequence[Item], task: str | None = None, *,
                    extra_texts: Sequence[Sequence[str]] | None = None, caller: CallerPolicy = CallerPolicy(),
                    chat: bool = False, point: OperatingPoint | None = None) -> list[Route]:
        """Each input's target. `extra_texts[i]`: more of input i's text read by the privacy rules (a chat's
        other strings) but not routed on."""
        texts = [[item.text, *(extra_texts[i] if extra_texts else ())] for i, item in enumerate(items)]
        routes: list[Route | None] = await self._pin(items, texts, task, chat)
        ask = [i for i, r in enumerate(routes) if r is None]
        if is_many_model(self.router):
            routes = await self._choose_many(items, routes, task, caller, point)
        elif ask and self.gate is None:
            target = self.policy.default_target if self.models.has_frontier else LOCAL
            for i in ask:
                routes[i] = Route(target, "default", reason=f"no router configured: default target {target}")
        elif ask:
            for i, r in zip(ask, await self._router(items, ask, task, point)):
                routes[i] = r
        return [self._caller_allows(r, caller) for r in routes]  # type: ignore[arg-type]

    def _caller_allows(self, route: Route, caller: CallerPolicy) -> Route:
        """The route, or local where the caller's key may not use its target."""
        if caller.allows(route.target, self.models.is_local(route.target)):
            return route
        why = (f"key {caller.name!r} excludes model {route.target!r}" if route.target in caller.exclude else
               f"key {caller.name!r} may not use the frontier")
        return route.moved(LOCAL, "policy", why)

    async def _choose_many(self, items: Sequence[Item], routes: list[Route | None], task: str | None,
                           caller: CallerPolicy, point: OperatingPoint | None) -> list[Route]:
        """A many-model router's choice per input among the models it may use: the task's models the key allows,
        and only local ones for pinned inputs (which stay decided by privacy)."""
        if point is not None and not point.empty:
            raise InvalidRequest("this service routes across many models: a request cannot set a threshold or a "
                                 "frontier share", hint="the trade-off is [router] tradeoff in the configuration")
        runnable = set(self.programs[task]) if task is not None else set(self.models.names())
        preds = await self.gate.route_many([item.text for item in items])
        out = []
        for route, pred in zip(routes, preds):
            allowed = [m for m in self.router.served if m in runnable and caller.allows(m, self.models.is_local(m))
                       and (route is None or self.models.is_local(m))]
            pick = self.router.choose(pred, allowed)
            if pick is None:
                out.append(route or Route(LOCAL, "policy", reason="no model the router serves is allowed here; "
                                                                    "local"))
            elif route is not None:  # pinned: the router's choice among the local models
                out.append(replace(route, target=pick[0], p_success=pred.p_success[pick[0]],
                                   predictions=pred.public()))
            else:
                out.append(Route(pick[0], "router", pred.p_success[pick[0]], reason=pick[1],
                                 predictions=pred.public()))
        return out

    async def _pin(self, items: Sequence[Item], texts: list[list[str]], task: str | None, chat: bool
                   ) -> list[Route | None]:
        p = self.policy
        leaves = not p.strict or (p.frontier_chat if chat else task in p.frontier_tasks)

        def check() -> list[Any]:
            return [self.privacy.check(t, item.private, task) if self.privacy is not None else
                    _flag_only(item.private) for t, item in zip(texts, items)]

        big = sum(len(x) for t in texts for x in t) > LARGE_TEXT  # megabytes would hold the event loop
        checks = await asyncio.to_thread(check) if big else check()
        return [Route(LOCAL, "privacy", reason="pinned to local by privacy rules", pin_reasons=c.reasons)
                if c.pinned else None if leaves else
                Route(LOCAL, "privacy", reason="strict mode: not on the frontier allow-list", pin_reasons=("strict",))
                for c in checks]

    async def _router(self, items: Sequence[Item], ask: list[int], task: str | None,
                      point: OperatingPoint | None) -> list[Route]:
        decisions = await self.gate.route_many([items[i].text for i in ask])
        own = self.request_threshold(point)
        threshold = own if own is not None else self.threshold
        if threshold is not None:
            decisions = [self.router.decide(d.score, d.p_success, threshold=threshold) for d in decisions]
        stay = ("no frontier configured" if not self.models.has_frontier else
                "the frontier cannot run this task's schema" if task in self.local_only else None)
        routes = []
        for d in decisions:
            reason = f"{d.reason} (this request's)" if own is not None else d.reason
            r = Route(d.target, "router", d.p_success, d.score, d.threshold, reason)
            routes.append(r.moved(LOCAL, "default", stay) if d.target == FRONTIER and stay else r)
        return routes

    def request_threshold(self, point: OperatingPoint | None) -> float | None:
        """The routing threshold a request asked for (its own, or the one that sends its frontier share of the
        calibration queries); None: the pipeline's."""
        if point is None or point.empty:
            return None
        if self.router is None:
            raise InvalidRequest("this service has no router: no operating point to set")
        if point.threshold is not None:
            return point.threshold
        if self.calibration_scores is None:
            raise InvalidRequest("openfirst_frontier_share needs [router] calibration queries",
                              hint="send openfirst_threshold instead, or configure [router] calibration")
        from openfirst.router.policy import threshold_for_share

        return threshold_for_share(self.calibration_scores, point.frontier_share)

    # -- running: budget -> run -> checks -> escalation / fallback -----------------------------------
    async def run(self, task: str, items: Sequence[Item], *, caller: CallerPolicy = CallerPolicy(),
                  point: OperatingPoint | None = None, budget: Budget | None = None,
                  endpoint: str = "extract", deadline_s: float | None = None) -> list[RoutedOutcome]:
        """Route and run each input of `task`; one RoutedOutcome per input, emitted to the "outcomes" hook (a
        request cut off by its deadline still emits its decisions, then re-raises)."""
        start = time.perf_counter()
        routes = await self.route(items, task, caller=caller, point=point)
        run = _Run(task, items, caller, budget, routes)
        if budget is not None:
            self._admit_all(run)
        try:
            await self._first_runs(run)
            await self._second_runs(run)
        except asyncio.CancelledError:
            self._cut(run, endpoint, time.perf_counter() - start, deadline_s)
            raise
        self.hooks.emit("outcomes", endpoint, task, run.outcomes, time.perf_counter() - start)
        return run.outcomes

    def _admit_all(self, run: _Run) -> None:
        """Reserve every frontier route's worst case; past the budget a route turns local (or, by the key's
        policy, the request is refused: nothing stays reserved)."""
        try:
            for i, r in enumerate(run.routes):
                if not self.models.is_local(r.target):
                    run.routes[i] = run.budget.admit(i, r, self._worst_case(run.task, run.items[i].text, r.target))
        except Exception:
            run.budget.settle_all(0.0)
            raise

    async def _first_runs(self, run: _Run) -> None:
        run.results = [None] * len(run.items)
        await self._run_on(run, list(range(len(run.items))), [r.target for r in run.routes])
        run.outcomes = [RoutedOutcome(item, route, result, history=[StageRecord(route.decided_by, note=route.reason)])
                        for item, route, result in zip(run.items, run.routes, run.results)]

    async def _run_on(self, run: _Run, which: list[int], targets: list[str]) -> None:
        """Run `which` inputs on their targets, one batch per target, concurrently; results into `run.results`."""
        async def on(target: str, idx: list[int]) -> None:
            program = self.programs[run.task][target]
            texts = [run.items[i].text for i in idx]
            for i, r in zip(idx, await _arun(program, texts)):
                run.results[i] = r
                self.hooks.emit("generation", target, r)
        groups: dict[str, list[int]] = {}
        for i, t in zip(which, targets):
            groups.setdefault(t, []).append(i)
        await asyncio.gather(*(on(t, idx) for t, idx in groups.items()))

    async def _second_runs(self, run: _Run) -> None:
        """Checks on each first answer; the ones that move (escalation, fallback) run once more, elsewhere."""
        moves = {}
        for i, o in enumerate(run.outcomes):
            o.history.append(StageRecord("run", o.model, o.latency_s or 0.0, o.cost_usd))
            move = self._check(run, i, o)
            if move is not None:
                moves[i] = move
        if moves:
            await self._run_on(run, list(moves), [m.target for m in moves.values()])
        for i, o in enumerate(run.outcomes):
            if i in moves:
                run.outcomes[i] = self._resolve(o, moves[i], run.results[i])
            if run.budget is not None:
                run.budget.settle(i, self._paid_cost(run.outcomes[i]))

    def _check(self, run: _Run, i: int, o: RoutedOutcome) -> Route | None:
        """Where this answer moves (None: it stays): the cascade's escalation, or a fallback."""
        r, result = o.route, o.result
        o.verdict = ("pinned" if r.pinned else self._verdict(result) if self.models.is_local(r.target) else
                     "router_sure" if r.decided_by == "router" else None)
        if self.models.other(r.target) not in self.programs[run.task]:
            return None
        if self._may_cascade(r, run.caller) and o.verdict in ("invalid", "low_confidence"):
            why = (f"the local answer failed: {type(result.error).__name__}" if o.verdict == "invalid" else
                   f"local confidence {score_of(result.confidence, self.policy.cascade_scope):.3f} < "
                   f"{self.policy.cascade_threshold:g}")
            return self._admit(run, i, r.moved(FRONTIER, "cascade", why, replace_reason=True))
        if isinstance(result, Failure) and self._may_fall_back(r, run.caller):
            other = self.models.other(r.target)
            return self._admit(run, i, r.moved(other, "fallback", f"{r.target} failed: "
                                               f"{type(result.error).__name__}", replace_reason=True))
        return None

    def _verdict(self, result: Result | Failure | None) -> str | None:
        p = self.policy
        if isinstance(result, Failure):
            validation = isinstance(result.error, (OutputValidationError, IncompleteOutput))
            return "invalid" if validation or p.cascade_failures == "any" else None
        if result is None or p.cascade_threshold is None:
            return None
        score = score_of(result.confidence, p.cascade_scope)
        return "no_confidence" if score is None else "low_confidence" if score < p.cascade_threshold else "confident"

    def _admit(self, run: _Run, i: int, move: Route) -> Route | None:
        """A move to the frontier must fit the caller's budget too (None: it does not)."""
        if self.models.is_local(move.target) or run.budget is None:
            return move
        admitted = run.budget.admit(i, move, self._worst_case(run.task, run.items[i].text, move.target))
        return move if admitted.target == move.target else None

    def _resolve(self, o: RoutedOutcome, move: Route, second: Result | Failure) -> RoutedOutcome:
        """The moved input's outcome; a frontier that fails an escalation leaves the local answer."""
        hist = [*o.history, StageRecord(move.decided_by, move.target, note=move.reason),
                StageRecord("run", move.target, second.latency_s, second.cost_usd)]
        if move.decided_by == "cascade" and isinstance(second, Failure) and isinstance(o.result, Result):
            why = f"{move.reason}, but the frontier failed: {type(second.error).__name__}"
            return RoutedOutcome(o.item, o.route.moved(LOCAL, "fallback", why, replace_reason=True), o.result,
                                 first=second, fallback_from=move.target, verdict=o.verdict, history=hist)
        return RoutedOutcome(o.item, move, second, first=o.result, fallback_from=o.route.target, verdict=o.verdict,
                             history=hist)

    def _may_cascade(self, route: Route, caller: CallerPolicy) -> bool:
        """Escalation: the cascade on, a local answer, not pinned, a frontier the key may use."""
        return (self.policy.cascade_threshold is not None and self.models.is_local(route.target)
                and not route.pinned and self.models.has_frontier and route.decided_by not in ("policy", "budget")
                and caller.allows(FRONTIER, False))

    def _may_fall_back(self, route: Route, caller: CallerPolicy) -> bool:
        """Fallback: local -> frontier only where configured, never pinned or kept local by the key or the
        default; frontier -> local where configured."""
        p = self.policy
        if self.models.is_local(route.target):
            return (p.fallback_local_to_frontier and not route.pinned and self.models.has_frontier
                    and route.decided_by not in ("default", "policy", "budget") and caller.allows(FRONTIER, False))
        return p.fallback_frontier_to_local

    def fallback_route(self, route: Route, error: BaseException, caller: CallerPolicy = CallerPolicy()
                       ) -> Route | None:
        """Where a failed call moves (chat: one call, no checks), or None."""
        if not self._may_fall_back(route, caller):
            return None
        return route.moved(self.models.other(route.target), "fallback",
                           f"{route.target} failed: {type(error).__name__}", replace_reason=True)

    def _worst_case(self, task: str, text: str, target: str) -> Any:
        """A paid call's worst-case cost, priced on the prompt the target's program sends."""
        def worst() -> float:
            program = self.programs[task][target]
            prompt = sum(len(m["content"].encode("utf-8", "surrogatepass")) + 16 for m in program.messages(text))
            o = program.options
            return worst_case_usd(self.models.get(target).price, prompt, o.max_tokens, o.max_retries + 1)
        return worst

    def _paid_cost(self, o: RoutedOutcome) -> float:
        """What frontier models billed for this input (0 where none ran)."""
        ran = [(o.target, o.result), (o.fallback_from, o.first)]
        return sum((r.cost_usd or 0.0) for name, r in ran
                   if r is not None and name is not None and not self.models.is_local(name))

    def _cut(self, run: _Run, endpoint: str, elapsed: float, deadline_s: float | None) -> None:
        """The deadline (or shutdown) cut the request: the reservations are booked, the decisions still logged."""
        if run.budget is not None:
            run.budget.settle_all(None)
        why = "deadline_exceeded" if deadline_s is not None and elapsed >= deadline_s * 0.99 else "cancelled"
        cut = [RoutedOutcome(item, route, cut=why) for item, route in zip(run.items, run.routes)]
        self.hooks.emit("outcomes", endpoint, run.task, cut, elapsed)

    def run_sync(self, task: str, items: Sequence[Item], **kw: Any) -> list[RoutedOutcome]:
        """`run` for callers without an event loop (scripts, batch extraction); inside one (a notebook) it runs on
        a worker thread. Programs use their backends' sync paths."""
        def go() -> list[RoutedOutcome]:
            _SYNC.set(True)
            return asyncio.run(self.run(task, items, **kw))

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return contextvars.copy_context().run(go)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="openfirst-pipeline") as pool:
            return pool.submit(contextvars.copy_context().run, go).result()


def worst_case_usd(price: Any, prompt_bytes: int, max_tokens: int, attempts: int = 1) -> float:
    """An upper bound of a frontier call's cost: every prompt byte a token, `max_tokens` out, per attempt (a
    validation retry also sends back the previous answer and the error)."""
    return sum(price.cost(prompt_bytes + a * (2 * max_tokens + 1000), max_tokens) for a in range(attempts))


async def _arun(program: Program, texts: list[str]) -> list[Result | Failure]:
    from openfirst.compiler.backends.base import AsyncBackend

    if isinstance(program.backend, AsyncBackend) and not _SYNC.get():
        return await program.arun_many(texts)
    return await asyncio.to_thread(program.run_many, texts)


@dataclass
class _FlagOnly:
    pinned: bool
    reasons: tuple[str, ...]


def _flag_only(private: bool) -> _FlagOnly:
    return _FlagOnly(private, ("request_flag",) if private else ())
