"""The service's engine without HTTP, on FAKE backends and a FAKE-embedder router: routing, privacy pinning,
fallback, the decision log."""

import asyncio
import json

from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.errors import ConnectionFailed, ServerError
from openfirst.pipeline import Item
from tests.helpers import GOOD_TICKET, fake_service

HARD, EASY, PRIVATE = "prove the theorem 7", "refund my order 8", "prove the theorem for jane.doe@example.com"


def extract(service, *texts, **item):
    return asyncio.run(service.extract("support_ticket", [Item(t, f"id-{i}", **item) for i, t in enumerate(texts)]))


def test_router_sends_each_input_to_its_target_and_logs_the_decision(tmp_path):
    local = ScriptedBackend([GOOD_TICKET], cycle=True, model_name="small")
    frontier = ScriptedBackend([GOOD_TICKET], cycle=True, model_name="big")
    service = fake_service(tmp_path, local, frontier)
    hard, easy = extract(service, HARD, EASY)
    assert (hard.body["target"], hard.body["model"], hard.body["decided_by"]) == ("frontier", "big", "router")
    assert (easy.body["target"], easy.body["model"]) == ("local", "small")
    assert hard.error is None and hard.body["output"]["category"] == "billing"
    assert len(frontier.seen) == 1 and len(local.seen) == 1
    service.close()
    logged = [json.loads(x) for x in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert [(d["id"], d["target"], d["ok"]) for d in logged] == [("id-0", "frontier", True), ("id-1", "local", True)]


def test_private_inputs_never_reach_the_frontier_even_on_local_failure(tmp_path):
    local = ScriptedBackend([ConnectionFailed("local down")], cycle=True)
    frontier = ScriptedBackend([GOOD_TICKET], cycle=True)
    service = fake_service(tmp_path, local, frontier, routing={"fallback_local_to_frontier": True})
    pinned, flagged = extract(service, PRIVATE)[0], extract(service, HARD, private=True)[0]
    assert pinned.body["decided_by"] == "privacy" and "email" in pinned.body["pin_reasons"]
    assert flagged.body["decided_by"] == "privacy"
    assert isinstance(pinned.error, ConnectionFailed) and frontier.seen == []


def test_fallback_both_ways_follows_the_policy(tmp_path):
    local = ScriptedBackend([ConnectionFailed("local down"), GOOD_TICKET], model_name="small")
    frontier = ScriptedBackend([GOOD_TICKET, ServerError("frontier 500")], model_name="big")
    service = fake_service(tmp_path, local, frontier, routing={"fallback_local_to_frontier": True})
    easy = extract(service, EASY)[0]  # local fails -> the frontier answers
    assert (easy.body["target"], easy.body["fallback_from"], easy.body["decided_by"]) == ("frontier", "local",
                                                                                          "fallback")
    hard = extract(service, HARD)[0]  # the frontier fails -> local answers (on by default)
    assert (hard.body["target"], hard.body["fallback_from"], hard.error) == ("local", "frontier", None)
    assert "ServerError" in hard.body["reason"]


def test_without_a_router_the_default_target_is_used(tmp_path):
    local, frontier = ScriptedBackend([GOOD_TICKET], cycle=True), ScriptedBackend([GOOD_TICKET], cycle=True)
    service = fake_service(tmp_path, local, frontier, router=None)
    out = extract(service, HARD)[0]
    assert out.body["decided_by"] == "default" and out.body["target"] == "local" and frontier.seen == []


def test_strict_mode_lets_only_allow_listed_traffic_leave(tmp_path):
    frontier = ScriptedBackend([GOOD_TICKET], cycle=True)
    service = fake_service(tmp_path, ScriptedBackend([GOOD_TICKET], cycle=True), frontier,
                           privacy={"strict": True})
    out = extract(service, HARD)[0]
    assert (out.body["target"], out.body["decided_by"], out.body["pin_reasons"]) == ("local", "privacy", ["strict"])
    assert frontier.seen == []
    allowed = fake_service(tmp_path, ScriptedBackend([GOOD_TICKET], cycle=True), frontier,
                           privacy={"strict": True, "frontier_tasks": ["support_ticket"]})
    assert extract(allowed, HARD)[0].body["target"] == "frontier"
    assert extract(allowed, PRIVATE)[0].body["decided_by"] == "privacy"  # the detectors still apply


def _answer(text, logprob):
    """A local answer with one token per character, the last value character at `logprob` (FAKE engine output)."""
    from openfirst.compiler.backends.base import Generation

    pieces = list(text)
    lps = [0.0] * len(pieces)
    lps[-3] = logprob
    return Generation(text, 10, len(pieces), True, model="small", token_texts=pieces, token_logprobs=lps)


def test_the_cascade_escalates_unsure_local_answers_and_logs_why(tmp_path):
    from openfirst.service.decision_eval import evaluate_decisions
    from openfirst.service.decision_log import read_decisions

    local = ScriptedBackend([_answer(GOOD_TICKET, -0.01), _answer(GOOD_TICKET, -3.0), _answer(GOOD_TICKET, -3.0)],
                            model_name="small")
    frontier = ScriptedBackend([GOOD_TICKET], cycle=True, model_name="big")
    service = fake_service(tmp_path, local, frontier, router=None, routing={"cascade_threshold": 0.5},
                           program={"confidence": "min"})
    sure, unsure = extract(service, EASY, HARD)
    private = asyncio.run(service.extract("support_ticket", [Item(PRIVATE, "id-private")]))[0]
    assert (sure.body["target"], sure.body["decided_by"]) == ("local", "default")
    assert sure.body["confidence"]["overall"] > 0.9 and sure.body["confidence"]["fields"]
    assert (unsure.body["target"], unsure.body["decided_by"], unsure.body["fallback_from"]) == (
        "frontier", "cascade", "local")
    assert unsure.body["local_confidence"]["overall"] < 0.1 and "confidence" in unsure.body["reason"]
    assert unsure.body["confidence"] is None  # the frontier API gives no log-probabilities
    assert (private.body["target"], private.body["decided_by"]) == ("local", "privacy")  # never escalated
    assert len(frontier.seen) == 1
    service.close()
    decisions = read_decisions(tmp_path / "decisions.jsonl")
    assert [d["decided_by"] for d in decisions] == ["default", "cascade", "privacy"]
    assert decisions[1]["confidence"] < 0.1 and decisions[0]["confidence"] > 0.9
    labels = {"id-0": {"local_score": 1.0}, "id-1": {"local_score": 0.0, "frontier_score": 1.0}}
    report = evaluate_decisions(decisions, labels)
    assert report["decided_by"]["cascade"] == 1 and report["cascade"]["escalated"] == 1
    assert report["cascade"]["accuracy_escalated"] == 1.0 and report["cascade"]["confidence_auroc"] == 1.0


def test_the_cascade_escalates_a_local_answer_that_fails_validation(tmp_path):
    local = ScriptedBackend(['{"category":"nonsense"}'], cycle=True, model_name="small")
    frontier = ScriptedBackend([GOOD_TICKET], cycle=True, model_name="big")
    service = fake_service(tmp_path, local, frontier, router=None, routing={"cascade_threshold": 0.5})
    out = extract(service, EASY)[0]
    assert (out.body["target"], out.body["decided_by"], out.error) == ("frontier", "cascade", None)
    assert "OutputValidationError" in out.body["reason"]


def test_when_the_frontier_fails_an_escalated_input_keeps_its_local_answer(tmp_path):
    local = ScriptedBackend([_answer(GOOD_TICKET, -3.0)], model_name="small")
    frontier = ScriptedBackend([ServerError("frontier 500")], cycle=True, model_name="big")
    service = fake_service(tmp_path, local, frontier, router=None, routing={"cascade_threshold": 0.5},
                           program={"confidence": "min", "max_retries": 0})
    out = extract(service, HARD)[0]
    assert (out.body["target"], out.body["decided_by"], out.error) == ("local", "fallback", None)
    assert out.body["output"]["category"] == "billing" and "frontier failed" in out.body["reason"]
    assert out.body["confidence"]["overall"] < 0.1


def test_a_local_answer_that_copies_the_tasks_example_escalates_as_a_leak(tmp_path):
    """The leak guard in the service: the support-ticket task's example answer, returned for another ticket, is
    retried without the example and then escalated (LeakedValue is an OutputValidationError), never returned."""
    copy = json.dumps({"category": "billing", "priority": 4,
                       "summary": "Customer was double-charged for the March invoice."})
    local = ScriptedBackend([copy], cycle=True, model_name="small")
    frontier = ScriptedBackend([GOOD_TICKET], cycle=True, model_name="big")
    service = fake_service(tmp_path, local, frontier, router=None, routing={"cascade_threshold": 0.5})
    out = extract(service, "my parcel is late")[0]
    assert (out.body["target"], out.body["decided_by"], out.error) == ("frontier", "cascade", None)
    assert "LeakedValue" in out.body["reason"] and len(local.seen) >= 2
    assert "March invoice" not in json.dumps(local.seen[1])  # the retry ran without the example
