"""The pipeline's stages on scripted backends: which stage decides, escalation on invalid or unsure answers,
privacy, the router, a frontier that fails an escalation."""

import math

import pytest
from pydantic import BaseModel

from openfirst.compiler.backends.base import Generation
from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.errors import BackendError
from openfirst.compiler.program import Program, ProgramOptions, Result
from openfirst.compiler.task import compile_task
from openfirst.pipeline import DECIDERS, Item, ModelRegistry, Pipeline, RoutingPolicy
from openfirst.router.api import Decision


class City(BaseModel):
    """Extract the city."""

    city: str | None = None


class LogprobBackend(ScriptedBackend):
    """A FAKE local engine that answers each input with a scripted text and token log-probabilities."""

    def __init__(self, answers: dict[str, tuple[str, list[str], list[float]]]):
        super().__init__([])
        self.answers = answers
        self.seen: list[str] = []

    def generate(self, conversations, constraint, max_tokens, temperature=0.0, repetition_penalty=1.0):
        out = []
        for conv in conversations:
            text = conv[-1]["content"]
            self.seen.append(text)
            body, pieces, lps = self.answers[text]
            out.append(Generation(body, 5, len(pieces), True, model="local", token_texts=pieces, token_logprobs=lps))
        return out


SURE = ('{"city":"Oslo"}', ['{"', 'city', '":"', 'Oslo', '"}'], [0.0, 0.0, 0.0, -0.01, 0.0])
UNSURE = ('{"city":"Bergen"}', ['{"', 'city', '":"', 'Bergen', '"}'], [0.0, 0.0, 0.0, -2.3, 0.0])
BROKEN = ('{"city":', ['{"', 'city', '":'], [0.0, 0.0, 0.0])


class FailOdds:
    """A FAKE router: P(local fails) per text, the frontier at 0.8 or more."""

    def __init__(self, fail_p):
        self.fail_p = fail_p

    def route_many(self, texts):
        return [Decision("frontier" if self.fail_p(t) >= 0.8 else "local", 1 - self.fail_p(t), 0.8, self.fail_p(t),
                         "fake") for t in texts]


class Cascade:
    """The pipeline as the one-call API builds it: cascade on any failure, no frontier-to-local fallback."""

    def __init__(self, local, frontier, threshold, router=None, local_options=None):
        task = compile_task(City)
        programs = {"local": Program(task, local, local_options or ProgramOptions(max_retries=0, confidence="min")),
                    "frontier": Program(task, frontier, ProgramOptions(max_retries=0))}
        self.pipeline = Pipeline(ModelRegistry.of(local, frontier), {"city": programs}, router=router,
                                 policy=RoutingPolicy(cascade_threshold=threshold, cascade_failures="any",
                                                      fallback_frontier_to_local=False))

    def run_many(self, texts, pinned=None):
        pinned = pinned or [False] * len(texts)
        return self.pipeline.run_sync("city", [Item(t, private=p) for t, p in zip(texts, pinned)])


def make(answers, frontier_texts, threshold):
    local, frontier = LogprobBackend(answers), ScriptedBackend(frontier_texts)
    return Cascade(local, frontier, threshold), local, frontier


def test_confident_answers_stay_local_and_unsure_or_invalid_ones_escalate():
    cascade, _, frontier = make({"a": SURE, "b": UNSURE, "c": BROKEN},
                                ['{"city":"Bergen, Norway"}', '{"city":"Paris"}'], threshold=0.5)
    a, b, c = cascade.run_many(["a", "b", "c"])
    assert (a.decided_by, a.verdict, a.escalated) == ("default", "confident", False)
    assert a.result.output.city == "Oslo" and a.confidence.overall == pytest.approx(math.exp(-0.01))
    assert (b.decided_by, b.verdict, b.escalated) == ("cascade", "low_confidence", True)
    assert b.result.output.city == "Bergen, Norway" and b.confidence.fields["city"] == pytest.approx(math.exp(-2.3))
    assert b.local.output.city == "Bergen"  # the local answer is kept beside the frontier's
    assert (c.verdict, c.escalated, c.result.output.city) == ("invalid", True, "Paris") and c.confidence is None
    assert [s.stage for s in b.history] == ["default", "run", "cascade", "run"] and b.history[-1].model == "frontier"
    assert {o.decided_by for o in (a, b, c)} <= set(DECIDERS)


