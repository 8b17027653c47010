"""Privacy proof: with the router sending everything to the frontier, pinned requests (PII detectors, custom
regexes, the per-request flag, a pinned task) never reach the recording stand-in frontier, on any endpoint,
streaming or not, and not when the local model fails with fallback to the frontier allowed."""

import httpx
import openai
import pytest

from tests.helpers import KEYWORD_FORMS, PROBE_LEAKS, down_local, live_service, llama_local, make_config

pytestmark = pytest.mark.slow
PINNED = ["My parcel is lost, email me at maria.rossi@example.it",
          "Call me back on +44 20 7946 0958 about my broken router",
          "Refund to IBAN DE89 3704 0044 0532 0130 00 please",
          "I was charged twice on card 4111 1111 1111 1111",
          "CONFIDENTIAL: the merger closes Friday, the portal is down"]


def test_pinned_requests_never_reach_the_frontier(tmp_path, llama, frontier, router_dir):
    cfg = make_config(tmp_path, local=llama_local(llama), frontier=frontier,
                      router={"artifact": str(router_dir), "threshold": -1e9},
                      privacy={"patterns": [r"(?i)\bconfidential\b"]},
                      program={"max_tokens": 120, "max_retries": 0})
    with live_service(cfg) as (url, _):
        http = httpx.Client(base_url=url, timeout=300)
        out = http.post("/v1/tasks/support_ticket/extract", json={"inputs": PINNED}).json()["results"]
        assert [r["pin_reasons"] for r in out] == [["email"], ["phone"], ["phone", "iban"], ["card"], ["pattern:0"]]
        assert all(r["target"] == "local" and r["model"] == "smollm2" for r in out)
        decisions = http.post("/v1/route", json={"inputs": PINNED + [{"input": "What is 2+2?", "private": True}]})
        assert all(d["target"] == "local" and d["pinned"] for d in decisions.json()["decisions"])
        chat = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
        for text in PINNED[:2]:
            chat.chat.completions.create(model="openfirst-router", max_tokens=8,
                                         messages=[{"role": "user", "content": text}])
            list(chat.chat.completions.create(model="openfirst-router", max_tokens=8, stream=True,
                                              messages=[{"role": "user", "content": text}]))
        # PII in an earlier message pins the conversation too; so does the flag
        chat.chat.completions.create(model="openfirst-router", max_tokens=8, messages=[
            {"role": "user", "content": "my email is jo@example.com"}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "what is 2+2?"}])
        chat.chat.completions.create(model="openfirst-router", max_tokens=8, extra_body={"openfirst_private": True},
                                     messages=[{"role": "user", "content": "what is 2+2?"}])
        assert frontier.calls == 0
        # the control: the same service sends an unpinned request to the frontier
        r = http.post("/v1/tasks/support_ticket/extract", json={"input": "My parcel never arrived."}).json()
        assert r["target"] == "frontier" and frontier.calls == 1


def test_pinned_task_and_failing_local_with_fallback(tmp_path, frontier, router_dir):
    cfg = make_config(tmp_path, local=down_local(), frontier=frontier,
                      router={"artifact": str(router_dir), "threshold": -1e9},
                      routing={"fallback_local_to_frontier": True}, privacy={"pin_tasks": ["support_ticket"]})
    with live_service(cfg) as (url, _):
        r = httpx.post(f"{url}/v1/tasks/support_ticket/extract", json={"input": "My parcel never arrived."},
                       timeout=60)
        assert r.status_code == 502 and r.json()["pin_reasons"] == ["task:support_ticket"]
        chat = httpx.post(f"{url}/v1/chat/completions", timeout=60, json={
            "model": "openfirst-router", "messages": [{"role": "user", "content": "mail a@b.com"}]})
        assert chat.status_code == 502 and chat.json()["error"]["type"] == "ConnectionFailed"
        stream = httpx.post(f"{url}/v1/chat/completions", timeout=60, json={
            "model": "openfirst-router", "stream": True, "messages": [{"role": "user", "content": "mail a@b.com"}]})
        assert stream.status_code == 502
    assert frontier.calls == 0


def test_the_held_out_probe_s_classes_never_reach_the_frontier(tmp_path, frontier, router_dir):
    """Issue 22: typographic dashes, spaced or IP-literal or quoted emails, word forms and digit-for-letter
    spellings of a keyword rule, base64, a card split across two chat messages; an unpinned control still leaves."""
    cfg = make_config(tmp_path, local=down_local(), frontier=frontier,
                      router={"artifact": str(router_dir), "threshold": -1e9},
                      privacy={"keywords": sorted(set(KEYWORD_FORMS.values()))})
    with live_service(cfg) as (url, _):
        http = httpx.Client(base_url=url, timeout=60)
        texts = list(PROBE_LEAKS.values()) + list(KEYWORD_FORMS)
        decisions = http.post("/v1/route", json={"inputs": texts}).json()["decisions"]
        assert [d["target"] for d in decisions] == ["local"] * len(texts)
        split = http.post("/v1/chat/completions", json={"model": "openfirst-router", "messages": [
            {"role": "user", "content": "my card is 4111 1111"}, {"role": "assistant", "content": "go on"},
            {"role": "user", "content": "1111 1111, why was it declined?"}]})
        assert split.status_code == 502 and frontier.calls == 0  # the local model is down: an error, not a leak
        control = http.post("/v1/chat/completions", json={"model": "openfirst-router", "messages": [
            {"role": "user", "content": "why was my order declined?"}]})
        assert control.status_code == 200 and frontier.calls == 1
