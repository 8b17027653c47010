"""The cascade on scripted backends: which stage decides, escalation on invalid or unsure answers, privacy."""

import math

import numpy as np
import pytest
from pydantic import BaseModel

from openfirst.cascade.policy import Cascade, CascadeOptions, threshold_for_quality, threshold_for_share
from openfirst.compiler.backends.base import Generation
from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.errors import BackendError
from openfirst.compiler.program import Program, ProgramOptions, Result
from openfirst.compiler.task import compile_task


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


def make(answers, frontier_texts, **options):
    task = compile_task(City)
    local = LogprobBackend(answers)
    frontier = ScriptedBackend(frontier_texts)
    cascade = Cascade(Program(task, local, ProgramOptions(max_retries=0, confidence="min")),
                      Program(task, frontier, ProgramOptions(max_retries=0)), CascadeOptions(**options))
    return cascade, local, frontier


def test_confident_answers_stay_local_and_unsure_or_invalid_ones_escalate():
    cascade, _, frontier = make({"a": SURE, "b": UNSURE, "c": BROKEN},
                                ['{"city":"Bergen, Norway"}', '{"city":"Paris"}'], threshold=0.5)
    a, b, c = cascade.run_many(["a", "b", "c"])
    assert (a.decided_by, a.reason, a.escalated) == ("cascade", "confident", False)
    assert a.result.output.city == "Oslo" and a.confidence.overall == pytest.approx(math.exp(-0.01))
    assert (b.decided_by, b.reason, b.escalated) == ("cascade", "low_confidence", True)
    assert b.result.output.city == "Bergen, Norway" and b.confidence.fields["city"] == pytest.approx(math.exp(-2.3))
    assert b.local.output.city == "Bergen"  # the local answer is kept beside the frontier's
    assert (c.reason, c.escalated, c.result.output.city) == ("invalid", True, "Paris") and c.confidence is None


def test_pinned_inputs_never_escalate_whatever_their_confidence():
    cascade, _, frontier = make({"a": UNSURE, "b": BROKEN}, [], threshold=0.99)
    a, b = cascade.run_many(["a", "b"], pinned=[True, True])
    assert (a.decided_by, a.escalated, a.result.output.city) == ("privacy", False, "Bergen")
    assert a.confidence.overall < 0.2
    assert (b.decided_by, b.escalated) == ("privacy", False) and not isinstance(b.result, Result)
    assert frontier.seen == []


def test_the_router_sends_sure_failures_straight_to_the_frontier_without_a_local_run():
    task = compile_task(City)
    local = LogprobBackend({"a": SURE, "b": SURE})
    cascade = Cascade(Program(task, local, ProgramOptions(confidence="min")),
                      Program(task, ScriptedBackend(['{"city":"Rome"}'])),
                      CascadeOptions(threshold=0.5, router_skip=0.8),
                      router_fail_p=lambda texts: np.array([0.9 if t == "b" else 0.1 for t in texts]))
    a, b = cascade.run_many(["a", "b"])
    assert local.seen == ["a"]
    assert (b.decided_by, b.reason, b.escalated, b.result.output.city) == ("router", "router_sure", True, "Rome")
    assert b.local is None and a.decided_by == "cascade"


def test_a_failed_frontier_falls_back_to_the_local_answer():
    task = compile_task(City)

    class Down(ScriptedBackend):
        def generate(self, conversations, *a, **k):
            return [Generation.failed(BackendError("frontier down")) for _ in conversations]

    cascade = Cascade(Program(task, LogprobBackend({"b": UNSURE}), ProgramOptions(confidence="min")),
                      Program(task, Down([])),
                      CascadeOptions(threshold=0.5))
    (b,) = cascade.run_many(["b"])
    assert (b.decided_by, b.escalated, b.result.output.city) == ("fallback", False, "Bergen")


def test_thresholds_calibrated_for_a_share_and_for_a_quality_target():
    conf = [0.9, 0.2, 0.5, 0.5, 0.99]
    assert sum(c < threshold_for_share(conf, 0.2) for c in conf) == 1  # the least confident
    assert sum(c < threshold_for_share(conf, 0.4) for c in conf) == 3  # the second is a tie at 0.5: both go
    assert sum(c < threshold_for_share(conf, 0.8) for c in conf) == 4
    assert threshold_for_share(conf, 0.0) == 0.0 and sum(c < threshold_for_share(conf, 1.0) for c in conf) == 5
    right = [True, False, False, True, True]
    t = threshold_for_quality(conf, right, 1.0)  # escalating 0.2 and both 0.5s reaches 100%
    assert sum(c < t for c in conf) == 3
    assert threshold_for_quality(conf, right, 0.6) == 0.0  # already met locally


def test_a_threshold_for_a_budget_never_overspends():
    from openfirst.cascade.policy import threshold_for_budget

    conf = [0.9, 0.2, 0.5, 0.5, 0.99]
    # 0.002 USD per input at 0.005 per escalation: at most 40% escalate; the 0.5 tie would make 60%
    assert sum(c < threshold_for_budget(conf, 0.002, 0.005) for c in conf) == 1
    assert sum(c < threshold_for_budget(conf, 0.01, 0.005) for c in conf) == 5
    assert threshold_for_budget(conf, 0.0, 0.005) == 0.0