def test_pinned_inputs_never_escalate_whatever_their_confidence():
    cascade, _, frontier = make({"a": UNSURE, "b": BROKEN}, [], threshold=0.99)
    a, b = cascade.run_many(["a", "b"], pinned=[True, True])
    assert (a.decided_by, a.escalated, a.result.output.city) == ("privacy", False, "Bergen")
    assert a.confidence.overall < 0.2
    assert (b.decided_by, b.escalated) == ("privacy", False) and not isinstance(b.result, Result)
    assert frontier.seen == []


def test_the_router_sends_sure_failures_straight_to_the_frontier_without_a_local_run():
    local = LogprobBackend({"a": SURE, "b": SURE})
    cascade = Cascade(local, ScriptedBackend(['{"city":"Rome"}']), 0.5,
                      router=FailOdds(lambda t: 0.9 if t == "b" else 0.1),
                      local_options=ProgramOptions(confidence="min"))
    a, b = cascade.run_many(["a", "b"])
    assert local.seen == ["a"]
    assert (b.decided_by, b.verdict, b.escalated, b.result.output.city) == ("router", "router_sure", True, "Rome")
    assert b.local is None and a.decided_by == "router"


def test_a_failed_frontier_falls_back_to_the_local_answer():
    class Down(ScriptedBackend):
        def generate(self, conversations, *a, **k):
            return [Generation.failed(BackendError("frontier down")) for _ in conversations]

    cascade = Cascade(LogprobBackend({"b": UNSURE}), Down([]), 0.5, local_options=ProgramOptions(confidence="min"))
    (b,) = cascade.run_many(["b"])
    assert (b.decided_by, b.escalated, b.result.output.city) == ("fallback", False, "Bergen")




GOOD = '{"city":"Oslo"}'


class ByText:
    """A FAKE router: the frontier for texts in `to_frontier`."""

    def __init__(self, to_frontier):
        self.to_frontier = set(to_frontier)

    def route_many(self, texts):
        return [Decision("frontier" if t in self.to_frontier else "local", 0.5, 0.0, 1.0 if t in self.to_frontier
                         else -1.0, "fake") for t in texts]


def two_models(local, frontier=None, router=None, **policy):
    task = compile_task(City)
    programs = {"local": Program(task, local, ProgramOptions(max_retries=0))}
    if frontier is not None:
        programs["frontier"] = Program(task, frontier, ProgramOptions(max_retries=0))
    return Pipeline(ModelRegistry.of(local, frontier), {"city": programs}, router=router,
                    policy=RoutingPolicy(**policy))


def test_each_input_runs_on_its_target_in_one_batch_per_target():
    local, frontier = ScriptedBackend([GOOD], cycle=True), ScriptedBackend([GOOD], cycle=True)
    out = two_models(local, frontier, ByText({"b"})).run_sync("city", [Item("a"), Item("b"), Item("c")])
    assert [o.target for o in out] == ["local", "frontier", "local"] and all(isinstance(o.result, Result) for o in out)
    assert [c[-1]["content"] for c in local.seen] == ["a", "c"] and len(frontier.seen) == 1


def test_a_failed_answer_falls_back_once_where_the_policy_allows():
    from openfirst.compiler.errors import ConnectionFailed

    local = ScriptedBackend([ConnectionFailed("down")], cycle=True)
    frontier = ScriptedBackend([ConnectionFailed("down too")], cycle=True)
    (out,) = two_models(local, frontier, ByText(()), fallback_local_to_frontier=True).run_sync("city", [Item("a")])
    assert (out.target, out.decided_by, out.fallback_from) == ("frontier", "fallback", "local")
    assert isinstance(out.first.error, ConnectionFailed) and isinstance(out.error, ConnectionFailed)
    assert len(frontier.seen) == 1 and len(local.seen) == 1  # no second fallback back to local
    (kept,) = two_models(ScriptedBackend([ConnectionFailed("down")]), ScriptedBackend([]), ByText(())
                         ).run_sync("city", [Item("a")])  # local -> frontier fallback is off by default
    assert kept.fallback_from is None and kept.target == "local" and kept.ok is False


def test_no_fallback_without_a_program_for_the_other_model():
    from openfirst.compiler.errors import ConnectionFailed

    (out,) = two_models(ScriptedBackend([ConnectionFailed("down")]), None, fallback_local_to_frontier=True
                        ).run_sync("city", [Item("a")])
    assert out.fallback_from is None and out.decided_by == "default" and out.ok is False
