"""The abuse cases of issue 11 against a live uvicorn on 127.0.0.1 (scripted FAKE backends, FAKE-embedder router):
slow senders, poisoned batches, huge or hostile bodies. Unrelated requests keep succeeding; no answer is a 500."""

import asyncio
import socket
import time

import httpx
import pytest

from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.service.app import serve_in_thread
from tests.helpers import GOOD_TICKET, fake_service

pytestmark = pytest.mark.slow  # live servers and sockets


@pytest.fixture
def served(tmp_path):
    service = fake_service(tmp_path, ScriptedBackend([GOOD_TICKET], cycle=True),
                           ScriptedBackend([GOOD_TICKET], cycle=True),
                           limits={"max_concurrency": 4, "queue_timeout_s": 0.5, "body_timeout_s": 1.5,
                                   "max_messages": 256})
    with serve_in_thread(service) as url:
        yield url, service
    service.close()


def slow_senders(url: str, n: int) -> list[socket.socket]:
    host, port = url.removeprefix("http://").split(":")
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{")  # and then nothing more
        socks.append(s)
    return socks


def test_slow_senders_hold_no_slot_and_get_408(served):
    url, _ = served
    socks = slow_senders(url, 8)  # twice the concurrency limit
    try:
        time.sleep(0.3)
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        r = httpx.post(f"{url}/v1/route", json={"input": "refund my order 1"}, timeout=5)
        assert r.status_code == 200 and r.json()["target"] == "local"
        for s in socks:
            s.settimeout(5)
            assert b" 408 " in s.recv(4096).split(b"\r\n")[0] + b" "
    finally:
        for s in socks:
            s.close()


def test_one_poisoned_input_fails_only_its_own_request(served):
    url, _ = served

    async def go():
        async with httpx.AsyncClient(base_url=url, timeout=10) as c:
            bodies = [b'{"input": "refund my order %d"}' % i for i in range(11)] + [b'{"input": "bad \\ud800"}']
            return await asyncio.gather(*(c.post("/v1/route", content=b,
                                                 headers={"content-type": "application/json"}) for b in bodies))

    codes = [r.status_code for r in asyncio.run(go())]
    assert codes[:11] == [200] * 11 and codes[11] == 422


@pytest.mark.parametrize("case", ["many_messages", "huge_input", "huge_batch", "nan", "chat_extra_field"])
def test_hostile_bodies_are_typed_4xx_and_the_service_stays_up(served, case):
    url, _ = served
    chat = {"model": "openfirst-router", "messages": [{"role": "user", "content": "hi"}]}
    request = {
        "many_messages": ("/v1/chat/completions", {**chat, "messages": [{"role": "user", "content": "x"}] * 20_000}),
        "huge_input": ("/v1/route", {"input": "word " * 180_000}),
        "huge_batch": ("/v1/route", {"inputs": ["x"] * 100_000}),
        "nan": ("/v1/chat/completions", None),
        "chat_extra_field": ("/v1/chat/completions", {**chat, "messages": [{"role": "user", "content": "a",
                                                                            "name2": "x"}]}),
    }[case]
    if case == "nan":
        r = httpx.post(f"{url}{request[0]}", content=b'{"model": "openfirst-router", "temperature": NaN, '
                       b'"messages": [{"role": "user", "content": "a"}]}', headers={"content-type": "application/json"})
    else:
        r = httpx.post(f"{url}{request[0]}", json=request[1], timeout=30)
    assert 400 <= r.status_code < 500 and "error" in r.json()
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    assert httpx.post(f"{url}/v1/route", json={"input": "refund my order 2"}, timeout=5).status_code == 200
