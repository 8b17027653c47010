"""The service's engine without HTTP, on FAKE backends and a FAKE-embedder router: routing, privacy pinning,
fallback, the decision log."""

import asyncio
import json

from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.errors import ConnectionFailed, ServerError
from openfirst.service.engine import Item
from tests.service.conftest import GOOD_TICKET, fake_service

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
