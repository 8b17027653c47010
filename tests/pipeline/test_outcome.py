"""A RoutedOutcome renders both the service's response body and the decision-log record."""

from pydantic import BaseModel

from openfirst.compiler.confidence import Confidence
from openfirst.compiler.errors import BackendError
from openfirst.compiler.program import Failure, Result
from openfirst.pipeline import DECIDERS, Item, Route, RoutedOutcome, StageRecord
from openfirst.service.decision_log import RECORD_KEYS


class City(BaseModel):
    city: str


def result(city, model="small", conf=None):
    return Result(backend="b", model=model, attempts=1, latency_s=0.25, usage={"prompt_tokens": 3}, cost_usd=0.01,
                  output=City(city=city), text=f'{{"city":"{city}"}}', confidence=conf)


def test_an_escalated_answer_renders_the_same_facts_in_the_body_and_the_record():
    local = result("Bergen", conf=Confidence(0.1, {"city": 0.1}, "min", True))
    route = Route("local", "router", 0.9, -0.2, 0.0, "score below")
    moved = route.moved("frontier", "cascade", "local confidence 0.100 < 0.5", replace_reason=True)
    o = RoutedOutcome(Item("in Bergen", id="q1", caller="team"), moved, result("Bergen, Norway", "big"), first=local,
                      fallback_from="local", verdict="low_confidence",
                      history=[StageRecord("router"), StageRecord("run", "local", 0.2), StageRecord("cascade")])
    body, rec = o.body, o.record("extract", "city", "now", 0.3, 9.0)
    assert (body["target"], body["decided_by"], body["output"], body["local_confidence"]["overall"]) == (
        "frontier", "cascade", {"city": "Bergen, Norway"}, 0.1)
    assert (rec["target"], rec["decided_by"], rec["model"], rec["ok"], rec["confidence"]) == (
        "frontier", "cascade", "big", True, 0.1)  # the record keeps the local confidence that led to escalation
    assert rec["output"] == body["output"] and rec["latency_s"] == 0.25 and rec["caller"] == "team"
    assert [s["stage"] for s in rec["stages"]] == ["router", "run", "cascade"] and set(rec) <= set(RECORD_KEYS)
    assert o.escalated and o.local is local and o.confidence.overall == 0.1 and o.decided_by in DECIDERS


def test_a_failure_a_cut_and_a_routing_decision_each_say_what_they_are():
    failed = RoutedOutcome(Item("x"), Route("local", "default"), Failure(backend="b", model="small", attempts=1,
                           latency_s=0.1, error=BackendError("down")))
    assert failed.ok is False and failed.body["error"]["type"] == "BackendError" and failed.error_type() == "BackendError"
    cut = RoutedOutcome(Item("x"), Route("local", "router"), cut="deadline_exceeded")
    assert cut.ok is False and cut.record("extract", "t", "now", None, 2.0)["latency_s"] == 2.0
    routed = RoutedOutcome(Item("x"), Route("frontier", "router", score=1.0, threshold=0.5), model="big")
    assert routed.ok is None and routed.record("route", None, "now", None, 0.1)["model"] == "big"
