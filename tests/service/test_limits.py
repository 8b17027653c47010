"""The limits middleware: body size as it arrives, the concurrency limit with a bounded wait, JSON errors."""

import asyncio

import httpx

from openfirst.service.limits import LimitsMiddleware
from openfirst.service.metrics import ServiceMetrics


async def slow_echo(scope, receive, send):
    """A minimal ASGI app: reads the body, waits a little, answers 200 with the body's length."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await asyncio.sleep(0.3)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(size).encode()})


def client(**limits):
    app = LimitsMiddleware(slow_echo, metrics=ServiceMetrics(), **limits)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


def test_body_limit_with_and_without_content_length():
    async def go():
        async with client(max_body_bytes=100, max_concurrency=4, queue_timeout_s=1) as c:
            small = await c.post("/v1/x", content=b"a" * 100)
            big = await c.post("/v1/x", content=b"a" * 101)

            async def chunks():
                for _ in range(5):
                    yield b"a" * 30

            chunked = await c.post("/v1/x", content=chunks())
            return small, big, chunked

    small, big, chunked = asyncio.run(go())
    assert small.status_code == 200 and small.text == "100"
    assert big.status_code == 413 and chunked.status_code == 413
    assert big.json()["error"]["type"] == "request_too_large"


def test_concurrency_limit_answers_503_with_retry_after():
    async def go():
        async with client(max_body_bytes=1000, max_concurrency=1, queue_timeout_s=0.05) as c:
            return await asyncio.gather(c.post("/v1/x", content=b"a"), c.post("/v1/x", content=b"b"))

    codes = sorted(r.status_code for r in asyncio.run(go()))
    assert codes == [200, 503]
